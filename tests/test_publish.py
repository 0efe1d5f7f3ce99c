"""Publishing: model cards (hub_cards/), export + push of checkpoints and datasets through the fake Hub."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling_mscl import PRESET_NAMES, MSCLConfig, MSCLForTemporalGrounding
from modeling_mscl.hub import cards as cards_mod
from modeling_mscl.hub.cards import available_card_presets, read_metrics, render_model_card
from modeling_mscl.hub.publish import (
    PublishError,
    export_model,
    main as publish_main,
    publish_model,
    push_dataset,
    push_folder,
    scrub_local_paths,
    validate_repo_id,
)
from modeling_mscl.metrics import recall_at_tiou
from modeling_mscl.training.recipe import TrainingRecipe

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_HEADER = "## Reported in the paper (not reproduced here)"


# --------------------------------------------------------------------------------------------------
# a trained quickstart output folder, laid out as train_scripts/run.py leaves it
# --------------------------------------------------------------------------------------------------
def _save_ema(params, path, num_updates):
    try:  # the trainer's own EMA writer when it is there
        from modeling_mscl.training.ema import ModelEMA
    except ImportError:  # pragma: no cover - same file format: parameters only, safetensors
        save_file(params, str(path), metadata={"decay": "0.999", "num_updates": str(num_updates)})
        return
    model = MSCLForTemporalGrounding(MSCLConfig.from_preset("quickstart"))
    ema = ModelEMA(model, decay=0.999)
    ema.load_state_dict(params)
    ema.num_updates = num_updates
    ema.save(str(path))


def make_trained_folder(root: Path, step: int = 8, seed: int = 0) -> Path:
    """A randomly initialised quickstart model "trained" for ``step`` steps: the final folder holds the EMA model
    as main weights, metrics.json, predictions.jsonl, training_config.json, and checkpoint-<step>/ holds the
    raw weights + ema.safetensors + trainer_state.json (what MSCLTrainer / run_training write)."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = MSCLConfig.from_preset("quickstart")
    recipe = TrainingRecipe.from_preset("quickstart")
    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(cfg)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ema = {n: (0.9 * init[n] + 0.1 * p.detach()).contiguous() for n, p in model.named_parameters()}

    ckpt = root / f"checkpoint-{step}"
    model.save_pretrained(ckpt)
    _save_ema(ema, ckpt / "ema.safetensors", step)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))

    ema_model = MSCLForTemporalGrounding(cfg)
    ema_model.load_state_dict({**model.state_dict(), **ema})
    ema_model.save_pretrained(root)  # MSCLTrainer.save_ema_model: EMA weights as the main weights

    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 50, size=(40, 1)) + np.array([[0.0, 10.0]])
    preds = []
    for g in gt:
        seg = np.sort(g[None] + rng.normal(0, 3, size=(5, 2)), axis=1)
        preds.append(np.concatenate([seg, rng.uniform(size=(5, 1))], axis=1))
    metrics = recall_at_tiou(preds, gt, recipe.eval_ranks, recipe.eval_thresholds)
    metrics.update(num_videos=10, by_moment_length={}, train_seconds=1.0, train_loss=0.5, global_step=step)
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (root / "predictions.jsonl").write_text('{"query_id": "q0", "moments": []}\n')
    (root / "training_config.json").write_text(
        json.dumps({"options": {"max_eval_videos": None, "output_dir": str(root), "dataset": None},
                    "dataset": "/home/someone/.cache/mscl/synthetic-v2-0123", "eval_split": "test",
                    "training_arguments": {"logging_dir": str(root / "runs"), "hub_model_id": "org/mscl-quickstart"},
                    "preset": "quickstart", "recipe": recipe.to_dict(), "config": cfg.to_dict()}, indent=2) + "\n"
    )
    return root


def test_scrub_local_paths():
    data = {"a": "/srv/x/run-1/", "b": ["~/data/tacos", "data/tacos", "org/name", 3, None], "c": {"d": "/"}}
    assert scrub_local_paths(data) == {"a": "<local>/run-1", "b": ["<local>/tacos", "data/tacos", "org/name", 3, None],
                                       "c": {"d": "<local>"}}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return make_trained_folder(tmp_path_factory.mktemp("publish") / "mscl-quickstart")


