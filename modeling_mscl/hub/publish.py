# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Export trained checkpoints as self-contained Hub folders and push them (and converted datasets).

Command line (``train_scripts/publish.py`` is a thin wrapper around :func:`main`)::

    # a trained output folder -> ORG/mscl-<preset> (EMA weights, card, metrics, code), one commit
    python train_scripts/publish.py outputs/mscl-quickstart --repo-id ORG/mscl-quickstart
    python train_scripts/publish.py runs/tacos runs/mad --repo-id "ORG/mscl-{preset}" --public
    python train_scripts/publish.py outputs/mscl-quickstart --repo-id ORG/mscl-quickstart --dry-run --export-dir hub/mscl-quickstart
    # a converted feature dataset (modeling_mscl.data.convert output) -> a dataset repo
    python train_scripts/publish.py --dataset data/tacos --repo-id ORG/tacos-c3d-features
    # the checkpoint and its web demo as a Space (one commit each; see modeling_mscl.hub.space)
    python train_scripts/publish.py outputs/mscl-mad --repo-id ORG/mscl-mad_clip --space ORG/mscl-mad_clip-demo
    # only the Space, for a model repo published before
    python train_scripts/publish.py --repo-id ORG/mscl-mad_clip --space ORG/mscl-mad_clip-demo

What a model folder to publish looks like (what ``train_scripts/run.py`` writes; a
``modeling_mscl.convert_snag`` output or any ``save_pretrained`` folder works too):

