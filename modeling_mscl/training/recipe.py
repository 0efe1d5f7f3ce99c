# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The training recipe: how a model is trained and evaluated, as opposed to what the model is.

:class:`~modeling_mscl.MSCLConfig` defines the model (architecture, losses, decoding, time mapping,
feature sources) and travels with every checkpoint. :class:`TrainingRecipe` holds everything else a run
needs and nothing a loaded model uses:

* **optimisation** — ``learning_rate``, ``module_learning_rates``, ``weight_decay``, ``batch_size``,
  ``gradient_accumulation_steps``, ``num_epochs``, ``warmup_epochs``, ``ema_decay``, ``max_grad_norm``,
  ``seed``;
* **training-data sampling** (SnAG's video-centric samples, :mod:`modeling_mscl.data.sampling`) —
  ``max_queries_per_video``, ``query_grouping``, ``crop_ratio``, ``truncation_threshold``. They decide
  which crops and query groups the model sees during training; inference never reads them, so they are
  part of the recipe, not of the model;
* **evaluation protocol** — ``eval_split``, ``eval_ranks``, ``eval_thresholds`` (the dataset's benchmark
  protocol; the model's decoding settings stay in the config);
* **data** — ``benchmark``: generator options of the bundled semi-synthetic benchmark
  (:mod:`modeling_mscl.data.synthetic`), used when a run is given no ``--dataset``.

Each preset (``modeling_mscl/presets/<name>.json``) has a ``model`` section (read by
:meth:`MSCLConfig.from_preset`) and a ``training`` section (read by :meth:`TrainingRecipe.from_preset`).
``train_scripts/run.py`` records the recipe of every run in ``training_config.json``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = ["MODULE_NAMES", "RECIPE_FIELDS", "TrainingRecipe", "recipe_from_training_config"]

#: Top-level modules of :class:`~modeling_mscl.MSCLForTemporalGrounding` that may get their own lr.
MODULE_NAMES = ("text_encoder", "video_encoder", "fusion", "cls_head", "reg_head")

_CHOICES = {"query_grouping": ("greedy", "random")}


@dataclasses.dataclass
class TrainingRecipe:
    """Typed training recipe (defaults: SnAG's TACoS recipe, reference notes §9).

    Attributes:
        learning_rate: base AdamW learning rate.
        module_learning_rates: per-module learning rates keyed by :data:`MODULE_NAMES` (others use
            ``learning_rate``).
        weight_decay: decay of linear/conv weights (none on biases, norms, scales, tokens).
        batch_size: videos per micro-batch, summed over processes.
        gradient_accumulation_steps: micro-batches per optimiser step.
        num_epochs: epochs after warmup (SnAG's ``epochs``; a run lasts ``num_epochs + warmup_epochs``).
        warmup_epochs: linear-warmup epochs (lr from 0).
        ema_decay: β of the weight EMA that evaluation and the saved model use.
        max_grad_norm: global gradient-norm clip (0: off).
        seed: seed of the model initialisation and of every data draw.
        max_queries_per_video: queries per training sample (one video + a group of its queries).
        query_grouping: ``"greedy"`` (every query once per epoch) or ``"random"`` (one random group
            per video per epoch, ANet).
        crop_ratio: ``[low, high]`` random-crop ratio for videos shorter than the training length
            (``None``: no crop).
        truncation_threshold: a crop keeps more than this fraction of every grouped moment.
        eval_split: split evaluated after training (and by ``--eval-only``).
        eval_ranks / eval_thresholds: the R@K × tIoU grid of the benchmark's protocol.
        benchmark: generator options of the bundled benchmark
            (:class:`~modeling_mscl.data.synthetic.SyntheticBenchmarkConfig` fields), used without ``--dataset``.
    """

    # optimisation
    learning_rate: float = 1e-3
    module_learning_rates: Dict[str, float] = dataclasses.field(default_factory=dict)
    weight_decay: float = 0.05
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    num_epochs: int = 10
    warmup_epochs: int = 5
    ema_decay: float = 0.999
    max_grad_norm: float = 1.0
    seed: int = 1234567891
    # training-data sampling
    max_queries_per_video: int = 4
    query_grouping: str = "greedy"
    crop_ratio: Optional[List[float]] = dataclasses.field(default_factory=lambda: [0.9, 1.0])
    truncation_threshold: float = 0.5
    # evaluation protocol
    eval_split: str = "test"
    eval_ranks: List[int] = dataclasses.field(default_factory=lambda: [1, 5])
    eval_thresholds: List[float] = dataclasses.field(default_factory=lambda: [0.3, 0.5])
    # data
    benchmark: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # the same coercions MSCLConfig applies, so values from JSON or the command line compare equal
        def number(name, kind):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = kind(value)
                except (TypeError, ValueError):
                    raise ValueError(f"TrainingRecipe.{name} must be a number, got {value!r}") from None
            if kind is int and float(value) != int(value):
                raise ValueError(f"TrainingRecipe.{name} must be an integer, got {value!r}")
            setattr(self, name, kind(value))

        for name in ("learning_rate", "weight_decay", "ema_decay", "max_grad_norm", "truncation_threshold"):
            number(name, float)
        for name in ("batch_size", "gradient_accumulation_steps", "num_epochs", "warmup_epochs", "seed",
                     "max_queries_per_video"):
            number(name, int)
        if not isinstance(self.module_learning_rates, Mapping):
            raise ValueError(f"TrainingRecipe.module_learning_rates must be a mapping, got {self.module_learning_rates!r}")
        self.module_learning_rates = {str(k): float(v) for k, v in self.module_learning_rates.items()}
        if self.crop_ratio is not None:
            self.crop_ratio = [float(c) for c in self.crop_ratio]
        self.eval_ranks = [int(r) for r in self.eval_ranks]
        self.eval_thresholds = [float(t) for t in self.eval_thresholds]
        self.eval_split = str(self.eval_split)
        if not isinstance(self.benchmark, Mapping):
            raise ValueError(f"TrainingRecipe.benchmark must be a mapping of generator options, got {self.benchmark!r}")
        self.benchmark = dict(self.benchmark)
        self.validate()

    # ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Reject inconsistent settings with an error that names the field."""
        def bad(name, what):
            raise ValueError(f"TrainingRecipe.{name} {what}, got {getattr(self, name)!r}")

        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                bad(name, f"must be one of {choices}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad("learning_rate", "must be a finite number > 0")
        unknown = sorted(k for k in self.module_learning_rates if k not in MODULE_NAMES)
        if unknown:
            raise ValueError(
                f"TrainingRecipe.module_learning_rates has unknown module(s) {unknown}; valid keys: {', '.join(MODULE_NAMES)}"
            )
        for key, value in self.module_learning_rates.items():
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"TrainingRecipe.module_learning_rates[{key!r}] must be > 0, got {value}")
        for name in ("weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                bad(name, "must be >= 0")
        for name in ("batch_size", "gradient_accumulation_steps", "max_queries_per_video"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        for name in ("num_epochs", "warmup_epochs"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.num_epochs + self.warmup_epochs < 1:
            raise ValueError("TrainingRecipe: num_epochs + warmup_epochs must be >= 1 (the run needs at least one epoch)")
        if not 0.0 <= self.ema_decay <= 1.0:
            bad("ema_decay", "must be in [0, 1]")
        if not 0.0 <= self.truncation_threshold < 1.0:
            bad("truncation_threshold", "must be in [0, 1)")
        if self.crop_ratio is not None and (len(self.crop_ratio) != 2 or not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1] <= 1.0):
            bad("crop_ratio", "must be null or [low, high] with 0 < low <= high <= 1")
        if not self.eval_split:
            bad("eval_split", "must be a split name")
        if not self.eval_ranks or min(self.eval_ranks) < 1:
            bad("eval_ranks", "must be a non-empty list of ranks >= 1")
        if not self.eval_thresholds or not all(0.0 < t <= 1.0 for t in self.eval_thresholds):
            bad("eval_thresholds", "must be a non-empty list of tIoU thresholds in (0, 1]")

    # ------------------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainingRecipe":
        """A recipe from a mapping; an unknown key is an error naming it (``_``-prefixed keys are comments)."""
        values = {k: v for k, v in dict(values).items() if not str(k).startswith("_")}
        unknown = sorted(k for k in values if k not in RECIPE_FIELDS)
        if unknown:
            raise ValueError(f"unknown TrainingRecipe field(s): {', '.join(unknown)}; fields: {', '.join(RECIPE_FIELDS)}")
        return cls(**values)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TrainingRecipe":
        """The ``training`` section of preset ``name``; keyword overrides replace its values (unknown keys raise)."""
        from ..configuration_mscl import load_preset

        unknown = sorted(k for k in overrides if k not in RECIPE_FIELDS)
        if unknown:
            raise ValueError(f"unknown TrainingRecipe field(s) in overrides: {', '.join(unknown)}")
        return cls.from_dict({**load_preset(name)["training"], **overrides})

    def replace(self, **changes) -> "TrainingRecipe":
        """A copy with ``changes`` applied (validated; unknown keys raise)."""
        return self.from_dict({**self.to_dict(), **changes})


RECIPE_FIELDS: Tuple[str, ...] = TrainingRecipe.field_names()


def recipe_from_training_config(data: Mapping[str, Any]) -> Optional[TrainingRecipe]:
    """The recipe a run recorded in its ``training_config.json`` (``None`` when it recorded none).

    Runs record ``"recipe"``. Runs from before the recipe left the model configuration recorded the
    same settings inside ``"config"``; those keys are read from there.
    """
    if isinstance(data.get("recipe"), Mapping):
        return TrainingRecipe.from_dict(data["recipe"])
    config = data.get("config")
    if isinstance(config, Mapping):
        legacy = {k: config[k] for k in RECIPE_FIELDS if k in config}
        if legacy:
            return TrainingRecipe.from_dict(legacy)
    return None
