# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The web demo as a Hugging Face Space folder, rendered for a model repo and pushed in one commit.

What a Space folder holds (:func:`render_space`)::

    README.md          Space metadata (YAML: sdk gradio, sdk_version, app_file, models, ...) + a short guide
    app.py             loads the model repo and serves the demo: build_demo(MODEL_ID).launch()
    requirements.txt   what the model's code needs (torch, transformers, av, ...); Gradio comes from sdk_version
    mscl_demo/         the demo's code, copied byte for byte from modeling_mscl/demo/ (it imports no package module)

**Where the code comes from (the choice):** the Space does *not* install the ``mscl`` package. The model and
its pipeline come from the model repo itself — ``pipeline(model=REPO, trust_remote_code=True)`` runs the flat
files the export put there (configuration, modeling, pipeline, video decoding and features) — and the page
comes from ``mscl_demo/``. So a published checkpoint and its Space need nothing but the Hub and PyPI's
ordinary packages; the Space runs exactly the code of the checkpoint it shows, and a package release is not
needed for a new demo. ``requirements.txt`` lists only third-party packages (lower bounds of the package's own
dependencies; ``av`` for decoding); the Gradio version is the README's ``sdk_version``, the one this demo is
tested with (:data:`SPACE_GRADIO_VERSION`).

A Space is refused for a checkpoint whose features have no Hugging Face extractor (C3D, I3D, SlowFast,
EgoVLP): it could not ground an uploaded video; and for one whose extractor or sentence encoder is recorded
as a local folder (or is not a Hugging Face model): the Space could not load it. Every file is a deterministic function of the inputs, so
pushing the same Space twice makes no new commit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

__all__ = [
    "DEMO_FILES",
    "SPACE_GRADIO_VERSION",
    "SpaceExport",
    "publish_space",
    "read_model_config",
    "render_space",
]

# the Gradio release the demo is written for and tested with (the Space's sdk_version)
SPACE_GRADIO_VERSION = "6.31.0"
SPACE_PYTHON_VERSION = "3.11"
DEMO_PACKAGE = "mscl_demo"
# the demo's modules that go into the Space (its __main__ is the package's command line, not needed there)
DEMO_FILES = ("__init__.py", "app.py", "examples.py", "frames.py", "render.py")
SHORT_DESCRIPTION = "Find the moments a sentence describes in a video"
# third-party requirements of the model's remote code and of the page (Gradio itself: sdk_version)
REQUIREMENTS = (
    "torch>=2.1",
    "transformers>=5.0",
    "safetensors>=0.4",
    "huggingface_hub>=1.0",
    "numpy>=1.24",
    "tqdm>=4.0",
    "av>=15",
    "pillow>=9.1",
)


def _demo_source_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "demo"


def _hub_id(name: Any) -> Optional[str]:
    """``name`` when it looks like a Hub model id (``org/name``), else ``None`` (a local folder)."""
    if not isinstance(name, str) or name.count("/") != 1 or name.startswith((".", "/", "~")) or os.path.isabs(name):
        return None
    return name


def read_model_config(model: str, revision: Optional[str] = None, token: Optional[str] = None) -> Dict[str, Any]:
    """``config.json`` of a model folder or Hub repo, as a dict (``ValueError`` when it cannot be read)."""
    path = Path(os.fspath(model))
    if path.is_dir():
        file = path / "config.json"
    else:
        from huggingface_hub import HfApi, hf_hub_download

        try:
            # ask the Hub first: a config.json left in the local cache must not vouch for a repo that is gone
            sha = HfApi(token=token).model_info(model, revision=revision).sha
            file = Path(hf_hub_download(model, "config.json", revision=sha or revision, token=token))
        except Exception as exc:  # noqa: BLE001 - RepositoryNotFound, EntryNotFound, connection errors...
            raise ValueError(f"cannot read config.json of model repo {model!r}: {exc}") from None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict) or data.get("model_type") != "mscl":
        raise ValueError(f"{model!r} is not an MSCL checkpoint (config.json model_type {data.get('model_type')!r})")
    return data


