# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The web demo as a Space folder (modeling_mscl/hub/space.py): what it holds, and its push — with the model
or alone — to the loopback fake Hub in one commit (tests/hub_server.py)."""

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from modeling_mscl.hub.publish import PublishError, main as publish_main
from modeling_mscl.hub.space import DEMO_FILES, SPACE_GRADIO_VERSION, publish_space, render_space

from demo_helpers import grounding_model, hub_sources, no_extractor_model, save_checkpoint
from video_helpers import make_tiny_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_PACKAGE_IMPORT = textwrap.dedent(
    """
    import sys

    class _NoPackage:
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_mscl" or name.startswith("modeling_mscl."):
                raise ImportError("modeling_mscl is blocked in this process")
            return None

    sys.meta_path.insert(0, _NoPackage())
    sys.path.insert(0, sys.argv[1])
    from mscl_demo import GroundingDemo, build_demo
    from mscl_demo.examples import EXAMPLES
    from mscl_demo.render import answer_html

    print(GroundingDemo.__module__, "modeling_mscl" in sys.modules)
    """
)
DEMO_DIR = REPO_ROOT / "modeling_mscl" / "demo"
EXPECTED_FILES = {"README.md", "app.py", "requirements.txt", *(f"mscl_demo/{n}" for n in DEMO_FILES)}


def _front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, text[:200]
    return yaml.safe_load(match.group(1))


def _commits(hub, repo_id, repo_type="model"):
    return [c.sha for c in hub.commits(repo_id, repo_type)]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def checkpoint(clip_dir, tmp_path_factory):
    # its extractor and sentence encoder named by Hub id, as a Space needs (nothing is loaded here)
    model = grounding_model(clip_dir, **hub_sources("org/tiny-clip"))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "mscl-clip")


@pytest.fixture(scope="module")
def config(checkpoint):
    return json.loads((checkpoint / "config.json").read_text())


@pytest.mark.slow
def test_space_folder(config, tmp_path):
    clip = "openai/clip-vit-base-patch32"
    config = dict(config, video_feature_source=dict(config["video_feature_source"], name_or_path=clip),
                  text_feature_source=dict(config["text_feature_source"], name_or_path=clip))
    export = render_space("org/mscl-clip", tmp_path / "space", config=config, space_id="org/mscl-clip-demo")
    assert set(export.files) == EXPECTED_FILES
    folder = export.folder
    readme = (folder / "README.md").read_text()
    meta = _front_matter(readme)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == SPACE_GRADIO_VERSION and meta["app_file"] == "app.py"
    assert (folder / meta["app_file"]).is_file()
    # the model repo, and the Hub model its frame features and sentence features come from
    assert meta["models"] == ["org/mscl-clip", "openai/clip-vit-base-patch32"]
    assert meta["license"] == "apache-2.0" and len(meta["short_description"]) <= 60
    assert "python -m modeling_mscl.demo --model org/mscl-clip" in readme
    # the page's code is the package's demo, byte for byte; app.py loads the model repo by id
    for name in DEMO_FILES:
        assert (folder / "mscl_demo" / name).read_bytes() == (DEMO_DIR / name).read_bytes(), name
    # ... and it imports without the package (the Space has none)
    proc = subprocess.run([sys.executable, "-c", NO_PACKAGE_IMPORT, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["mscl_demo.app", "False"]
    app = (folder / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert "MODEL_ID = os.environ.get(\"MSCL_MODEL\") or 'org/mscl-clip'" in app
    assert "from mscl_demo import build_demo" in app
    # requirements: valid specifiers, what the model's remote code and the page import, no package install
    from packaging.requirements import Requirement

    reqs = [Requirement(line) for line in (folder / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert {"torch", "transformers", "av", "pillow", "numpy"} <= {r.name for r in reqs}
    assert "mscl" not in {r.name for r in reqs} and "gradio" not in {r.name for r in reqs}
    # deterministic: the same inputs give the same bytes
    again = render_space("org/mscl-clip", tmp_path / "again", config=config, space_id="org/mscl-clip-demo")
    for name in EXPECTED_FILES:
        assert (again.folder / name).read_bytes() == (folder / name).read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        render_space("org/mscl-clip", tmp_path / "space", config=config)


def test_sdk_version_is_the_installed_gradio_major():
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed (pip install 'mscl[demo]')")
    import gradio

    assert gradio.__version__.split(".")[0] == SPACE_GRADIO_VERSION.split(".")[0]


def test_space_refused_for_a_checkpoint_without_video_extractor(tmp_path, fake_hub):
    config = no_extractor_model().config.to_dict()
    with pytest.raises(ValueError, match="C3D clip features.*could not ground an uploaded video"):
        render_space("org/mscl-tacos", tmp_path / "space", config=config)
    folder = save_checkpoint(no_extractor_model(), tmp_path / "tacos")
    assert publish_main([str(folder), "--repo-id", "org/mscl-tacos", "--space", "org/tacos-demo", "--no-verify"]) == 2
    assert fake_hub.requests == []  # refused before the model was pushed


def test_space_refused_for_encoders_it_cannot_load(config, clip_dir, tmp_path):
    local = dict(config, video_feature_source=dict(config["video_feature_source"], name_or_path=str(clip_dir)))
    with pytest.raises(ValueError, match=r"video_feature_source.name_or_path is a local folder .*tiny-clip.*cannot load"):
        render_space("org/mscl-clip", tmp_path / "a", config=local)
    local = dict(config, text_feature_source=dict(config["text_feature_source"], name_or_path=str(clip_dir)))
    with pytest.raises(ValueError, match=r"text_feature_source.name_or_path is a local folder"):
        render_space("org/mscl-clip", tmp_path / "b", config=local)
    glove = dict(config, text_feature_source={"type": "word_vectors", "tokenizer": "basic_english", "dim": 300})
    with pytest.raises(ValueError, match="embeds sentences with 'word_vectors'.*needs a Hugging Face text model"):
        render_space("org/mscl-clip", tmp_path / "c", config=glove)
    assert not any(tmp_path.iterdir())


def test_publish_model_and_space_in_one_command(fake_hub, checkpoint, tmp_path, capsys):
    argv = [str(checkpoint), "--repo-id", "org/mscl-clip", "--space", "org/mscl-{preset}-demo", "--no-verify", "--public"]
    assert publish_main(argv) == 0, capsys.readouterr().err
    space_id = "org/mscl-quickstart-demo"
    model_commits, space_commits = _commits(fake_hub, "org/mscl-clip"), _commits(fake_hub, space_id, "space")
    assert len(model_commits) == 2 and len(space_commits) == 2  # the repo's initial commit + one upload each
    commits = [r for r in fake_hub.requests if r[0] == "POST" and "/commit/" in r[1]]
    assert [c[1].split("/")[2] for c in commits] == ["models", "spaces"]
    files = fake_hub.files(space_id, "space")
    assert set(files) - {".gitattributes"} == EXPECTED_FILES
    assert _front_matter(files["README.md"].decode())["models"] == ["org/mscl-clip", "org/tiny-clip"]
    assert b"'org/mscl-clip'" in files["app.py"]
    assert "pipeline_mscl.py" in fake_hub.files("org/mscl-clip") and "video_features_mscl.py" in fake_hub.files("org/mscl-clip")
    from huggingface_hub import HfApi

    info = HfApi().space_info(space_id)
    assert info.sdk == "gradio" and info.private is False
    out = capsys.readouterr().out
    assert f"space repo {space_id}@main: new commit" in out
    # the same command again: no new commit anywhere
    assert publish_main(argv) == 0
    assert _commits(fake_hub, "org/mscl-clip") == model_commits and _commits(fake_hub, space_id, "space") == space_commits
    assert "no change" in capsys.readouterr().out


def test_space_alone_for_a_published_model(fake_hub, checkpoint, tmp_path, capsys):
    # no model repo yet: refused, and no Space is created
    assert publish_main(["--repo-id", "org/mscl-clip", "--space", "org/clip-demo"]) == 2
    assert "cannot read config.json of model repo 'org/mscl-clip'" in capsys.readouterr().err
    assert not fake_hub.repo_exists("org/clip-demo", "space")
    assert publish_main([str(checkpoint), "--repo-id", "org/mscl-clip", "--no-verify"]) == 0
    before = _commits(fake_hub, "org/mscl-clip")
    assert publish_main(["--repo-id", "org/mscl-clip", "--space", "org/clip-demo", "--revision", "main"]) == 0
    assert _commits(fake_hub, "org/mscl-clip") == before  # the model repo is only read
    assert set(fake_hub.files("org/clip-demo", "space")) - {".gitattributes"} == EXPECTED_FILES
    # a dry run writes the folder only
    out = tmp_path / "space"
    assert publish_main(["--repo-id", "org/mscl-clip", "--space", "org/other-demo", "--dry-run", "--export-dir", str(out)]) == 0
    assert (out / "app.py").is_file() and not fake_hub.repo_exists("org/other-demo", "space")
    # exit codes and messages of bad calls
    assert publish_main(["--repo-id", "org/mscl-{preset}", "--space", "org/x-demo"]) == 2
    assert publish_main(["--repo-id", "org/mscl-clip"]) == 2
    assert publish_main(["--dataset", str(checkpoint), "--repo-id", "org/d", "--space", "org/x-demo"]) == 2


def test_failed_space_push_leaves_the_space_as_it_was(fake_hub, config, tmp_path):
    first_export, first = publish_space("org/clip-demo", "org/mscl-clip", config=config)
    changed = dict(config, preset="debug-2")
    fake_hub.fail_next("commit", status=403)
    with pytest.raises(PublishError, match="space repo org/clip-demo@main failed while committing"):
        publish_space("org/clip-demo", "org/mscl-clip", config=changed)
    assert fake_hub.head("org/clip-demo", "space") == first.head
