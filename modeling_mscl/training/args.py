# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Command-line options of ``train_scripts/run.py`` / ``ablation.py`` and the ``TrainingArguments`` they imply.

Three kinds of settings, each with one home:

* **Model fields** of :class:`~modeling_mscl.MSCLConfig` (``hidden_size``, ``within_loss_weight``,
  ``max_video_length``...), from the preset's ``model`` section (or the ``--init-from`` folder's
  ``config.json``) plus overrides.
* **Recipe fields** of :class:`~modeling_mscl.training.TrainingRecipe` (``learning_rate``, ``batch_size``,
  ``num_epochs``, ``seed``, ``crop_ratio``, ``eval_split``...), from the preset's ``training`` section plus
  overrides (also with ``--init-from``: a model folder carries no recipe).
* **Run options** (:class:`TrainingOptions`: dataset, output folder, resume, checkpoint cadence...).

All three can be overridden with ``--set key=value`` (repeatable; the value is parsed as JSON when it
parses, else taken as a string: ``--set hidden_dropout=0 --set module_learning_rates='{"text_encoder": 2e-4}'``)
and routed by name to the object that owns the key (the three sets of names are disjoint), or with the
direct flags listed by ``--help``. Unknown keys are an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

#: The preset of ``run.py`` without ``--preset`` (and without an ``--init-from`` folder that records one).
DEFAULT_PRESET = "quickstart"

#: Recipe fields with a direct flag (``--learning-rate`` ...).
RECIPE_FLAGS = (
    ("learning_rate", float, "base learning rate (AdamW)"),
    ("weight_decay", float, "weight decay of linear/conv weights"),
    ("batch_size", int, "videos per micro-batch, summed over processes"),
    ("gradient_accumulation_steps", int, "micro-batches per optimiser step"),
    ("num_epochs", int, "epochs after warmup (SnAG's `epochs`; the run lasts num_epochs + warmup_epochs)"),
    ("warmup_epochs", int, "linear-warmup epochs (lr from 0)"),
    ("ema_decay", float, "beta of the weight EMA"),
    ("max_grad_norm", float, "global gradient-norm clip (0: off)"),
    ("seed", int, "seed of the model init and of every data draw"),
    ("eval_split", str, "split evaluated after training and by --eval-only"),
)


def recorded_preset(folder: str) -> Optional[str]:
    """The preset a saved model folder's ``config.json`` records, if it is a known one (renamed presets
    are mapped to their new name); ``None`` otherwise."""
    from ..configuration_mscl import PRESET_NAMES, RENAMED_PRESETS

    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            name = json.load(f).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    name = RENAMED_PRESETS.get(name, name)
    return name if name in PRESET_NAMES else None


@dataclasses.dataclass
class TrainingOptions:
    """Run options (neither model configuration nor training recipe).

    Attributes:
        preset: the preset of the model (``model`` section) and of the recipe (``training`` section).
            ``None``: the preset an ``init_from`` folder records, else :data:`DEFAULT_PRESET`. With
            ``init_from`` the model comes from the folder and only the recipe from the preset.
        dataset: dataset folder or Hub repo id; ``None`` → the bundled semi-synthetic benchmark (generated
            with the recipe's ``benchmark`` options).
        train_split: split to train on (the evaluation split is the recipe's ``eval_split``).
        output_dir: run folder (checkpoints, final model, metrics); ``None`` → ``outputs/mscl-<preset>``.
        resume: ``None``, ``"auto"`` (newest complete checkpoint of ``output_dir``, else fresh) or a folder.
        eval_only: skip training; evaluate ``init_from`` (or the final model in ``output_dir``).
        init_from: start from a converted SnAG / saved MSCL folder (its model configuration replaces the
            preset's; training-recipe keys an old ``config.json`` may carry are ignored).
        no_contrastive: set both contrastive weights to 0.
        max_steps: stop after this many optimiser steps (default: the whole schedule).
        save_steps: checkpoint every this many steps (default: once per epoch). save_total_limit: keep the newest N.
        logging_steps: log every this many steps (default: ~4 times per epoch).
        eval_steps: also evaluate during training every this many steps (default: only at the end).
        max_eval_videos: evaluate only the first N videos of the evaluation split.
        shuffle_buffer: rows in the streaming shuffle buffer; sample_shuffle_buffer: samples mixed before batching.
        num_threads: torch intra-op threads per process (default: 1 for small models on CPU, else the cores
            divided among the local processes; ``OMP_NUM_THREADS`` is respected).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` autocast (default: ``accelerate launch
            --mixed_precision``'s choice, else ``"no"``).
        report_to: ``TrainingArguments.report_to`` (``"none"``, ``"tensorboard"``, ``"wandb"``, ...).
        activation_checkpointing: recompute fusion + heads level by level in the backward pass
            (``TrainingArguments.activation_checkpointing``): less memory, a slower step (see README, Performance).
        progress: tqdm bars for training and evaluation.
    """

    preset: Optional[str] = None
    dataset: Optional[str] = None
    train_split: str = "train"
    output_dir: Optional[str] = None
    resume: Optional[str] = None
    eval_only: bool = False
    init_from: Optional[str] = None
    no_contrastive: bool = False
    max_steps: Optional[int] = None
    save_steps: Optional[int] = None
    save_total_limit: Optional[int] = 2
    logging_steps: Optional[int] = None
    eval_steps: Optional[int] = None
    max_eval_videos: Optional[int] = None
    shuffle_buffer: int = 64
    sample_shuffle_buffer: int = 16
    num_threads: Optional[int] = None
    report_to: str = "none"
    mixed_precision: Optional[str] = None
    activation_checkpointing: bool = False
    progress: bool = True

    def resolved_preset(self) -> str:
        """``preset``, else the preset the ``init_from`` folder records, else :data:`DEFAULT_PRESET`."""
        if self.preset:
            return self.preset
        if self.init_from:
            recorded = recorded_preset(self.init_from)
            if recorded:
                return recorded
        return DEFAULT_PRESET

    def resolved_output_dir(self) -> str:
        return self.output_dir or f"outputs/mscl-{self.resolved_preset()}"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


