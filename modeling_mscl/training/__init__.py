# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Training and evaluation of MSCL with the Hugging Face ``Trainer`` (not shipped with checkpoints).

* :mod:`.recipe` — :class:`TrainingRecipe`: learning rates, batch size, epochs, EMA, seed, training-sample
  grouping and crops, evaluation protocol (each preset's ``training`` section).
* :mod:`.trainer` — :class:`MSCLTrainer` (SnAG loss semantics under accumulation/DDP, EMA, per-term logs).
* :mod:`.optim` — SnAG's AdamW parameter groups and warmup-then-constant schedule.
* :mod:`.ema` — :class:`ModelEMA`.
* :mod:`.data` — the replayable training stream (:class:`TrainingSampleDataset`), schedule and sources.
* :mod:`.evaluation` — :func:`evaluate_grounding` (whole videos, metrics, predictions jsonl).
* :mod:`.args` / :mod:`.experiment` — the command line of ``train_scripts/run.py`` and ``ablation.py``.
"""

from .data import (
    TrainingCollator,
    TrainingSampleDataset,
    TrainingSchedule,
    count_training_samples,
    load_eval_source,
    load_training_source,
)
from .ema import EMA_WEIGHTS_NAME, ModelEMA
from .evaluation import compute_grounding_metrics, evaluate_grounding, format_report, predict_grounding
from .optim import build_param_groups, create_adamw
from .recipe import TrainingRecipe
from .trainer import MSCLTrainer, find_last_checkpoint, step_contrastive_normalizer

__all__ = [
    "EMA_WEIGHTS_NAME",
    "MSCLTrainer",
    "ModelEMA",
    "TrainingCollator",
    "TrainingRecipe",
    "TrainingSampleDataset",
    "TrainingSchedule",
    "build_param_groups",
    "compute_grounding_metrics",
    "count_training_samples",
    "create_adamw",
    "evaluate_grounding",
    "find_last_checkpoint",
    "format_report",
    "load_eval_source",
    "load_training_source",
    "predict_grounding",
    "step_contrastive_normalizer",
]
