# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""How a training run must be launched: one process per GPU, never ``torch.nn.DataParallel``.

Started as ``python train_scripts/run.py`` on a machine with several visible GPUs, the ``transformers.Trainer``
stays in one process and wraps the model in ``torch.nn.DataParallel``. That is wrong for MSCL, not just slow:
DataParallel cuts every tensor of the batch along dim 0, so the video tensors (``B`` rows) and the query
tensors (``N >= B`` rows, with ``query_video_index`` pointing into the whole batch) are split inconsistently,
the loss runs per replica without the cross-replica scaling DDP gets, and the replicas' loss-normaliser
updates are lost. :func:`check_not_data_parallel` refuses such a run up front and says what to do.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

__all__ = ["check_not_data_parallel", "data_parallel_message"]


def data_parallel_message(num_gpus: int) -> str:
    return (
        f"{num_gpus} GPUs are visible to a single training process: the Trainer would wrap the model in "
        "torch.nn.DataParallel, which splits MSCL's video-centric batches inconsistently and breaks its loss "
        f"normalisation. Start one process per GPU with `accelerate launch --multi_gpu --num_processes {num_gpus} "
        "train_scripts/run.py ...` (or `torchrun --nproc_per_node "
        f"{num_gpus} train_scripts/run.py ...`), or train on one GPU with CUDA_VISIBLE_DEVICES=0."
    )


def _launched_processes(environ: Mapping[str, str]) -> int:
    """Processes of the launch as ``accelerate launch`` / ``torchrun`` announce them (1 without a launcher)."""
    try:
        return int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def check_not_data_parallel(n_gpu: Optional[int] = None, environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise ``ValueError`` when this process would train with ``torch.nn.DataParallel``.

    Args:
        n_gpu: GPUs the Trainer would use in this process (``TrainingArguments.n_gpu``), when known.
            Default: decided from the environment before anything is set up — a single process
            (no ``WORLD_SIZE > 1`` from a launcher), CUDA available, not forced to the CPU
            (``ACCELERATE_USE_CPU``), and more than one visible CUDA device.
        environ: the environment to read (default ``os.environ``).
    """
    if n_gpu is None:
        import torch

        environ = os.environ if environ is None else environ
        if _launched_processes(environ) > 1:
            return
        if str(environ.get("ACCELERATE_USE_CPU", "")).lower() in ("1", "true", "yes"):
            return
        if not torch.cuda.is_available():
            return
        n_gpu = torch.cuda.device_count()
    if n_gpu > 1:
        raise ValueError(data_parallel_message(int(n_gpu)))