OPTION_FIELDS = {f.name for f in dataclasses.fields(TrainingOptions)}


def config_field_names() -> List[str]:
    """Keys ``--set`` routes to :class:`~modeling_mscl.MSCLConfig`."""
    from ..configuration_mscl import MSCLConfig

    return sorted(MSCLConfig().to_dict())


def recipe_field_names() -> List[str]:
    """Keys ``--set`` routes to :class:`~modeling_mscl.training.TrainingRecipe`."""
    from .recipe import RECIPE_FIELDS

    return sorted(RECIPE_FIELDS)


def parse_value(text: str) -> Any:
    """JSON when it parses (``1e-3``, ``true``, ``null``, ``[0.9, 1.0]``, ``{...}``), else the raw string."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def _unknown_key_error(key: str, where: str) -> ValueError:
    return ValueError(
        f"{where} {key}: not a model config field, a training-recipe field nor a run option. Run options: "
        f"{', '.join(sorted(OPTION_FIELDS))}; recipe fields: {', '.join(recipe_field_names())}; model fields: "
        "see modeling_mscl/configuration_mscl.py"
    )


def split_overrides(overrides: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Flat ``{key: value}`` → (:class:`MSCLConfig` overrides, :class:`TrainingRecipe` overrides), routed by
    name; a key of neither raises ``ValueError``."""
    model_keys, recipe_keys = set(config_field_names()), set(recipe_field_names())
    model: Dict[str, Any] = {}
    recipe: Dict[str, Any] = {}
    for key, value in overrides.items():
        if key in recipe_keys:
            recipe[key] = value
        elif key in model_keys:
            model[key] = value
        else:
            raise _unknown_key_error(key, "override")
    return model, recipe


