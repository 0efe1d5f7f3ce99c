# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""train_scripts/run.py: bad input fails before training; `accelerate launch` works with no accelerate config;
two CPU processes (gloo) train; the default run learns the bundled benchmark; eval-only; the ablation table."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "train_scripts" / "run.py"
ABLATION = REPO / "train_scripts" / "ablation.py"
SMALL = ["--set", "max_video_length=128", "--set", "num_pyramid_levels=4", "--batch-size", "4", "--threads", "1",
         "--no-progress"]


def _load_script(path):
    spec = importlib.util.spec_from_file_location(path.stem + "_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    from modeling_mscl.data.synthetic import generate_synthetic_benchmark

    return generate_synthetic_benchmark(
        str(tmp_path_factory.mktemp("run-bench")), num_train_videos=16, num_test_videos=4, min_steps=40, max_steps=120,
    )


def _env(**extra):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


# ----------------------------------------------------------------------------------------------------
# bad input: a clear error before any training starts
# ----------------------------------------------------------------------------------------------------
def _main_error(argv, capsys):
    run = _load_script(RUN)
    with pytest.raises(SystemExit) as exit_info:
        run.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_unknown_preset(tmp_path, capsys):
    err = _main_error(["--preset", "tacos_c4d", "--output-dir", str(tmp_path / "out")], capsys)
    assert "unknown preset 'tacos_c4d'" in err and "tacos_c3d" in err
    assert not (tmp_path / "out").exists()


def test_dataset_without_shards(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = _main_error(["--dataset", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")], capsys)
    assert "no parquet shards" in err
    assert not (tmp_path / "out").exists()


def test_feature_dimension_disagrees_with_preset(tmp_path, capsys):
    from modeling_mscl.data.synthetic import generate_synthetic_benchmark

    path = generate_synthetic_benchmark(str(tmp_path / "bench16"), num_train_videos=2, num_test_videos=1,
                                        video_dim=16, text_dim=16, min_steps=40, max_steps=60)
    err = _main_error(["--dataset", path, "--output-dir", str(tmp_path / "out")], capsys)
    assert "video feature dim is 16, expected 32" in err
    assert not (tmp_path / "out").exists()


def test_unknown_override_key(tmp_path, capsys):
    err = _main_error(["--set", "hiden_size=3", "--output-dir", str(tmp_path / "out")], capsys)
    assert "hiden_size" in err


# ----------------------------------------------------------------------------------------------------
# accelerate launch
# ----------------------------------------------------------------------------------------------------
def test_accelerate_launch_without_any_config(tiny_benchmark, tmp_path):
    """`accelerate launch train_scripts/run.py` on a machine that never ran `accelerate config`."""
    home = tmp_path / "fresh-home"
    env = _env(HF_HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    env.pop("ACCELERATE_CONFIG_FILE", None)
    out = tmp_path / "run"
    cmd = [shutil.which("accelerate") or "accelerate", "launch", str(RUN), "--dataset", tiny_benchmark,
           "--output-dir", str(out), "--max-steps", "2", "--max-eval-videos", "2", *SMALL]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (home / "accelerate" / "default_config.yaml").exists()
    assert "R@1" in done.stdout
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    assert type(model).__name__ == "MSCLForTemporalGrounding"
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" in config and (out / "modeling_mscl.py").exists()
    for name in ("metrics.json", "predictions.jsonl", "training_config.json"):
        assert (out / name).exists(), name


def test_two_cpu_processes_with_accelerate(tiny_benchmark, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU: gloo DDP, node-split stream, equal steps."""
    from modeling_mscl.data.schema import read_metadata, write_grounding_dataset
    from modeling_mscl.data.synthetic import synthetic_rows

    # two shards per split, so that each process streams whole shards (split_dataset_by_node)
    data = str(tmp_path / "bench2")
    spec = dict(num_train_videos=16, num_test_videos=4, min_steps=40, max_steps=120)
    for split in ("train", "test"):
        write_grounding_dataset(synthetic_rows(split, **spec), data, split, 32, 32, min_shards=2)
    assert len(read_metadata(data)["splits"]["train"]["shards"]) == 2
    out = tmp_path / "ddp"
    cmd = [shutil.which("accelerate") or "accelerate", "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(RUN),
           "--dataset", data, "--output-dir", str(out), "--max-steps", "3", "--save-steps", "3", "--logging-steps", "1",
           *SMALL]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(HF_HOME=str(tmp_path / "home")), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "2 process(es) x 2 videos" in done.stdout
    assert "not a multiple of world_size" not in done.stderr  # whole shards per process
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert (out / "checkpoint-3" / "rng_state_0.pth").exists() and (out / "checkpoint-3" / "rng_state_1.pth").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    # every evaluation video and query exactly once, gathered from both processes
    assert metrics["num_videos"] == 4
    assert metrics["num_queries"] == sum(len(r["queries"]) for r in synthetic_rows("test", **spec))
    assert len((out / "predictions.jsonl").read_text().splitlines()) == metrics["num_queries"]
    training = json.loads((out / "training_config.json").read_text())
    assert training["num_processes"] == 2


# ----------------------------------------------------------------------------------------------------
# the default run (shared, trained once per session in conftest.py)
# ----------------------------------------------------------------------------------------------------
def test_default_run_learns(trained_debug_run):
    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding
    from modeling_mscl.data.synthetic import trivial_baseline
    from modeling_mscl.training.data import load_eval_source
    from modeling_mscl.training.evaluation import evaluate_grounding

    out, metrics = trained_debug_run["output_dir"], trained_debug_run["metrics"]
    config = MSCLConfig.from_pretrained(out)
    rows = load_eval_source(trained_debug_run["dataset"], config, config.eval_split)
    import torch

    torch.manual_seed(config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        untrained = evaluate_grounding(MSCLForTemporalGrounding(config), rows, config, progress=False)
    finally:
        torch.set_num_threads(threads)
    baseline = trivial_baseline(rows, ranks=config.eval_ranks, thresholds=config.eval_thresholds)
    r = metrics["R1@0.5"]
    assert metrics["num_queries"] == untrained["num_queries"] == baseline["num_queries"]
    assert r >= 50.0, metrics
    assert r >= untrained["R1@0.5"] + 30.0, (r, untrained["R1@0.5"])
    assert r >= baseline["R1@0.5"] + 20.0, (r, baseline["R1@0.5"])
    assert "by_moment_length" in metrics


def test_default_run_folder(trained_debug_run):
    from transformers import AutoModel

    out = Path(trained_debug_run["output_dir"])
    model = AutoModel.from_pretrained(out)
    assert type(model).__name__ == "MSCLForTemporalGrounding"
    for name in ("metrics.json", "predictions.jsonl", "training_config.json", "config.json", "model.safetensors"):
        assert (out / name).exists(), name
    assert "auto_map" in json.loads((out / "config.json").read_text())
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == trained_debug_run["metrics"]["num_queries"]
    assert "R@1" in trained_debug_run["stdout"] and "tIoU=0.5" in trained_debug_run["stdout"]


def test_eval_only_reproduces_predictions(trained_debug_run, tmp_path):
    out = Path(trained_debug_run["output_dir"])
    cmd = [sys.executable, str(RUN), "--eval-only", "--init-from", str(out), "--dataset", trained_debug_run["dataset"],
           "--output-dir", str(tmp_path / "eval"), "--max-eval-videos", "5", "--no-progress"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    new = [json.loads(x) for x in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    old = {(r["video_id"], r["query_id"]): r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert new
    for record in new:
        ref = old[(record["video_id"], record["query_id"])]
        import numpy as np

        np.testing.assert_allclose(np.asarray(record["predictions"]), np.asarray(ref["predictions"]), atol=1e-4)


# ----------------------------------------------------------------------------------------------------
# ablation
# ----------------------------------------------------------------------------------------------------
def test_ablation_command(tiny_benchmark, tmp_path):
    out = tmp_path / "ablation"
    cmd = [sys.executable, str(ABLATION), "--dataset", tiny_benchmark, "--output-dir", str(out), "--max-steps", "1",
           "--max-eval-videos", "2", "--variants", "off,within", *SMALL]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| no contrastive |" in done.stdout and "| within only |" in done.stdout
    assert "by moment length" in done.stdout
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["variants"]["off"]["within_loss_weight"] == 0.0
    assert summary["variants"]["within"]["cross_loss_weight"] == 0.0
    assert summary["variants"]["within"]["within_loss_weight"] > 0
    assert (out / "off" / "metrics.json").exists() and (out / "ablation.md").exists()