* ``config.json`` + ``model.safetensors`` — the trainer saves the **EMA** model as the main weights;
* ``metrics.json`` (the evaluation's output), ``training_config.json``, ``predictions.jsonl`` (optional);
* ``checkpoint-N/`` folders with the raw weights (``model.safetensors``) and ``ema.safetensors``.

``--weights ema`` (default) exports the EMA weights: the main weights of a final folder, or, when the
folder given is a checkpoint (it has ``ema.safetensors``), its EMA parameters over its buffers.
``--weights model`` exports the raw weights: those of a checkpoint folder, or those of the latest
``checkpoint-N`` of a final folder (which must be the run's last step).

The exported folder holds ``model.safetensors``, ``config.json`` with ``auto_map`` and
``custom_pipelines`` (the ``video-temporal-grounding`` pipeline), the flat source files that
``trust_remote_code`` needs (configuration, modeling, losses, NMS, processing, text embedding,
pipeline), ``README.md`` (the model card of :mod:`.cards`), ``metrics.json`` and ``training_config.json``
(with absolute local paths reduced to ``<local>/<last component>``, see :func:`scrub_local_paths`).
Every file is a deterministic function of the inputs, so exporting and pushing the same checkpoint twice
makes no new commit.

Pushing is **one commit** (``HfApi.create_commit`` with every file of the folder, plus deletions of
remote files the folder no longer has): a push that fails midway leaves the repo at its previous commit
and raises :class:`PublishError`. (``upload_folder`` is not used: with ``hf_xet`` installed it switches
to a multi-commit pipelined upload in huggingface_hub 2.x.) Bad input — a folder without weights or
config, a preset with no card template, an invalid repo id or branch name — raises ``ValueError``
before any request is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..training.recipe import recipe_from_training_config
from .cards import CheckpointMetrics, load_card_spec, read_metrics, render_model_card

__all__ = [
    "ExportResult",
    "ModelSource",
    "PublishError",
    "PushResult",
    "export_model",
    "inspect_model_folder",
    "main",
    "publish_model",
    "push_dataset",
    "push_folder",
    "validate_repo_id",
    "validate_revision",
    "verify_export",
]

PathLike = Union[str, "os.PathLike[str]"]

WEIGHTS_NAME = "model.safetensors"
EMA_WEIGHTS_NAME = "ema.safetensors"  # as modeling_mscl.training.ema writes it
METRICS_NAME = "metrics.json"
TRAINING_CONFIG_NAME = "training_config.json"
PREDICTIONS_NAME = "predictions.jsonl"
TRAINER_STATE_NAME = "trainer_state.json"
CARD_NAME = "README.md"

# Hub rules for a repo id: "namespace/name", each part alnum plus "-", "_", "." (not first), no "--" or
# "..", at most 96 characters for the name.
_PART_RE = re.compile(r"^(?!.*(?:--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class PublishError(RuntimeError):
    """A push to the Hub failed; nothing was committed (the upload is a single commit)."""


# ----------------------------------------------------------------------------------------------------
# Input validation (no network)
# ----------------------------------------------------------------------------------------------------
def validate_repo_id(repo_id: Any) -> str:
    """Check ``repo_id`` is ``namespace/name`` as the Hub accepts it; returns it. ``ValueError`` otherwise."""
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"invalid repo id {repo_id!r}: expected 'namespace/name' (e.g. 'my-org/mscl-tacos_c3d')")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_PART_RE.match(p) for p in parts) or parts[1].endswith((".git", ".")):
        raise ValueError(
            f"invalid repo id {repo_id!r}: expected 'namespace/name' where each part starts with a letter or "
            "digit and uses only letters, digits, '-', '_' and '.' (no '--' or '..', name at most 96 characters)"
        )
    from huggingface_hub.utils import HFValidationError, validate_repo_id as _hf_validate

    try:
        _hf_validate(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"invalid repo id {repo_id!r}: {exc}") from None
    return repo_id


def validate_revision(revision: Any) -> str:
    """Check a branch name (``main`` or a new/existing branch); returns it. ``ValueError`` otherwise."""
    if not isinstance(revision, str) or not revision:
        raise ValueError(f"invalid revision {revision!r}: expected a branch name such as 'main'")
    if (
        revision.startswith(("/", "-", "refs/"))
        or revision.endswith(("/", ".", ".lock"))
        or any(c in revision for c in " ~^:?*[\\")
        or ".." in revision
        or "//" in revision
        or "@{" in revision
        or re.fullmatch(r"[0-9a-f]{40}", revision)
    ):
        raise ValueError(f"invalid branch name {revision!r} for --revision")
    return revision


# ----------------------------------------------------------------------------------------------------
# Reading a trained output folder
# ----------------------------------------------------------------------------------------------------
@dataclass
class ModelSource:
    """What :func:`inspect_model_folder` found in a trained / converted output folder."""

    path: Path  # the folder given
    model_dir: Path  # the save_pretrained folder inside it (often the same)
    preset: str
    config: Any  # MSCLConfig
    is_checkpoint: bool  # model_dir is a checkpoint-N folder (raw main weights + ema.safetensors)
    metrics_path: Optional[Path] = None
    training_config_path: Optional[Path] = None
    predictions_path: Optional[Path] = None
    checkpoints: List[Path] = field(default_factory=list)  # checkpoint-N folders, oldest first


def _has_weights(folder: Path) -> bool:
    return (folder / WEIGHTS_NAME).is_file() or (folder / f"{WEIGHTS_NAME}.index.json").is_file()


def _checkpoints(folder: Path) -> List[Path]:
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        m = _CHECKPOINT_RE.match(child.name)
        if m and child.is_dir() and _has_weights(child) and (child / "config.json").is_file():
            found.append((int(m.group(1)), child))
    return [p for _, p in sorted(found)]


def _first_file(name: str, *folders: Path) -> Optional[Path]:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


def inspect_model_folder(path: PathLike, preset: Optional[str] = None) -> ModelSource:
    """Locate config, weights, metrics and training config in a trained output folder (no network).

    Raises:
        ValueError: not a folder, no ``config.json``, no ``model.safetensors``, a configuration that is not
            an MSCL one, or no way to tell the preset (pass ``preset``), or a preset that disagrees with it.
    """
    from ..configuration_mscl import RENAMED_PRESETS, MSCLConfig

    root = Path(os.fspath(path)).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder (expected a trained output folder with config.json and {WEIGHTS_NAME})")
    if (root / "config.json").is_file():
        model_dir = root
    else:
        inner = [c for c in sorted(root.iterdir()) if c.is_dir() and not _CHECKPOINT_RE.match(c.name)
                 and (c / "config.json").is_file() and _has_weights(c)]
        if len(inner) != 1:
            raise ValueError(
                f"{root} has no config.json"
                + (f" (and several model folders inside: {', '.join(c.name for c in inner)}; pass one of them)" if inner else
                   f"; expected a trained output folder (config.json + {WEIGHTS_NAME})")
            )
        model_dir = inner[0]
    if not _has_weights(model_dir):
        raise ValueError(f"{model_dir} has config.json but no weights ({WEIGHTS_NAME}); nothing to publish")
    try:
        with open(model_dir / "config.json", encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {model_dir / 'config.json'}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("model_type") != MSCLConfig.model_type:
        got = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{model_dir / 'config.json'} is not an MSCL configuration (model_type {got!r}, expected 'mscl')")
    try:
        config = MSCLConfig.from_pretrained(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - any config error is an input problem here
        raise ValueError(f"invalid MSCL configuration in {model_dir / 'config.json'}: {exc}") from None
    recorded = getattr(config, "preset", None)
    recorded = RENAMED_PRESETS.get(recorded, recorded)  # a folder saved before a preset was renamed
    if preset is not None and recorded is not None and preset != recorded:
        raise ValueError(f"{model_dir} was trained with preset {recorded!r}, not {preset!r}")
    preset = preset or recorded
    if preset is None:
        raise ValueError(f"{model_dir / 'config.json'} records no preset; pass --preset to pick the model card")
    config.preset = preset
    is_checkpoint = bool(_CHECKPOINT_RE.match(model_dir.name)) or (model_dir / EMA_WEIGHTS_NAME).is_file()
    folders = (model_dir, root) if model_dir != root else (root,)
    return ModelSource(
        path=root,
        model_dir=model_dir,
        preset=preset,
        config=config,
        is_checkpoint=is_checkpoint,
        metrics_path=_first_file(METRICS_NAME, *folders),
        training_config_path=_first_file(TRAINING_CONFIG_NAME, *folders),
        predictions_path=_first_file(PREDICTIONS_NAME, *folders),
        checkpoints=_checkpoints(root),
    )


def _checkpoint_step(folder: Path) -> Optional[int]:
    state = folder / TRAINER_STATE_NAME
    if state.is_file():
        try:
            with open(state, encoding="utf-8") as f:
                return int(json.load(f)["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    m = _CHECKPOINT_RE.match(folder.name)
    return int(m.group(1)) if m else None


def _load_strict(model_dir: Path, config):
    from ..modeling_mscl import MSCLForTemporalGrounding

    model, info = MSCLForTemporalGrounding.from_pretrained(str(model_dir), config=config, output_loading_info=True)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise ValueError(f"weights in {model_dir} do not match the configuration: {problems}")
    return model.eval()


def _overlay_ema(model, ema_path: Path) -> int:
    """Copy the EMA parameters of ``ema.safetensors`` into ``model`` (buffers stay the live model's)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(ema_path))
    params = dict(model.named_parameters())
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(f"{ema_path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(params[name].shape):
                raise ValueError(f"{ema_path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(params[name].shape)}")
            params[name].copy_(tensor.to(params[name].dtype))
    with safe_open(str(ema_path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        return int(meta.get("num_updates", -1))
    except ValueError:
        return -1


def load_weights(source: ModelSource, weights: str = "ema", final_step: Optional[int] = None) -> Tuple[Any, str]:
    """The model to export, in eval mode, and a sentence saying where its weights came from.

    ``weights="ema"``: a checkpoint folder's EMA parameters (``ema.safetensors``) over its buffers, or a
    final folder's main weights (the trainer saves the EMA model there). ``weights="model"``: a checkpoint
    folder's main weights, or the latest ``checkpoint-N`` of a final folder (which must be at
    ``final_step`` when that is known).
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    if source.is_checkpoint:
        model = _load_strict(source.model_dir, source.config)
        if weights == "model":
            return model, f"raw weights of {source.model_dir.name}/{WEIGHTS_NAME}"
        ema_path = source.model_dir / EMA_WEIGHTS_NAME
        if not ema_path.is_file():
            raise ValueError(f"{source.model_dir} is a training checkpoint without {EMA_WEIGHTS_NAME}: no EMA weights to export")
        updates = _overlay_ema(model, ema_path)
        return model, f"EMA parameters of {source.model_dir.name}/{EMA_WEIGHTS_NAME}" + (f" ({updates} updates)" if updates >= 0 else "")
    if weights == "ema":
        return _load_strict(source.model_dir, source.config), f"EMA weights ({source.model_dir.name}/{WEIGHTS_NAME}, saved by the trainer)"
    if not source.checkpoints:
        raise ValueError(
            f"{source.model_dir / WEIGHTS_NAME} holds the EMA weights and {source.path} has no checkpoint-N folder with "
            "the raw weights; use --weights ema (or convert a SnAG checkpoint with --weights model)"
        )
    last = source.checkpoints[-1]
    step = _checkpoint_step(last)
    if final_step is not None and step is not None and step != final_step:
        raise ValueError(
            f"the latest checkpoint ({last.name}, step {step}) is not the run's last step ({final_step}): the final raw "
            "weights were not saved; use --weights ema"
        )
    return _load_strict(last, source.config), f"raw weights of {last.name}/{WEIGHTS_NAME}"


# ----------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    """A written hub folder."""

    folder: Path
    preset: str
    repo_id: str
    weights: str
    weights_source: str
    evaluated: bool
    files: List[str]


def _relative_imports(py_file: Path) -> List[str]:
    text = py_file.read_text(encoding="utf-8")
    return sorted(set(re.findall(r"^\s*from\s+\.(\w+)\s+import", text, flags=re.MULTILINE))
                  | set(re.findall(r"^\s*import\s+\.(\w+)", text, flags=re.MULTILINE)))


def check_code_files(folder: PathLike) -> List[str]:
    """Check that every module ``config.json`` names (``auto_map``, ``custom_pipelines``) and every flat
    module those import relatively are in ``folder``; returns the ``.py`` files. ``ValueError`` otherwise."""
    folder = Path(folder)
    with open(folder / "config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    refs = list((cfg.get("auto_map") or {}).values())
    for entry in (cfg.get("custom_pipelines") or {}).values():
        refs.append(entry.get("impl", ""))
    if not refs:
        raise ValueError(f"{folder / 'config.json'} has no auto_map: the folder would not load with trust_remote_code")
    todo = [r.split("--")[-1].split(".")[0] for r in refs if r]
    seen: set = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        file = folder / f"{name}.py"
        if not file.is_file():
            raise ValueError(f"{folder} lacks {name}.py, which trust_remote_code needs")
        todo.extend(_relative_imports(file))
    return sorted(f"{n}.py" for n in seen)


def _read_training_config(path: Optional[Path]) -> Dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


LOCAL_PATH_MARKER = "<local>"


def scrub_local_paths(obj: Any) -> Any:
    """Replace every absolute filesystem path in a JSON-like object by ``<local>/<last component>``.

    ``training_config.json`` records the run's dataset folder, output and logging folders; published as is
    it would leak the trainer's directory layout (user names, mount points). The last component keeps what
    matters (e.g. ``synthetic-v2-<fingerprint>``); Hub repo ids and relative paths are left alone.
    """
    if isinstance(obj, dict):
        return {k: scrub_local_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_local_paths(v) for v in obj]
    if isinstance(obj, str) and (os.path.isabs(obj) or obj.startswith("~")) and "\n" not in obj:
        tail = os.path.basename(os.path.normpath(os.path.expanduser(obj)))
        return f"{LOCAL_PATH_MARKER}/{tail}" if tail else LOCAL_PATH_MARKER
    return obj


def _evaluation_note(training_config: Dict[str, Any], metrics: Optional[CheckpointMetrics]) -> Optional[str]:
    limit = (training_config.get("options") or {}).get("max_eval_videos")
    if metrics is not None and limit:
        return (f"Only the first {int(limit)} videos of the split were evaluated (`max_eval_videos`); "
                "the numbers are not the full benchmark.")
    return None


def export_model(
    path: PathLike,
    output_dir: PathLike,
    *,
    repo_id: Optional[str] = None,
    weights: str = "ema",
    preset: Optional[str] = None,
    metrics: Optional[PathLike] = None,
    include_predictions: bool = False,
    overwrite: bool = False,
    verify: bool = False,
) -> ExportResult:
    """Write the self-contained hub folder of a trained output folder (no network).

    Args:
        path: the trained output folder (or a checkpoint-N folder, or a converted SnAG folder).
        output_dir: where to write the hub folder (must not exist unless ``overwrite``).
        repo_id: the repo the card is written for (code examples, model name); validated when given.
        weights: ``"ema"`` (default) or ``"model"``; see :func:`load_weights`.
        preset: the preset, when ``config.json`` does not record it (must agree when it does).
        metrics: a metrics JSON to use instead of the folder's ``metrics.json``. The folder's own file
            is not used with ``weights="model"`` on a final folder (it measured the EMA weights): that card
            then says "not evaluated".
        include_predictions: also copy ``predictions.jsonl``.
        overwrite: replace an existing ``output_dir``.
        verify: load the written folder in a fresh process without the package (:func:`verify_export`).

    Raises:
        ValueError: any input problem (see :func:`inspect_model_folder`), no card for the preset.
    """
    import torch

    if repo_id is not None:
        validate_repo_id(repo_id)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    source = inspect_model_folder(path, preset)
    load_card_spec(source.preset)  # no card -> ValueError, before any work
    out = Path(os.fspath(output_dir)).expanduser().resolve()
    if out in (source.path.resolve(), source.model_dir.resolve()):
        raise ValueError(f"the export folder {out} must differ from the trained folder")
    if out.exists() and not overwrite:
        raise ValueError(f"export folder {out} already exists; pass overwrite=True (--overwrite) to replace it")
    if metrics is not None:
        metrics_path: Optional[Path] = Path(os.fspath(metrics))
    elif weights == "model" and not source.is_checkpoint:
        # the folder's metrics.json measured its EMA weights, not the raw weights exported here
        metrics_path = None
    else:
        metrics_path = source.metrics_path
    metrics_obj = read_metrics(metrics_path) if metrics_path is not None else None
    training_config = _read_training_config(source.training_config_path)
    final_step = None  # the run's last step, which the trainer records in its metrics.json
    if source.metrics_path is not None:
        run_metrics = (metrics_obj.raw if metrics_path == source.metrics_path and metrics_obj is not None
                       else read_metrics(source.metrics_path).raw)
        if isinstance(run_metrics.get("global_step"), int):
            final_step = run_metrics["global_step"]

    model, weights_source = load_weights(source, weights, final_step=final_step)
    model.config.preset = source.preset
    repo_id = repo_id or f"<your-org>/mscl-{source.preset}"

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        from ..pipeline_mscl import MSCLGroundingPipeline

        with torch.no_grad():
            # records custom_pipelines in config.json and copies pipeline_mscl.py (+ its relative imports)
            MSCLGroundingPipeline(model=model).save_pretrained(str(staging))
        check_code_files(staging)
        if metrics_path is not None:
            shutil.copyfile(metrics_path, staging / METRICS_NAME)
        if source.training_config_path is not None:
            with open(staging / TRAINING_CONFIG_NAME, "w", encoding="utf-8") as f:
                json.dump(scrub_local_paths(training_config), f, indent=2)
                f.write("\n")
        if include_predictions and source.predictions_path is not None:
            shutil.copyfile(source.predictions_path, staging / PREDICTIONS_NAME)
        split = (metrics_obj.split if metrics_obj is not None else None) or training_config.get("eval_split")
        card = render_model_card(
            source.preset,
            model.config,
            metrics_obj,
            recipe=recipe_from_training_config(training_config),
            repo_id=repo_id,
            weights=weights,
            split=split,
            evaluation_note=_evaluation_note(training_config, metrics_obj),
            has_training_config=source.training_config_path is not None,
            num_parameters=sum(p.numel() for p in model.parameters()),
        )
        (staging / CARD_NAME).write_text(str(card), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if verify:
        verify_export(out, reference_model=model)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return ExportResult(out, source.preset, repo_id, weights, weights_source, metrics_obj is not None, files)


_VERIFY_SCRIPT = textwrap.dedent(
    """
    import sys

    class _NoPackage:
        # the exported folder must load without the mscl package: make it unimportable here
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_mscl" or name.startswith("modeling_mscl."):
                raise ImportError("modeling_mscl is blocked in this check")
            return None

    sys.meta_path.insert(0, _NoPackage())
    import torch
    from transformers import AutoModel

    folder, inputs_path, out_path = sys.argv[1:4]
    inputs = torch.load(inputs_path, weights_only=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**inputs["batch"])
        moments = model.ground(inputs["video"], inputs["queries"])
    assert "modeling_mscl" not in sys.modules
    torch.save({"logits": [t.contiguous() for t in out.logits], "offsets": [t.contiguous() for t in out.offsets],
                "moments": [m.contiguous() for m in moments]}, out_path)
    """
)


def _verification_inputs(config, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    stride = config.pyramid_stride * config.video_input_stride
    t = max(stride, 4 * stride)
    video = torch.randn(t, config.video_input_dim, generator=gen)
    queries = [torch.randn(n, config.text_input_dim, generator=gen) for n in (5, 3)]
    lmax = max(q.shape[0] for q in queries)
    text = torch.zeros(len(queries), lmax, config.text_input_dim)
    mask = torch.zeros(len(queries), lmax, dtype=torch.bool)
    for i, q in enumerate(queries):
        text[i, : q.shape[0]] = q
        mask[i, : q.shape[0]] = True
    batch = dict(
        video_features=video[None], video_mask=torch.ones(1, t, dtype=torch.bool), text_features=text,
        text_mask=mask, query_video_index=torch.zeros(len(queries), dtype=torch.long),
    )
    return {"batch": batch, "video": video, "queries": queries}


def _clean_env() -> Dict[str, str]:
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(pkg_parent)]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    if not env["PYTHONPATH"]:
        env.pop("PYTHONPATH")
    return env


def verify_export(folder: PathLike, reference_model=None, atol: float = 1e-6, timeout: float = 600.0) -> None:
    """Load ``folder`` with ``AutoModel.from_pretrained(..., trust_remote_code=True)`` in a fresh Python
    process where the package cannot be imported, and check its outputs equal ``reference_model``'s (the
    exported weights loaded with the package when omitted) to ``atol``. ``ValueError`` when they differ or
    the load fails."""
    import torch

    folder = Path(os.fspath(folder)).resolve()
    if reference_model is None:
        from ..modeling_mscl import MSCLForTemporalGrounding

        reference_model = MSCLForTemporalGrounding.from_pretrained(str(folder))
    reference_model.eval()
    inputs = _verification_inputs(reference_model.config)
    with tempfile.TemporaryDirectory(prefix="mscl-verify-") as tmp:
        in_path, out_path = os.path.join(tmp, "inputs.pt"), os.path.join(tmp, "outputs.pt")
        torch.save(inputs, in_path)
        env = _clean_env()
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch
        proc = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT, str(folder), in_path, out_path],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise ValueError(f"the exported folder {folder} does not load without the package:\n{proc.stderr[-3000:]}")
        remote = torch.load(out_path, weights_only=True)
    with torch.no_grad():
        out = reference_model(**inputs["batch"])
        moments = reference_model.ground(inputs["video"], inputs["queries"])
    pairs = list(zip(remote["logits"], out.logits)) + list(zip(remote["offsets"], out.offsets)) + list(zip(remote["moments"], moments))
    for a, b in pairs:
        if a.shape != b.shape or not torch.allclose(a, b, atol=atol, rtol=0):
            diff = (a - b).abs().max().item() if a.shape == b.shape else f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
            raise ValueError(f"the exported folder {folder} gives different outputs in a fresh process (max diff {diff})")


# ----------------------------------------------------------------------------------------------------
# Push
# ----------------------------------------------------------------------------------------------------
@dataclass
class PushResult:
    """Outcome of one push: the repo's head before and after, and whether a commit was made."""

    repo_id: str
    repo_type: str
    revision: str
    previous_head: Optional[str]
    head: str
    created_commit: bool
    url: str
    private: Optional[bool] = None


def _local_files(folder: Path, patterns: Optional[Sequence[str]]) -> List[str]:
    from fnmatch import fnmatch

    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or rel.startswith(".") or "/." in rel:
            continue
        if patterns is None or any(fnmatch(rel, pat) for pat in patterns):
            files.append(rel)
    return files


def push_folder(
    folder: PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: Optional[bool] = True,
    revision: str = "main",
    commit_message: str = "Upload with mscl",
    commit_description: Optional[str] = None,
    allow_patterns: Optional[Sequence[str]] = None,
    delete_missing: bool = True,
    token: Optional[str] = None,
    space_sdk: str = "gradio",
) -> PushResult:
    """Push every file of ``folder`` to ``repo_id`` at ``revision`` in **one commit**.

    Creates the repo (``private`` applies only then) and the branch when missing. Remote files that the
    folder does not have are deleted in the same commit when ``delete_missing`` (``.gitattributes`` is
    kept), so the repo mirrors the folder. Unchanged files are skipped; if nothing changed, no commit is
    made. The commit names the head it builds on (``parent_commit``), so a concurrent push makes it fail
    instead of being overwritten. A Space (``repo_type="space"``) is created with ``space_sdk``.

    Raises:
        ValueError: invalid repo id / revision / repo type, missing folder (before any request).
        PublishError: the Hub refused or the connection failed; the repo stays at its previous commit.
    """
    validate_repo_id(repo_id)
    validate_revision(revision)
    if repo_type not in ("model", "dataset", "space"):
        raise ValueError(f"repo_type must be 'model', 'dataset' or 'space', got {repo_type!r}")
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = _local_files(folder, allow_patterns)
    if not files:
        raise ValueError(f"{folder} has no file to push")

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    # HfHubHTTPError derives from the HTTP client's HTTPError (httpx / httpx2, depending on the version),
    # which also covers connection failures; catch that base without importing the client by name
    http_errors = tuple(c for c in HfHubHTTPError.__mro__ if c.__name__ == "HTTPError") + (HfHubHTTPError, OSError)

    api = HfApi(token=token)
    previous = None
    stage = "creating the repo"
    try:
        extra = {"space_sdk": space_sdk} if repo_type == "space" else {}
        url = str(api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra))
        if revision != "main":
            stage = f"creating branch {revision!r}"
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        stage = "reading the repo"
        info = api.repo_info(repo_id, repo_type=repo_type, revision=revision)
        previous = info.sha
        operations: List[Any] = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel)) for rel in files]
        if delete_missing:
            remote = api.list_repo_files(repo_id, repo_type=repo_type, revision=previous)
            keep = set(files) | {".gitattributes"}
            operations += [CommitOperationDelete(path_in_repo=p) for p in sorted(remote) if p not in keep]
        stage = "committing"
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            commit_description=commit_description,
            repo_type=repo_type,
            revision=revision,
            parent_commit=previous,
        )
    except http_errors as err:
        now = None
        if previous is not None:
            try:
                now = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
            except Exception:  # noqa: BLE001 - best effort, the original error is what matters
                now = None
        state = (
            f"the repo is still at its previous commit {previous}" if now == previous and previous is not None else
            (f"the repo head is now {now}" if now else "nothing was committed (the upload is a single commit)")
        )
        raise PublishError(f"push of {folder} to {repo_type} repo {repo_id}@{revision} failed while {stage}: {err}; {state}") from err
    head = commit.oid
    return PushResult(
        repo_id=repo_id, repo_type=repo_type, revision=revision, previous_head=previous, head=head,
        created_commit=head != previous, url=url, private=getattr(info, "private", None),
    )