def parse_set_arguments(items: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``["key=value", ...]`` → (model + recipe overrides, option overrides); unknown keys raise ``ValueError``.

    The first dict is flat; :func:`split_overrides` routes it to the config and the recipe.
    """
    known = set(config_field_names()) | set(recipe_field_names())
    overrides: Dict[str, Any] = {}
    option_overrides: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        value = parse_value(text)
        if key in OPTION_FIELDS:
            option_overrides[key] = value
        elif key in known:
            overrides[key] = value
        else:
            raise _unknown_key_error(key, "--set")
    return overrides, option_overrides


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones (``None``/``False``/``[]``: "preset value" or "off")."""

    def _get_help_string(self, action):
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser(prog: Optional[str] = None, ablation: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Train and evaluate MSCL (SnAG backbone + multi-scale contrastive losses). Without arguments: the "
            "`quickstart` preset (a tiny model on the bundled semi-synthetic benchmark). Launch with `accelerate "
            "launch` for several processes/GPUs."
            if not ablation else
            "Ablation of the contrastive terms: the same run with them off, on, within-only and cross-only "
            "(for each of --seeds, with a mean ± std table)."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--preset", default=None,
                        help=f"preset: model + training recipe ({DEFAULT_PRESET}, tacos_c3d, mad_clip, ...; default: "
                             f"{DEFAULT_PRESET}, or with --init-from the preset the folder records)")
    parser.add_argument("--dataset", default=None, metavar="PATH_OR_REPO",
                        help="dataset folder or Hub repo id (default: the bundled semi-synthetic benchmark)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--output-dir", default=None, help="default: outputs/mscl-<preset>")
    parser.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model config field, a training-recipe field or a run option "
                             "(repeatable; VALUE parsed as JSON)")
    if not ablation:
        parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="PATH|auto",
                            help="resume from a checkpoint folder, or the newest one in --output-dir")
        parser.add_argument("--eval-only", action="store_true",
                            help="only evaluate --init-from (or the final model in --output-dir)")
        parser.add_argument("--no-contrastive", action="store_true", help="turn the contrastive terms off")
    parser.add_argument("--init-from", default=None, metavar="DIR",
                        help="start from a converted SnAG or saved MSCL model folder")
    for name, typ, help_text in RECIPE_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), type=typ, default=None, help=help_text + " (default: the preset's)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--save-steps", type=int, default=None, help="checkpoint interval (default: each epoch)")
    parser.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept")
    parser.add_argument("--logging-steps", type=int, default=None, help="log interval in steps")
    parser.add_argument("--eval-steps", type=int, default=None, help="also evaluate every N steps while training")
    parser.add_argument("--max-eval-videos", type=int, default=None, help="evaluate the first N videos only")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default=None,
                        help="autocast precision (default: the accelerate launcher's --mixed_precision, else no)")
    parser.add_argument("--activation-checkpointing", action="store_true",
                        help="recompute fusion + heads in the backward pass (less memory, slower steps)")
    parser.add_argument("--report-to", default="none", help="TrainingArguments.report_to (tensorboard, wandb, ...)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: automatic)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if ablation:
        parser.add_argument("--variants", default="off,on,within,cross",
                            help="comma-separated subset of off,on,within,cross")
        parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                            help="run every variant once per seed (recipe seed) and print the mean ± std table; "
                                 "default: one run with the recipe's seed")
    return parser


def options_from_args(args: argparse.Namespace) -> Tuple[TrainingOptions, Dict[str, Any]]:
    """Parsed arguments → (:class:`TrainingOptions`, model + recipe overrides; see :func:`split_overrides`)."""
    overrides, option_overrides = parse_set_arguments(args.set_items)
    for name, _, _ in RECIPE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    options = TrainingOptions(
        preset=args.preset,
        dataset=args.dataset,
        train_split=args.train_split,
        output_dir=args.output_dir,
        resume=getattr(args, "resume", None),
        eval_only=bool(getattr(args, "eval_only", False)),
        init_from=args.init_from,
        no_contrastive=bool(getattr(args, "no_contrastive", False)),
        max_steps=args.max_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        eval_steps=args.eval_steps,
        max_eval_videos=args.max_eval_videos,
        num_threads=args.threads,
        report_to=args.report_to,
        mixed_precision=args.mixed_precision,
        activation_checkpointing=bool(getattr(args, "activation_checkpointing", False)),
        progress=not args.no_progress,
    )
    for key, value in option_overrides.items():
        setattr(options, key, value)
    return options, overrides


def build_training_arguments(options: TrainingOptions, recipe, schedule, **extra):
    """``transformers.TrainingArguments`` for the run's :class:`TrainingRecipe` and ``schedule``."""
    import torch
    from transformers import TrainingArguments

    from .optim import ADAM_BETAS, ADAM_EPS

    precision = options.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {precision!r}")
    spe = schedule.steps_per_epoch
    save_steps = options.save_steps or spe
    logging_steps = options.logging_steps or max(1, min(50, spe // 4))
    kwargs: Dict[str, Any] = dict(
        output_dir=options.resolved_output_dir(),
        per_device_train_batch_size=schedule.per_device_batch_size,
        gradient_accumulation_steps=schedule.gradient_accumulation_steps,
        max_steps=schedule.max_steps,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        adam_beta1=ADAM_BETAS[0],
        adam_beta2=ADAM_BETAS[1],
        adam_epsilon=ADAM_EPS,
        max_grad_norm=recipe.max_grad_norm,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=schedule.warmup_steps,
        logging_strategy="steps",
        logging_steps=logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=options.save_total_limit,
        eval_strategy="steps" if options.eval_steps else "no",
        eval_steps=options.eval_steps,
        seed=recipe.seed,
        report_to=options.report_to,
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=not options.progress,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        accelerator_config={"dispatch_batches": False, "split_batches": False},
        use_cpu=not torch.cuda.is_available(),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=options.activation_checkpointing,
    )
    kwargs.update(extra)
    return TrainingArguments(**kwargs)


__all__ = [
    "DEFAULT_PRESET",
    "OPTION_FIELDS",
    "RECIPE_FLAGS",
    "TrainingOptions",
    "build_parser",
    "build_training_arguments",
    "config_field_names",
    "options_from_args",
    "parse_set_arguments",
    "parse_value",
    "recipe_field_names",
    "recorded_preset",
    "split_overrides",
]
