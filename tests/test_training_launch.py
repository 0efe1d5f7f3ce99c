# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A single process that would train with torch.nn.DataParallel (several GPUs, no launcher) is refused up
front, with a message that says to use `accelerate launch`. The GPUs are faked by monkeypatching torch.cuda."""

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "train_scripts" / "run.py"
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "ACCELERATE_USE_CPU")


@pytest.fixture
def four_gpus_no_launcher(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)


def test_run_py_without_launcher_on_several_gpus_is_refused(four_gpus_no_launcher, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("run_script_launch", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "4 GPUs" in err and "DataParallel" in err
    assert "accelerate launch --multi_gpu --num_processes 4 train_scripts/run.py" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_launched_or_cpu_or_single_gpu_runs_are_not_refused(four_gpus_no_launcher, monkeypatch):
    from modeling_mscl.training.launch import check_not_data_parallel

    check_not_data_parallel(environ={"WORLD_SIZE": "4", "LOCAL_RANK": "0"})  # accelerate launch / torchrun
    check_not_data_parallel(environ={"ACCELERATE_USE_CPU": "true"})  # --cpu
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_not_data_parallel(environ={})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    check_not_data_parallel(environ={})
    with pytest.raises(ValueError, match="accelerate launch"):
        check_not_data_parallel(n_gpu=2)
    check_not_data_parallel(n_gpu=1)
    check_not_data_parallel(n_gpu=0)


def test_trainer_refuses_data_parallel_arguments(tmp_path):
    from transformers import TrainingArguments

    from modeling_mscl import MSCLForTemporalGrounding
    from modeling_mscl.training import MSCLTrainer

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=1)
    _ = args.device  # set the devices up, then pretend the Trainer found two GPUs in this process
    args._n_gpu = 2
    model = MSCLForTemporalGrounding(tiny_config())
    with pytest.raises(ValueError, match="DataParallel.*accelerate launch"):
        MSCLTrainer(model=model, args=args, train_dataset=[])
