# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""train_scripts/run.py: bad input fails before training; `accelerate launch` works with no accelerate config;
two CPU processes (gloo) train; the default run learns the bundled benchmark; eval-only; the ablation table."""

import importlib.util
import json
import math
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
@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
def test_default_run_learns(trained_quickstart_run):
    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding
    from modeling_mscl.data.synthetic import trivial_baseline
    from modeling_mscl.training.data import load_eval_source
    from modeling_mscl.training.evaluation import evaluate_grounding
    from modeling_mscl.training.recipe import recipe_from_training_config

    out, metrics = trained_quickstart_run["output_dir"], trained_quickstart_run["metrics"]
    config = MSCLConfig.from_pretrained(out)
    recipe = recipe_from_training_config(json.loads((Path(out) / "training_config.json").read_text()))
    rows = load_eval_source(trained_quickstart_run["dataset"], config, recipe.eval_split)
    import torch

    torch.manual_seed(recipe.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        untrained = evaluate_grounding(MSCLForTemporalGrounding(config), rows, config, ranks=recipe.eval_ranks,
                                       thresholds=recipe.eval_thresholds, progress=False)
    finally:
        torch.set_num_threads(threads)
    baseline = trivial_baseline(rows, ranks=recipe.eval_ranks, thresholds=recipe.eval_thresholds)
    r = metrics["R1@0.5"]
    assert metrics["num_queries"] == untrained["num_queries"] == baseline["num_queries"]
    assert r >= 50.0, metrics
    assert r >= untrained["R1@0.5"] + 30.0, (r, untrained["R1@0.5"])
    assert r >= baseline["R1@0.5"] + 20.0, (r, baseline["R1@0.5"])
    assert "by_moment_length" in metrics


@pytest.mark.slow
def test_default_run_folder(trained_quickstart_run):
    from transformers import AutoModel

    out = Path(trained_quickstart_run["output_dir"])
    model = AutoModel.from_pretrained(out)
    assert type(model).__name__ == "MSCLForTemporalGrounding"
    for name in ("metrics.json", "predictions.jsonl", "training_config.json", "config.json", "model.safetensors"):
        assert (out / name).exists(), name
    assert "auto_map" in json.loads((out / "config.json").read_text())
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == trained_quickstart_run["metrics"]["num_queries"]
    assert "R@1" in trained_quickstart_run["stdout"] and "tIoU=0.5" in trained_quickstart_run["stdout"]
    # the run records its recipe (the quickstart preset's) beside the model, which holds none of it
    from modeling_mscl.training.recipe import RECIPE_FIELDS, TrainingRecipe

    training = json.loads((out / "training_config.json").read_text())
    assert training["preset"] == "quickstart" and training["recipe_overrides"] == {}
    assert training["recipe"] == TrainingRecipe.from_preset("quickstart").to_dict()
    assert not set(json.loads((out / "config.json").read_text())) & set(RECIPE_FIELDS)


@pytest.mark.slow
def test_eval_only_reproduces_predictions(trained_quickstart_run, tmp_path):
    out = Path(trained_quickstart_run["output_dir"])
    cmd = [sys.executable, str(RUN), "--eval-only", "--init-from", str(out), "--dataset", trained_quickstart_run["dataset"],
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
@pytest.mark.slow
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


@pytest.mark.slow
def test_ablation_over_seeds_prints_and_writes_mean_and_std(tiny_benchmark, tmp_path):
    """`ablation.py --seeds`: one run per (seed, variant), per-seed files, and the mean ± std of the seeds'
    own metrics.json values, in ablation.json, ablation.md and on stdout."""
    out = tmp_path / "ablation"
    cmd = [sys.executable, str(ABLATION), "--dataset", tiny_benchmark, "--output-dir", str(out), "--max-steps", "2",
           "--max-eval-videos", "3", "--variants", "off,on", "--seeds", "0", "1", *SMALL]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    per_seed = {s: {v: json.loads((out / f"seed-{s}" / v / "metrics.json").read_text()) for v in ("off", "on")}
                for s in (0, 1)}
    for s in (0, 1):
        assert (out / f"seed-{s}" / "ablation.md").exists() and (out / f"seed-{s}" / "ablation.json").exists()
        training = json.loads((out / f"seed-{s}" / "on" / "training_config.json").read_text())
        assert training["recipe"]["seed"] == s and training["recipe_overrides"]["seed"] == s
    assert per_seed[0]["on"]["train_loss"] != per_seed[1]["on"]["train_loss"]  # the seeds really differ
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["seeds"] == [0, 1]
    for variant in ("off", "on"):
        for key in ("R1@0.5", "R5@0.3", "mIoU"):
            values = [per_seed[s][variant][key] for s in (0, 1)]
            stats = summary["aggregate"][variant][key]
            assert stats["values"] == values
            assert stats["mean"] == pytest.approx(sum(values) / 2)
            assert stats["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    table = (out / "ablation.md").read_text()
    assert table.strip() in done.stdout
    assert "Mean ± sample standard deviation over 2 seed(s) (0, 1)" in table
    stats = summary["aggregate"]["on"]["R1@0.5"]
    row = next(line for line in table.splitlines() if line.startswith("| within + cross |"))  # the mean ± std table
    assert row.split(" | ")[2] == f"{stats['mean']:.1f} ± {stats['std']:.1f}"  # columns: R1@0.3, R1@0.5, ...


def test_seed_aggregation_against_hand_computed_values():
    from modeling_mscl.training.experiment import aggregate_seeds, format_seed_tables

    per_seed = {
        1234567891: {"off": {"R1@0.5": 55.7, "mIoU": 52.9}, "on": {"R1@0.5": 60.8, "mIoU": 57.0}},
        1: {"off": {"R1@0.5": 48.2, "mIoU": 46.8}, "on": {"R1@0.5": 60.7, "mIoU": 56.8, "R5@0.5": 90.0}},
        2: {"off": {"R1@0.5": 58.2, "mIoU": 54.7}, "on": {"R1@0.5": 63.8, "mIoU": 59.2}},
    }
    agg = aggregate_seeds(per_seed, ["R1@0.5", "mIoU", "R5@0.5"])
    # by hand: off R1@0.5: mean 162.1 / 3 = 54.0333; squared deviations 2.7778 + 34.0278 + 17.3611 = 54.1667,
    # / (3 - 1) = 27.0833, sqrt = 5.2042. on R1@0.5: 185.3 / 3 = 61.7667; 0.9344 + 1.1378 + 4.1344 = 6.2067,
    # / 2 -> sqrt 1.7616. off mIoU: 154.4 / 3 = 51.4667; 2.0544 + 21.7778 + 10.4544 = 34.2867, / 2 -> sqrt 4.1405
    assert agg["off"]["R1@0.5"]["values"] == [55.7, 48.2, 58.2]
    assert agg["off"]["R1@0.5"]["mean"] == pytest.approx(54.0333, abs=1e-4)
    assert agg["off"]["R1@0.5"]["std"] == pytest.approx(5.2042, abs=1e-4)
    assert agg["on"]["R1@0.5"]["mean"] == pytest.approx(61.7667, abs=1e-4)
    assert agg["on"]["R1@0.5"]["std"] == pytest.approx(1.7616, abs=1e-4)
    assert agg["off"]["mIoU"]["std"] == pytest.approx(4.1405, abs=1e-4)
    assert "R5@0.5" not in agg["on"]  # one seed lacks it: no mean over a subset of the seeds
    table = format_seed_tables(per_seed, agg, ["R1@0.5", "mIoU", "R5@0.5"])
    lines = table.splitlines()
    assert lines[0] == "Mean ± sample standard deviation over 3 seed(s) (1234567891, 1, 2):"
    assert "| contrastive terms | R1@0.5 | mIoU |" in lines
    assert "| no contrastive | 54.0 ± 5.2 | 51.5 ± 4.1 |" in lines
    assert "| within + cross | 61.8 ± 1.8 | 57.7 ± 1.3 |" in lines
    assert "| R1@0.5 | seed 1234567891 | seed 1 | seed 2 | mean ± std |" in lines
    assert "| no contrastive | 55.7 | 48.2 | 58.2 | 54.0 ± 5.2 |" in lines
    # one seed: no spread to report
    single = {0: {"off": {"R1@0.5": 55.7}}}
    one = aggregate_seeds(single, ["R1@0.5"])
    assert one["off"]["R1@0.5"]["mean"] == 55.7 and math.isnan(one["off"]["R1@0.5"]["std"])
    assert "| no contrastive | 55.7 |" in format_seed_tables(single, one, ["R1@0.5"]).splitlines()