@dataclass
class PublishResult:
    """A published (or, with ``dry_run``, only exported) checkpoint."""

    export: ExportResult
    push: Optional[PushResult]


def publish_model(
    path: PathLike,
    repo_id: str,
    *,
    weights: str = "ema",
    preset: Optional[str] = None,
    private: Optional[bool] = True,
    revision: str = "main",
    commit_message: Optional[str] = None,
    dry_run: bool = False,
    export_dir: Optional[PathLike] = None,
    overwrite: bool = False,
    include_predictions: bool = False,
    verify: bool = True,
    token: Optional[str] = None,
) -> PublishResult:
    """Export a trained output folder (:func:`export_model`) and push it to ``repo_id`` in one commit.

    ``repo_id`` may contain ``{preset}`` (e.g. ``"my-org/mscl-{preset}"``). With ``dry_run`` the folder is
    only written (to ``export_dir``, required then). Every input check runs before the first request.
    """
    if not isinstance(repo_id, str):
        raise ValueError(f"invalid repo id {repo_id!r}")
    validate_revision(revision)
    if dry_run and export_dir is None:
        raise ValueError("a dry run writes the hub folder only: give export_dir (--export-dir)")
    source = inspect_model_folder(path, preset)
    repo_id = validate_repo_id(repo_id.replace("{preset}", source.preset))
    load_card_spec(source.preset)
    tmp = None
    if export_dir is None:
        tmp = tempfile.mkdtemp(prefix="mscl-export-")
        export_dir = os.path.join(tmp, repo_id.split("/")[-1])
    try:
        export = export_model(
            path, export_dir, repo_id=repo_id, weights=weights, preset=source.preset,
            include_predictions=include_predictions, overwrite=overwrite, verify=verify,
        )
        if dry_run:
            return PublishResult(export, None)
        message = commit_message or f"Upload mscl {export.preset} checkpoint ({weights} weights)"
        push = push_folder(export.folder, repo_id, repo_type="model", private=private, revision=revision,
                           commit_message=message, token=token)
        return PublishResult(export, push)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------