def _card_model_index(card_text: str) -> dict:
    from huggingface_hub import ModelCard

    card = ModelCard(card_text)
    return {r.metric_type: r.metric_value for r in (card.data.eval_results or [])}


def _metric_entries(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k == "mIoU" or (k.startswith("R") and "@" in k)}


def _commit_requests(hub):
    return [r for r in hub.requests if r[0] == "POST" and "/commit/" in r[1]]


# --------------------------------------------------------------------------------------------------
# model cards
# --------------------------------------------------------------------------------------------------
def test_every_preset_has_a_card():
    assert set(available_card_presets()) == set(PRESET_NAMES)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_card_without_metrics_says_not_evaluated(preset):
    card = render_model_card(preset, repo_id=f"org/mscl-{preset}")
    text = str(card)
    assert "not evaluated" in text.lower()
    assert "model-index" not in card.data.to_dict()
    assert not card.data.eval_results
    assert "model-index" not in text.split("\n---\n", 1)[0]
    # the paper's numbers, when the paper has any for this setting, live only under their own header
    spec = cards_mod.load_card_spec(preset)
    assert PAPER_HEADER in text
    before, after = text.split(PAPER_HEADER, 1)
    for row in (spec.get("paper_results") or {}).get("rows", []):
        for value in row["values"]:
            assert f"{value:.2f}" in after.split("\n## ", 1)[0]
            assert f"{value:.2f}" not in before
    # what the card must tell users, filled from the preset's config
    cfg = MSCLConfig.from_preset(preset)
    assert f'AutoModel.from_pretrained("org/mscl-{preset}", trust_remote_code=True)' in text
    assert f'pipeline("video-temporal-grounding", model="org/mscl-{preset}", trust_remote_code=True' in text
    assert f"| video feature dimension (`video_input_dim`) | {cfg.video_input_dim} |" in text
    assert "{SnAG}: Scalable and Accurate Video Grounding" in text and "Mu, Fangzhou and Mo, Sicheng and Li, Yin" in text
    assert "Multi-Scale Contrastive Learning for Video Temporal Grounding" in text
    assert "## Licences" in text and "## Limitations" in text and "## Training recipe" in text
    assert "None" not in text.replace("`None`", "")


