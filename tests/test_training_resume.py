# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A run killed with SIGKILL between checkpoints resumes to the same final weights as an uninterrupted run.

Both runs go through ``train_scripts/run.py`` in subprocesses (the tiny quickstart model with dropout and
absolute position encoding switched back on, so the RNG state matters too). The interrupted run is killed after
``checkpoint-8`` is complete, in the middle of the next checkpoint interval, and restarted with ``--resume``
(auto: the newest complete checkpoint).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
RUN = str(REPO / "train_scripts" / "run.py")
MAX_STEPS = 24
SAVE_STEPS = 8
pytestmark = pytest.mark.slow  # trains in subprocesses


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    from modeling_mscl.data.synthetic import generate_synthetic_benchmark

    return generate_synthetic_benchmark(
        str(tmp_path_factory.mktemp("resume-bench")), num_train_videos=24, num_test_videos=3, min_steps=40, max_steps=120,
    )


def _command(dataset, output_dir, *extra):
    return [
        sys.executable, RUN, "--dataset", dataset, "--output-dir", str(output_dir), "--no-progress",
        "--batch-size", "4", "--warmup-epochs", "1", "--max-steps", str(MAX_STEPS), "--save-steps", str(SAVE_STEPS),
        "--save-total-limit", "10", "--logging-steps", "4", "--max-eval-videos", "2",
        "--set", "max_video_length=128", "--set", "num_pyramid_levels=4", "--set", "hidden_dropout=0.1",
        "--set", "drop_path=0.1", "--set", "video_use_abs_pe=true", "--threads", "1", *extra,
    ]


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors")), load_file(str(folder / "ema.safetensors"))


def _assert_same(a, b, tol=1e-6):
    assert set(a) == set(b)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert worst <= tol, worst


def test_resume_after_sigkill_matches_uninterrupted(tiny_benchmark, tmp_path):
    full = tmp_path / "full"
    done = subprocess.run(_command(tiny_benchmark, full), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_command(tiny_benchmark, killed), env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    marker = killed / f"checkpoint-{SAVE_STEPS}" / "ema.safetensors"
    deadline = time.time() + 600
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint written in time"
        time.sleep(0.1)
    time.sleep(1.5)  # a few steps into the next interval
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / f"checkpoint-{MAX_STEPS}").exists(), "the run finished before it could be killed"
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(_command(tiny_benchmark, killed, "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    live_full, ema_full = _weights(full / f"checkpoint-{MAX_STEPS}")
    live_res, ema_res = _weights(killed / f"checkpoint-{MAX_STEPS}")
    _assert_same(live_full, live_res)  # includes the loss-normaliser buffer
    _assert_same(ema_full, ema_res)
    from safetensors.torch import load_file

    _assert_same(load_file(str(full / "model.safetensors")), load_file(str(killed / "model.safetensors")))
    # the optimiser and scheduler states continue identically too
    opt_full = torch.load(full / f"checkpoint-{MAX_STEPS}" / "optimizer.pt", weights_only=True)
    opt_res = torch.load(killed / f"checkpoint-{MAX_STEPS}" / "optimizer.pt", weights_only=True)
    for key, state in opt_full["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert float((state[name] - opt_res["state"][key][name]).abs().max()) <= 1e-6