def check_space_config(config: Mapping[str, Any], model_repo_id: str) -> None:
    """A Space can only serve a checkpoint that grounds video files and embeds sentences with models it can
    download: ``ValueError`` otherwise (features without a Hugging Face extractor, a sentence encoder that is
    not a Hugging Face model, or either one recorded as a local folder)."""
    source = config.get("video_feature_source") or {}
    if source.get("type") != "hf":
        features = source.get("features") or "pre-extracted features"
        raise ValueError(
            f"{model_repo_id} reads {features}, which no Hugging Face model extracts from a video file: its Space could not "
            "ground an uploaded video. Spaces are for checkpoints whose config.video_feature_source names an image "
            "model (e.g. the mad_clip and custom_clip_b32 presets)"
        )
    text = config.get("text_feature_source") or {}
    if text.get("type") != "hf":
        raise ValueError(
            f"{model_repo_id} embeds sentences with {text.get('type') or 'no sentence encoder'!r} "
            f"(config.text_feature_source), which a Space cannot run: it needs a Hugging Face text model"
        )
    for key, src in (("video_feature_source", source), ("text_feature_source", text)):
        name = src.get("name_or_path")
        if _hub_id(name) is None:
            raise ValueError(
                f"{model_repo_id}: config.{key}.name_or_path is a local folder ({name!r}), which a Space cannot load; "
                "upload that model to the Hub and record its repo id there (the features must stay the same)"
            )


def _models_used(model_repo_id: str, config: Mapping[str, Any]) -> List[str]:
    models = [model_repo_id]
    for key in ("video_feature_source", "text_feature_source"):
        hub = _hub_id((config.get(key) or {}).get("name_or_path"))
        if hub and hub not in models:
            models.append(hub)
    return models


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _readme(model_repo_id: str, space_id: Optional[str], config: Mapping[str, Any], sdk_version: str,
            model_revision: Optional[str]) -> str:
    models = _models_used(model_repo_id, config)
    preset = config.get("preset")
    name = model_repo_id.split("/")[-1]
    title = f"MSCL demo: {name}"[:60]
    source = config.get("video_feature_source") or {}
    sampling = source.get("sampling") or {}
    lines = [
        "---",
        f"title: {_yaml_str(title)}",
        "emoji: 🎬",
        "colorFrom: blue",
        "colorTo: indigo",
        "sdk: gradio",
        f"sdk_version: {_yaml_str(sdk_version)}",
        f"python_version: {_yaml_str(SPACE_PYTHON_VERSION)}",
        "app_file: app.py",
        "pinned: false",
        "license: apache-2.0",
        f"short_description: {_yaml_str(SHORT_DESCRIPTION)}",
        "models:",
        *[f"  - {m}" for m in models],
        "tags:",
        "  - video-temporal-grounding",
        "  - mscl",
        "---",
        "",
        f"# Video temporal grounding with [{model_repo_id}](https://huggingface.co/{model_repo_id})",
        "",
        "Upload a video, type one sentence per line, and press **Find the moments**: each sentence gets a timeline "
        "of its moments (opacity = score, thumbnails of the frames) and a table in seconds; click a moment to play "
        "the video from it. Every sentence is answered in one pass over the video, and the video's features are "
        "cached, so more questions about the same video are quick.",
        "",
        "| | |",
        "|---|---|",
        f"| model | [`{model_repo_id}`](https://huggingface.co/{model_repo_id})"
        + (f" at revision `{model_revision}`" if model_revision else "") + (f" (preset `{preset}`)" if preset else "") + " |",
        f"| video features | `{source.get('name_or_path', '?')}` `{source.get('output', '?')}`, "
        f"{float(sampling.get('fps', 0) or 0):g} frames per second |",
        "| code | the model's own code from its repo (`trust_remote_code=True`); the page: `mscl_demo/` |",
        "",
        "Videos of any length work: decoding is streaming, and a progress bar follows the extraction of long ones.",
        "",
        "Run the same app on your machine with the `mscl` package:",
        "",
        "```bash",
        "pip install 'mscl[demo]'",
        f"python -m modeling_mscl.demo --model {model_repo_id}",
        "```",
        "",
    ]
    if space_id:
        lines += [f"This Space: `{space_id}`.", ""]
    return "\n".join(lines)


def _app_py(model_repo_id: str, model_revision: Optional[str]) -> str:
    return (
        f'"""Hugging Face Space: the mscl web demo for {model_repo_id}.\n\n'
        "The model and its pipeline come from the model repo (trust_remote_code=True); the page's code is\n"
        "mscl_demo/, copied from the mscl package (modeling_mscl/demo). Set MSCL_MODEL / MSCL_MODEL_REVISION in the\n"
        'Space\'s variables to serve another checkpoint.\n"""\n\n'
        "import os\n\n"
        f"from {DEMO_PACKAGE} import build_demo, launch_kwargs\n\n"
        f"MODEL_ID = os.environ.get(\"MSCL_MODEL\") or {model_repo_id!r}\n"
        f"MODEL_REVISION = os.environ.get(\"MSCL_MODEL_REVISION\") or {model_revision!r}\n\n"
        "demo = build_demo(MODEL_ID, revision=MODEL_REVISION)\n\n"
        'if __name__ == "__main__":\n'
        "    demo.queue(max_size=32).launch(**launch_kwargs(allowed_paths=demo.mscl_allowed_paths))\n"
    )