def push_dataset(
    folder: PathLike,
    repo_id: str,
    *,
    private: Optional[bool] = True,
    revision: str = "main",
    commit_message: Optional[str] = None,
    dry_run: bool = False,
    token: Optional[str] = None,
) -> Optional[PushResult]:
    """Push a converted dataset folder (:mod:`modeling_mscl.data.schema`) to a dataset repo in one commit.

    The shards (``data/<split>-NNNNN-of-NNNNN.parquet``), ``mscl_dataset.json`` and the dataset card
    ``README.md`` (its ``configs`` list the splits) are uploaded; remote shards that the folder no longer
    has are deleted in the same commit, so a replaced split never leaves a mixed shard set. Stream it back
    with ``modeling_mscl.data.loading.load_grounding_dataset(repo_id, split, streaming=True)``.

    Raises:
        ValueError: not a dataset folder (no ``mscl_dataset.json``), a shard listed there is missing, an
            invalid repo id or branch (before any request). PublishError: the push failed.
    """
    from ..data.schema import DATA_SUBDIR, METADATA_FILENAME, read_metadata

    validate_repo_id(repo_id)
    validate_revision(revision)
    folder = Path(os.fspath(folder)).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    meta = read_metadata(str(folder))
    if meta is None:
        raise ValueError(f"{folder} is not a converted dataset: no {METADATA_FILENAME} (write it with modeling_mscl.data.convert)")
    splits = meta.get("splits") or {}
    if not splits:
        raise ValueError(f"{folder / METADATA_FILENAME} lists no split")
    for split, info in splits.items():
        for shard in info.get("shards", []):
            if not (folder / shard["file"]).is_file():
                raise ValueError(f"{folder}: shard {shard['file']} of split {split!r} is missing")
    if not (folder / "README.md").is_file():
        raise ValueError(f"{folder} has no README.md dataset card (it lists the splits for load_dataset)")
    if dry_run:
        return None
    return push_folder(
        folder, repo_id, repo_type="dataset", private=private, revision=revision,
        commit_message=commit_message or f"Upload mscl grounding dataset ({', '.join(sorted(splits))})",
        allow_patterns=[f"{DATA_SUBDIR}/*.parquet", METADATA_FILENAME, "README.md"], token=token,
    )


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="publish.py",
        description="Export trained MSCL checkpoints (EMA weights, code, model card, metrics) and push them to the "
        "Hugging Face Hub in one commit each; or push a converted dataset (--dataset).",
    )
    p.add_argument("paths", nargs="*", help="trained output folder(s) (or, with --dataset, dataset folders); none with "
                   "--space: only the Space, for the published model --repo-id")
    p.add_argument("--repo-id", help="target repo, 'ORG/NAME'; may contain {preset} (e.g. 'ORG/mscl-{preset}')")
    p.add_argument("--org", help="shortcut for --repo-id ORG/mscl-{preset}")
    p.add_argument("--dataset", action="store_true", help="the paths are converted dataset folders (pushed to dataset repos)")
    p.add_argument("--weights", choices=("ema", "model"), default="ema", help="EMA (default) or raw training weights")
    p.add_argument("--preset", help="preset of a folder whose config.json does not record it")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=True, help="create the repo private (default)")
    vis.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    p.add_argument("--revision", default="main", help="branch to commit to (created from main if missing)")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--dry-run", action="store_true", help="write the hub folder(s) only (to --export-dir); no upload")
    p.add_argument("--export-dir", help="where to write the hub folder (several paths: one subfolder per repo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    p.add_argument("--include-predictions", action="store_true", help="also publish predictions.jsonl")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip loading the exported folder in a fresh process before pushing")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the cached login)")
    p.add_argument("--space", metavar="SPACE_ID", default=None,
                   help="also push the web demo as a Gradio Space for the model repo (ORG/NAME, may contain {preset}); "
                   "with --dry-run the Space folder goes to <export-dir>-space")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.repo_id) == bool(args.org):
        raise SystemExit("error: give exactly one of --repo-id and --org")
    template = args.repo_id or f"{args.org}/mscl-{{preset}}"
    try:
        if args.space and args.dataset:
            raise ValueError("--space publishes the demo of a model, not of a dataset")
        if not args.paths:
            if not args.space or args.dataset:
                raise ValueError("give the folder(s) to publish (or --space with the --repo-id of a published model)")
            return _publish_space_only(args, template)
        if args.dataset:
            if len(args.paths) != 1:
                raise ValueError("--dataset pushes one folder per call")
            result = push_dataset(args.paths[0], template, private=args.private, revision=args.revision,
                                  commit_message=args.commit_message, dry_run=args.dry_run, token=args.token)
            print("dry run: dataset folder checked, nothing pushed" if result is None else _describe(result))
            return 0
        # check every folder and repo id before the first upload
        plan = []
        for path in args.paths:
            source = inspect_model_folder(path, args.preset)
            repo_id = validate_repo_id(template.replace("{preset}", source.preset))
            load_card_spec(source.preset)
            plan.append((path, repo_id))
        repos = [r for _, r in plan]
        if len(set(repos)) != len(repos):
            raise ValueError(f"several folders would go to the same repo ({', '.join(repos)}); use --repo-id 'ORG/mscl-{{preset}}'")
        if args.dry_run and not args.export_dir:
            raise ValueError("--dry-run needs --export-dir")
        spaces, configs = {}, {}
        if args.space:
            from .space import check_space_config

            for path, repo_id in plan:
                source = inspect_model_folder(path, args.preset)
                configs[repo_id] = source.config.to_dict()
                check_space_config(configs[repo_id], repo_id)  # before any upload
                spaces[repo_id] = validate_repo_id(args.space.replace("{preset}", source.preset))
            if len(set(spaces.values())) != len(spaces):
                raise ValueError("several checkpoints would go to the same Space; use --space 'ORG/mscl-{preset}-demo'")
        for path, repo_id in plan:
            export_dir = None
            if args.export_dir:
                export_dir = args.export_dir if len(plan) == 1 else os.path.join(args.export_dir, repo_id.split("/")[-1])
            res = publish_model(
                path, repo_id, weights=args.weights, preset=args.preset, private=args.private, revision=args.revision,
                commit_message=args.commit_message, dry_run=args.dry_run, export_dir=export_dir, overwrite=args.overwrite,
                include_predictions=args.include_predictions, verify=args.verify, token=args.token,
            )
            e = res.export
            print(f"{path}: exported {e.preset} ({e.weights_source}; {'evaluated' if e.evaluated else 'not evaluated'}) -> "
                  f"{e.folder if res.push is None or export_dir else repo_id}: {', '.join(e.files)}")
            if res.push is not None:
                print(_describe(res.push))
            if args.space:
                from .space import publish_space

                space_export, space_push = publish_space(
                    spaces[repo_id], repo_id, config=configs[repo_id],
                    model_revision=None if args.revision == "main" else args.revision, private=args.private,
                    dry_run=args.dry_run, export_dir=f"{os.path.normpath(export_dir)}-space" if export_dir else None,
                    overwrite=args.overwrite, token=args.token,
                )
                print(f"Space for {repo_id}: {space_export.folder if space_push is None else spaces[repo_id]}: "
                      f"{', '.join(space_export.files)}")
                if space_push is not None:
                    print(_describe(space_push))
    except (ValueError, PublishError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


def _publish_space_only(args, model_repo_id: str) -> int:
    from .space import publish_space

    if "{preset}" in model_repo_id:
        raise ValueError("--space without a folder needs the model's exact --repo-id (no {preset})")
    if args.dry_run and not args.export_dir:
        raise ValueError("--dry-run needs --export-dir")
    export, push = publish_space(
        args.space, validate_repo_id(model_repo_id), model_revision=None if args.revision == "main" else args.revision,
        private=args.private, commit_message=args.commit_message, dry_run=args.dry_run, export_dir=args.export_dir,
        overwrite=args.overwrite, token=args.token,
    )
    print(f"Space for {model_repo_id}: {export.folder if push is None else push.repo_id}: {', '.join(export.files)}")
    if push is not None:
        print(_describe(push))
    return 0


def _describe(push: PushResult) -> str:
    what = f"new commit {push.head}" if push.created_commit else f"no change (still at {push.head})"
    return f"{push.repo_type} repo {push.repo_id}@{push.revision}: {what}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