def test_card_model_index_equals_metrics_json(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    card = render_model_card("quickstart", metrics=trained_run / "metrics.json", repo_id="org/mscl-quickstart")
    text = str(card)
    assert _card_model_index(text) == _metric_entries(metrics)
    assert "not evaluated" not in text.lower()
    results = text.split("## Results", 1)[1].split(PAPER_HEADER, 1)[0]
    assert f"| R@1 | {metrics['R1@0.3']:.2f} | {metrics['R1@0.5']:.2f} | {metrics['R1@0.7']:.2f} | {metrics['R1@mean']:.2f} |" in results
    assert f"queries: {metrics['num_queries']}" in results
    # every model-index entry carries the task, dataset and split
    for r in card.data.eval_results:
        assert (r.task_type, r.dataset_type, r.dataset_split) == ("video-temporal-grounding", "mscl-synthetic", "test")


def test_paper_numbers_never_enter_the_model_index():
    fake = {"R1@0.3": 1.0, "R1@0.5": 2.0, "R5@0.3": 3.0, "R5@0.5": 4.0}
    card = render_model_card("tacos_c3d", metrics=fake, repo_id="org/mscl-tacos_c3d")
    assert _card_model_index(str(card)) == fake
    assert "58.17" in str(card).split(PAPER_HEADER, 1)[1]


def test_read_metrics_layouts_and_errors(tmp_path):
    m = read_metrics({"eval_R1@0.5": 10.0, "eval_R1@mean": 9.0, "eval_num_queries": 7, "epoch": 3})
    assert m.values == {"R1@0.5": 10.0, "R1@mean": 9.0} and m.num_queries == 7
    m = read_metrics({"metrics": {"R1@0.50": 10.0}, "split": "val"})
    assert m.values == {"R1@0.5": 10.0} and m.split == "val"
    with pytest.raises(ValueError, match="no recall entry"):
        read_metrics({"loss": 1.0})
    with pytest.raises(ValueError, match="R1@0.5"):
        read_metrics({"R1@0.5": float("nan")})
    with pytest.raises(ValueError, match="percentage"):
        read_metrics({"R1@0.5": 140.0})
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        read_metrics(bad)


def test_unknown_preset_has_no_card():
    with pytest.raises(ValueError, match="no model-card template for preset 'tacos_i3d'.*quickstart"):
        render_model_card("tacos_i3d")


def test_card_of_another_preset_config_is_refused():
    with pytest.raises(ValueError, match="preset 'quickstart', not 'tacos_c3d'"):
        render_model_card("tacos_c3d", MSCLConfig.from_preset("quickstart"))


def test_installed_copy_of_the_templates_is_found(tmp_path, monkeypatch):
    """Without hub_cards/ beside the package, the copy inside the package (what a wheel ships) is used."""
    installed = tmp_path / "pkg" / "cards"
    shutil.copytree(REPO_ROOT / "hub_cards", installed)
    monkeypatch.setattr(cards_mod, "_candidate_dirs", lambda: [tmp_path / "missing", installed])
    assert cards_mod.card_source_dir() == installed
    assert "not evaluated" in str(render_model_card("quickstart")).lower()


@pytest.mark.slow
def test_wheel_ships_the_card_templates(tmp_path):
    """setup.py's build_py copies hub_cards/ into modeling_mscl/hub/cards/ of the wheel (package data)."""
    pytest.importorskip("setuptools", reason="building a wheel without isolation needs setuptools installed")
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None and importlib.util.find_spec("wheel") is None:
        pytest.skip("building a wheel needs setuptools>=70.1 or the wheel package")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy(REPO_ROOT / name, src / name)
    if not (src / "README.md").exists():
        (src / "README.md").write_text("mscl\n")
    shutil.copytree(REPO_ROOT / "hub_cards", src / "hub_cards")
    shutil.copytree(REPO_ROOT / "modeling_mscl", src / "modeling_mscl", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"modeling_mscl/hub/cards/{p.name}" for p in (REPO_ROOT / "hub_cards").iterdir() if p.suffix in (".j2", ".yaml")}
    assert expected and expected <= names
    assert "modeling_mscl/hub/cards.py" in names and "modeling_mscl/hub/publish.py" in names


# --------------------------------------------------------------------------------------------------
# export + push of a trained quickstart checkpoint, loaded back in a fresh process
# --------------------------------------------------------------------------------------------------
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys

    class _NoPackage:  # prove the Hub repo alone is enough: the package cannot be imported here
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_mscl" or name.startswith("modeling_mscl."):
                raise ImportError("modeling_mscl is blocked in this process")
            return None

    sys.meta_path.insert(0, _NoPackage())
    import numpy as np
    import torch
    from transformers import AutoModel, pipeline

    inputs = torch.load(sys.argv[1], weights_only=True)
    model = AutoModel.from_pretrained("org/mscl-quickstart", trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**inputs["batch"])
    pipe = pipeline(model="org/mscl-quickstart", trust_remote_code=True)
    result = pipe(inputs["video"].numpy(), [q.numpy() for q in inputs["queries"]])
    torch.save({"logits": list(out.logits), "offsets": list(out.offsets)}, sys.argv[2])
    with open(sys.argv[3], "w") as f:
        json.dump({"pipeline": result, "package_imported": "modeling_mscl" in sys.modules,
                   "model_class": type(model).__module__ + "." + type(model).__name__}, f)
    """
)


def _inputs(cfg, seed=1):
    gen = torch.Generator().manual_seed(seed)
    t = 48
    video = torch.randn(t, cfg.video_input_dim, generator=gen)
    queries = [torch.randn(n, cfg.text_input_dim, generator=gen) for n in (6, 4)]
    text = torch.zeros(2, 6, cfg.text_input_dim)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    for i, q in enumerate(queries):
        text[i, : len(q)] = q
        mask[i, : len(q)] = True
    pad = 64  # a multiple of the top pyramid stride (16)
    vid = torch.zeros(1, pad, cfg.video_input_dim)
    vid[0, :t] = video
    vmask = torch.zeros(1, pad, dtype=torch.bool)
    vmask[0, :t] = True
    batch = dict(video_features=vid, video_mask=vmask, text_features=text, text_mask=mask,
                 query_video_index=torch.zeros(2, dtype=torch.long))
    return {"batch": batch, "video": video, "queries": queries}


def _fresh_env():
    env = dict(os.environ)  # HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_DISABLE_XET of the fake hub
    keep = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != REPO_ROOT]
    env["PYTHONPATH"] = os.pathsep.join(keep)
    return env


@pytest.mark.slow
def test_publish_quickstart_checkpoint_and_load_it_without_the_package(fake_hub, trained_run, tmp_path):
    assert importlib.util.find_spec("modeling_mscl.pipeline_mscl") is not None
    result = publish_model(trained_run, "org/mscl-quickstart", verify=False)
    push = result.push
    assert push.created_commit and fake_hub.head("org/mscl-quickstart") == push.head
    assert len(_commit_requests(fake_hub)) == 1  # one commit for the whole folder

    files = fake_hub.files("org/mscl-quickstart")
    expected = {"README.md", "config.json", "model.safetensors", "metrics.json", "training_config.json",
                "configuration_mscl.py", "modeling_mscl.py", "losses_mscl.py", "nms_mscl.py", "processing_mscl.py",
                "pipeline_mscl.py", "text_embedding_mscl.py"}
    assert expected <= set(files)
    assert "predictions.jsonl" not in files and not any(f.startswith("checkpoint-") for f in files)
    assert fake_hub.file_info("org/mscl-quickstart", "model.safetensors").lfs
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModel"] == "modeling_mscl.MSCLForTemporalGrounding"
    assert config["custom_pipelines"]["video-temporal-grounding"]["impl"] == "pipeline_mscl.MSCLGroundingPipeline"
    assert config["preset"] == "quickstart"
    assert files["metrics.json"] == (trained_run / "metrics.json").read_bytes()
    # local folders of the trainer are not published; everything else of training_config.json is
    published, local = json.loads(files["training_config.json"]), json.loads((trained_run / "training_config.json").read_text())
    assert published["dataset"] == "<local>/synthetic-v2-0123"
    assert published["options"]["output_dir"] == "<local>/mscl-quickstart"
    assert published["training_arguments"] == {"logging_dir": "<local>/runs", "hub_model_id": "org/mscl-quickstart"}
    assert published["config"] == local["config"] and str(trained_run) not in files["training_config.json"].decode()
    metrics = json.loads(files["metrics.json"])
    assert _card_model_index(files["README.md"].decode()) == _metric_entries(metrics)

    # the published weights are the EMA weights (the default), not the raw weights of the checkpoint
    (tmp_path / "w.safetensors").write_bytes(files["model.safetensors"])
    published = load_file(str(tmp_path / "w.safetensors"))
    ema = load_file(str(trained_run / "model.safetensors"))
    raw = load_file(str(trained_run / "checkpoint-8" / "model.safetensors"))
    assert set(published) == set(ema)
    assert all(torch.equal(published[k], ema[k]) for k in ema)
    assert not all(torch.equal(published[k], raw[k]) for k in raw)

    # a fresh process that never imports the package: AutoModel + pipeline from the repo id
    cfg = MSCLConfig.from_preset("quickstart")
    inputs = _inputs(cfg)
    torch.save(inputs, tmp_path / "inputs.pt")
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt"), str(tmp_path / "out.json")],
        cwd=tmp_path, env=_fresh_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((tmp_path / "out.json").read_text())
    assert info["package_imported"] is False
    assert info["model_class"].startswith("transformers_modules.")

    reference = MSCLForTemporalGrounding(cfg)
    reference.load_state_dict(published)
    reference.eval()
    with torch.no_grad():
        expected_out = reference(**inputs["batch"])
    remote = torch.load(tmp_path / "out.pt", weights_only=True)
    for a, b in zip(remote["logits"] + remote["offsets"], list(expected_out.logits) + list(expected_out.offsets)):
        assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-6

    from modeling_mscl import MSCLGroundingPipeline

    local = MSCLGroundingPipeline(model=reference)(inputs["video"].numpy(), [q.numpy() for q in inputs["queries"]])
    grounded = info["pipeline"]
    assert len(grounded) == 2 and all(r["moments"] for r in grounded)
    for got, want in zip(grounded, local):
        assert len(got["moments"]) == len(want["moments"])
        for g, w in zip(got["moments"], want["moments"]):
            assert abs(g["start"] - w["start"]) <= 1e-4 and abs(g["end"] - w["end"]) <= 1e-4
            assert abs(g["score"] - w["score"]) <= 1e-5
            assert 0.0 <= g["start"] <= g["end"]


def test_pushing_the_same_checkpoint_twice_makes_no_new_commit(fake_hub, trained_run, tmp_path):
    first = publish_model(trained_run, "org/mscl-quickstart", export_dir=tmp_path / "export", verify=False)
    n_commits = len(fake_hub.commits("org/mscl-quickstart"))
    again = push_folder(tmp_path / "export", "org/mscl-quickstart", commit_message="again")
    assert not again.created_commit and again.head == first.push.head
    # a fresh export of the same run is byte-identical, so it is a no-op too
    fresh = publish_model(trained_run, "org/mscl-quickstart", verify=False)
    assert not fresh.push.created_commit
    assert len(fake_hub.commits("org/mscl-quickstart")) == n_commits
    assert fake_hub.head("org/mscl-quickstart") == first.push.head


def test_failed_push_raises_and_leaves_the_previous_commit(fake_hub, trained_run, tmp_path):
    first = publish_model(trained_run, "org/mscl-quickstart", verify=False)
    before = fake_hub.files("org/mscl-quickstart")
    # the same run with a new evaluation: its card and metrics change
    changed = tmp_path / "run"
    shutil.copytree(trained_run, changed)
    metrics = json.loads((changed / "metrics.json").read_text())
    metrics["R1@0.5"] = 12.5
    (changed / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    fake_hub.fail_next("commit", status=500)
    n_commit_requests = len(_commit_requests(fake_hub))
    with pytest.raises(PublishError, match=r"(?s)org/mscl-quickstart@main failed while committing.*Injected failure"
                                           r".*previous commit " + first.push.head):
        publish_model(changed, "org/mscl-quickstart", verify=False)
    assert len(_commit_requests(fake_hub)) == n_commit_requests + 1  # it did reach the commit, which failed
    assert fake_hub.head("org/mscl-quickstart") == first.push.head
    assert fake_hub.files("org/mscl-quickstart") == before

    ok = publish_model(changed, "org/mscl-quickstart", verify=False, commit_message="new evaluation")
    assert ok.push.created_commit and ok.push.previous_head == first.push.head
    assert json.loads(fake_hub.files("org/mscl-quickstart")["metrics.json"])["R1@0.5"] == 12.5
    assert fake_hub.commits("org/mscl-quickstart")[0].title == "new evaluation"


def test_branch_visibility_and_weights_choice(fake_hub, trained_run):
    res = publish_model(trained_run, "org/mscl-{preset}", weights="model", revision="raw", private=False, verify=False)
    assert res.push.repo_id == "org/mscl-quickstart" and res.push.revision == "raw" and res.push.private is False
    assert fake_hub.head("org/mscl-quickstart", revision="raw") == res.push.head
    assert "metrics.json" not in fake_hub.files("org/mscl-quickstart", revision="main")  # main untouched
    files = fake_hub.files("org/mscl-quickstart", revision="raw")
    # the raw weights of the last checkpoint; the EMA's metrics do not describe them
    assert "metrics.json" not in files and "not evaluated" in files["README.md"].decode().lower()
    assert "raw training weights" in files["README.md"].decode()


def test_bad_input_fails_before_any_request(fake_hub, trained_run, tmp_path):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(trained_run / "config.json", no_weights / "config.json")
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    shutil.copy(trained_run / "model.safetensors", no_config / "model.safetensors")
    no_preset = tmp_path / "no_preset"
    shutil.copytree(trained_run, no_preset)
    cfg = json.loads((no_preset / "config.json").read_text())
    cfg.pop("preset")
    (no_preset / "config.json").write_text(json.dumps(cfg))

    cases = [
        (dict(path=no_weights, repo_id="org/mscl-quickstart"), "no weights"),
        (dict(path=no_config, repo_id="org/mscl-quickstart"), "no config.json"),
        (dict(path=tmp_path / "missing", repo_id="org/mscl-quickstart"), "is not a folder"),
        (dict(path=no_preset, repo_id="org/mscl-x", preset="tacos_i3d"), "no model-card template for preset 'tacos_i3d'"),
        (dict(path=no_preset, repo_id="org/mscl-x"), "records no preset"),
        (dict(path=trained_run, repo_id="mscl-quickstart"), "invalid repo id"),
        (dict(path=trained_run, repo_id="org/bad--name"), "invalid repo id"),
        (dict(path=trained_run, repo_id="org/a/b"), "invalid repo id"),
        (dict(path=trained_run, repo_id="org/"), "invalid repo id"),
        (dict(path=trained_run, repo_id="org/mscl-quickstart", revision="bad branch"), "invalid branch name"),
        (dict(path=trained_run, repo_id="org/mscl-quickstart", preset="tacos_c3d"), "trained with preset 'quickstart'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            publish_model(kwargs.pop("path"), kwargs.pop("repo_id"), verify=False, **kwargs)
        assert fake_hub.requests == [], (message, fake_hub.requests)
    with pytest.raises(ValueError, match="not a converted dataset"):
        push_dataset(trained_run, "org/ds")
    with pytest.raises(ValueError, match="invalid repo id"):
        push_dataset(trained_run, "ds")
    # the command line reports the same errors with exit status 2
    assert publish_main([str(trained_run), "--repo-id", "not a repo"]) == 2
    assert publish_main([str(no_weights), "--org", "org"]) == 2
    assert fake_hub.requests == []


def test_validate_repo_id_accepts_hub_names():
    for ok in ("org/mscl-tacos_c3d", "my.org/mscl-quickstart", "a/b"):
        assert validate_repo_id(ok) == ok


def test_cli_dry_run_writes_the_folder_only(fake_hub, trained_run, tmp_path):
    script = REPO_ROOT / "train_scripts" / "publish.py"
    spec = importlib.util.spec_from_file_location("publish_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "hub"
    assert module.main([str(trained_run), "--org", "org", "--dry-run", "--export-dir", str(out), "--no-verify"]) == 0
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file() and (out / "pipeline_mscl.py").is_file()
    assert "org/mscl-quickstart" in (out / "README.md").read_text()
    assert fake_hub.requests == []
    # every module trust_remote_code needs is there; a missing relative import is caught
    from modeling_mscl.hub.publish import check_code_files

    assert {"configuration_mscl.py", "modeling_mscl.py", "nms_mscl.py", "pipeline_mscl.py"} <= set(check_code_files(out))
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "nms_mscl.py").unlink()
    with pytest.raises(ValueError, match="lacks nms_mscl.py"):
        check_code_files(broken)
    assert module.main([str(trained_run), "--org", "org", "--dry-run", "--export-dir", str(out), "--no-verify"]) == 2  # exists
    assert module.main([str(trained_run), "--org", "org", "--no-verify"]) == 0
    assert fake_hub.head("org/mscl-quickstart") and fake_hub.repo_exists("org/mscl-quickstart")


# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------
def _dataset_rows(split, n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = int(rng.integers(20, 60))
        queries = []
        for j in range(int(rng.integers(1, 4))):
            s = float(rng.uniform(0, t - 5))
            queries.append({"query_id": f"{split}-{i}-{j}", "sentence": f"query {j} of video {i}",
                            "text_features": rng.normal(size=(int(rng.integers(3, 8)), 8)).astype(np.float32),
                            "start": s, "end": s + float(rng.uniform(1, 4))})
        rows.append({"video_id": f"{split}-v{i}", "duration": float(t), "fps": 1.0, "clip_size": 1.0, "clip_stride": 1.0,
                     "downsample_rate": 1, "video_features": rng.normal(size=(t, 16)).astype(np.float32), "queries": queries})
    return rows


def _assert_rows_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert set(a) == set(b)
        for key in b:
            if key == "queries":
                assert len(a[key]) == len(b[key])
                for qa, qb in zip(a[key], b[key]):
                    assert set(qa) == set(qb)
                    for qk in qb:
                        if isinstance(qb[qk], np.ndarray):
                            assert np.array_equal(np.asarray(qa[qk]), qb[qk])
                        else:
                            assert qa[qk] == qb[qk]
            elif isinstance(b[key], np.ndarray):
                assert np.array_equal(np.asarray(a[key]), b[key])
            else:
                assert a[key] == b[key]


def test_dataset_push_then_stream_back_row_for_row(fake_hub, tmp_path):
    from modeling_mscl.data.loading import load_grounding_dataset
    from modeling_mscl.data.schema import write_grounding_dataset

    folder = tmp_path / "ds"
    write_grounding_dataset(_dataset_rows("train", 7, 0), str(folder), "train", video_dim=16, text_dim=8, num_shards=2)
    write_grounding_dataset(_dataset_rows("test", 4, 1), str(folder), "test", video_dim=16, text_dim=8)
    push = push_dataset(folder, "org/mscl-toy-features")
    assert push.created_commit and push.repo_type == "dataset"
    files = fake_hub.files("org/mscl-toy-features", repo_type="dataset")
    assert {"README.md", "mscl_dataset.json"} <= set(files)
    assert sum(f.startswith("data/train-") for f in files) == 2 and sum(f.startswith("data/test-") for f in files) == 1

    for split in ("train", "test"):
        local = list(load_grounding_dataset(str(folder), split, streaming=True, shuffle_buffer=None))
        remote = list(load_grounding_dataset("org/mscl-toy-features", split, streaming=True, shuffle_buffer=None))
        _assert_rows_equal(remote, local)
        assert len(local) == (7 if split == "train" else 4)

    assert not push_dataset(folder, "org/mscl-toy-features").created_commit  # same folder: no new commit

    # a replaced split removes its old shards in the same commit, so the repo never mixes shard sets
    write_grounding_dataset(_dataset_rows("train", 3, 2), str(folder), "train", video_dim=16, text_dim=8, overwrite=True)
    again = push_dataset(folder, "org/mscl-toy-features")
    assert again.created_commit
    files = fake_hub.files("org/mscl-toy-features", repo_type="dataset")
    assert sorted(f for f in files if f.startswith("data/train-")) == ["data/train-00000-of-00001.parquet"]
    remote = list(load_grounding_dataset("org/mscl-toy-features", "train", streaming=True, shuffle_buffer=None))
    _assert_rows_equal(remote, list(load_grounding_dataset(str(folder), "train", streaming=True, shuffle_buffer=None)))


# --------------------------------------------------------------------------------------------------
# the real trainer's output folder (a few steps of the default run) exports as the tests above assume
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_of_a_real_training_run(tmp_path):
    if importlib.util.find_spec("modeling_mscl.training.experiment") is None:
        pytest.skip("modeling_mscl.training (the trainer) is not in this checkout")
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_scripts" / "run.py"), "--output-dir", str(run), "--max-steps", "2",
         "--save-steps", "2", "--max-eval-videos", "4", "--no-progress"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # verify=True: the written folder is loaded in a fresh process without the package, outputs compared
    result = export_model(run, tmp_path / "hub", repo_id="org/mscl-quickstart", verify=True)
    assert result.weights == "ema"
    metrics = json.loads((run / "metrics.json").read_text())
    card = (tmp_path / "hub" / "README.md").read_text()
    assert result.evaluated and _card_model_index(card) == _metric_entries(metrics)
    assert "Only the first 4 videos" in card
    exported = load_file(str(tmp_path / "hub" / "model.safetensors"))
    main_weights = load_file(str(run / "model.safetensors"))  # the trainer's EMA model
    assert all(torch.equal(exported[k], main_weights[k]) for k in main_weights)
    raw = export_model(run, tmp_path / "hub-raw", weights="model")
    assert "checkpoint-2" in raw.weights_source and not raw.evaluated


# --------------------------------------------------------------------------------------------------
# what travels with a checkpoint; folders saved before the recipe left config.json
# --------------------------------------------------------------------------------------------------
#: The flat files a model folder needs for trust_remote_code: the config, the model and what it imports
#: (its loss, the post-processing + input checks, and Soft-NMS).
MODEL_CODE = {"configuration_mscl.py", "modeling_mscl.py", "losses_mscl.py", "processing_mscl.py", "nms_mscl.py"}
#: ... and a pipeline folder: the pipeline, its sentence-embedding code and the video-file front end (decoding
#: + frame features).
PIPELINE_CODE = MODEL_CODE | {"pipeline_mscl.py", "text_embedding_mscl.py", "video_processing_mscl.py", "video_features_mscl.py"}


def test_saved_folders_carry_only_the_code_loading_needs(tmp_path):
    from modeling_mscl import MSCLGroundingPipeline
    from modeling_mscl.hub.publish import check_code_files

    model = MSCLForTemporalGrounding(MSCLConfig.from_preset("quickstart"))
    model.save_pretrained(tmp_path / "model")
    MSCLGroundingPipeline(model=model).save_pretrained(str(tmp_path / "pipe"))
    for folder, expected in ((tmp_path / "model", MODEL_CODE), (tmp_path / "pipe", PIPELINE_CODE)):
        assert {p.name for p in folder.glob("*.py")} == expected, folder.name
        assert set(check_code_files(folder)) == expected  # and each of them is needed
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert not set(config) & set(TrainingRecipe.field_names())


def test_recipe_in_the_card_comes_from_the_run(trained_run):
    recorded = render_model_card("quickstart", recipe=TrainingRecipe.from_preset("quickstart", learning_rate=0.0042),
                                 has_training_config=True)
    text = str(recorded)
    assert "| learning rate (`learning_rate`) | 0.0042 |" in text and "as its run recorded it" in text
    text = str(render_model_card("quickstart"))
    assert "| learning rate (`learning_rate`) | 0.002 |" in text
    assert "The `quickstart` preset's recipe: this checkpoint ships no record of its own training run" in text


def test_folder_saved_before_the_recipe_moved_publishes(trained_run, tmp_path):
    """An output folder of the former `debug` preset: recipe keys in config.json and in training_config.json's
    "config", no "recipe" entry. It exports with the quickstart card, the recipe its run recorded and a clean config."""
    old = tmp_path / "mscl-debug"
    shutil.copytree(trained_run, old)
    legacy_recipe = {**TrainingRecipe.from_preset("quickstart").to_dict(), "learning_rate": 0.0042}
    legacy_recipe.pop("benchmark")
    config = json.loads((old / "config.json").read_text())
    config.update(preset="debug", **legacy_recipe)
    (old / "config.json").write_text(json.dumps(config))
    training = json.loads((old / "training_config.json").read_text())
    training.pop("recipe"), training.pop("preset")
    training["config"] = config
    (old / "training_config.json").write_text(json.dumps(training))
    result = export_model(old, tmp_path / "hub", repo_id="org/mscl-quickstart")
    assert result.preset == "quickstart"
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "| learning rate (`learning_rate`) | 0.0042 |" in card
    exported = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert exported["preset"] == "quickstart" and not set(exported) & set(legacy_recipe)