@dataclass
class SpaceExport:
    """A rendered Space folder."""

    folder: Path
    model_repo_id: str
    files: List[str]


def render_space(
    model_repo_id: str,
    output_dir: os.PathLike,
    *,
    config: Optional[Mapping[str, Any]] = None,
    model_revision: Optional[str] = None,
    space_id: Optional[str] = None,
    sdk_version: str = SPACE_GRADIO_VERSION,
    overwrite: bool = False,
) -> SpaceExport:
    """Write the Space folder of the demo for ``model_repo_id`` (no network when ``config`` is given).

    Args:
        model_repo_id: the model repo the Space serves (``org/name``).
        output_dir: where to write the folder (must not exist unless ``overwrite``).
        config: the checkpoint's ``config.json`` as a dict (read from the Hub when omitted).
        model_revision: a branch / tag / commit of the model repo to serve (default: its main branch).
        space_id: the Space's own repo id (named in its README).
        sdk_version: the Gradio version of the Space.

    Raises:
        ValueError: invalid repo id, a checkpoint without a video extractor, an existing ``output_dir``.
    """
    from .publish import validate_repo_id

    validate_repo_id(model_repo_id)
    if space_id is not None:
        validate_repo_id(space_id)
    if config is None:
        config = read_model_config(model_repo_id, revision=model_revision)
    check_space_config(config, model_repo_id)
    out = Path(os.fspath(output_dir)).expanduser().resolve()
    if out.exists() and not overwrite:
        raise ValueError(f"Space folder {out} already exists; pass overwrite=True (--overwrite) to replace it")
    source = _demo_source_dir()
    missing = [name for name in DEMO_FILES if not (source / name).is_file()]
    if missing:
        raise ValueError(f"the demo's code is incomplete in {source}: missing {', '.join(missing)}")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    (staging / DEMO_PACKAGE).mkdir(parents=True)
    try:
        for name in DEMO_FILES:
            shutil.copyfile(source / name, staging / DEMO_PACKAGE / name)
        (staging / "app.py").write_text(_app_py(model_repo_id, model_revision), encoding="utf-8")
        (staging / "requirements.txt").write_text(
            "# The model's code comes from its repo (trust_remote_code); these are what it and the page import.\n"
            "# Gradio is installed by the Space itself (README: sdk_version).\n" + "\n".join(REQUIREMENTS) + "\n",
            encoding="utf-8",
        )
        (staging / "README.md").write_text(_readme(model_repo_id, space_id, config, sdk_version, model_revision), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return SpaceExport(out, model_repo_id, files)


def publish_space(
    space_id: str,
    model_repo_id: str,
    *,
    config: Optional[Mapping[str, Any]] = None,
    model_revision: Optional[str] = None,
    private: Optional[bool] = True,
    commit_message: Optional[str] = None,
    sdk_version: str = SPACE_GRADIO_VERSION,
    dry_run: bool = False,
    export_dir: Optional[os.PathLike] = None,
    overwrite: bool = False,
    token: Optional[str] = None,
):
    """Render the demo's Space for ``model_repo_id`` and push it to the Space repo ``space_id`` in one commit.

    ``space_id`` may contain ``{preset}``. Without ``config`` the model's ``config.json`` is read from the Hub
    first (so a Space is never made for a repo that does not exist). With ``dry_run`` the folder is only
    written (to ``export_dir``, required then). Returns ``(SpaceExport, PushResult or None)``.
    """
    from .publish import push_folder, validate_repo_id, validate_revision

    validate_repo_id(model_repo_id)
    if model_revision is not None and not _is_commit(model_revision):
        validate_revision(model_revision)
    if dry_run and export_dir is None:
        raise ValueError("a dry run writes the Space folder only: give export_dir (--export-dir)")
    if config is None:
        config = read_model_config(model_repo_id, revision=model_revision, token=token)
    if not isinstance(space_id, str):
        raise ValueError(f"invalid Space id {space_id!r}")
    space_id = validate_repo_id(space_id.replace("{preset}", str(config.get("preset") or "model")))
    check_space_config(config, model_repo_id)
    tmp = None
    if export_dir is None:
        tmp = tempfile.mkdtemp(prefix="mscl-space-")
        export_dir = os.path.join(tmp, space_id.split("/")[-1])
    try:
        export = render_space(model_repo_id, export_dir, config=config, model_revision=model_revision, space_id=space_id,
                              sdk_version=sdk_version, overwrite=overwrite)
        if dry_run:
            return export, None
        push = push_folder(export.folder, space_id, repo_type="space", private=private, revision="main",
                           commit_message=commit_message or f"Demo of {model_repo_id} (mscl)", token=token)
        return export, push
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)

