# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``MSCLTrainer``: the ``transformers.Trainer`` with SnAG's loss semantics, the EMA and grounding evaluation.

The loss of Eq. 13 is assembled by the model; the model also trains with the stock ``Trainer`` (single
process, no accumulation). What ``MSCLTrainer`` adds, and where:

* **Loss scaling (SnAG §3).** Every micro-batch divides its focal/IoU sums by the same normaliser and
  gradients are *summed* over the micro-batches of a step. The stock ``training_step`` divides the loss by
  the number of accumulation steps; ``MSCLTrainer`` sets ``loss_is_scaled_for_ga = True`` (the Trainer's
  own switch for "the loss is already normalised over the accumulated batch"), so nothing is divided.
  Under DDP the loss (``MSCLLoss``) multiplies its sums by the world size, so DDP's gradient averaging yields
  the gradient of the global sum.
* **Contrastive normaliser.** ``get_batch_samples`` (which pre-fetches all micro-batches of one optimiser
  step) counts the (within, cross) pairs of those micro-batches with ``model.count_contrastive_pairs``,
  sums them over processes and passes ``max(count, 1) / world_size`` as ``contrastive_normalizer`` to every
  micro-batch: the step's gradient is that of the global mean over all pairs of the step.
* **Positive-count normaliser.** ``compute_loss`` adds up ``num_positives`` of the step's micro-batches;
  once per optimiser step, after backward and the optimiser step (callback ``on_step_end``, which runs
  before logging and checkpointing), the count is summed over processes and
  ``model.update_loss_normalizer`` applies the EMA update. Step ``t`` therefore uses the normaliser as it
  stood after step ``t−1``. The normaliser is a persistent buffer: it travels in every checkpoint.
* **EMA of the weights** (:class:`~modeling_mscl.training.ema.ModelEMA`): a copy of the initial model,
  updated in ``on_step_end`` after every optimiser step, saved as ``ema.safetensors`` in every checkpoint
  folder, restored on resume, and used by :meth:`MSCLTrainer.evaluate` and :meth:`save_ema_model`.
* **Logging.** Each loss term (cls, reg, within, cross), the positive count and the normaliser are logged
  next to ``loss``, averaged over the steps since the last log and over processes.
* **Data and resume.** A :class:`~modeling_mscl.training.data.TrainingSampleDataset` is read by a plain
  ``DataLoader`` (already split by node; not re-sharded by accelerate). On resume the dataset replays its
  deterministic order to the checkpoint's step (``ignore_data_skip`` is forced on: the Trainer's own
  skipping would re-read and collate every skipped batch); model, optimiser, scheduler, RNG and
  ``trainer_state.json`` come from the checkpoint, the EMA from ``ema.safetensors``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Dict, List, Optional

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback

from .data import TrainingCollator, TrainingSampleDataset
from .ema import EMA_WEIGHTS_NAME, ModelEMA
from .launch import check_not_data_parallel
from .optim import build_param_groups
from .recipe import TrainingRecipe

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
LOSS_TERMS = ("loss_cls", "loss_reg", "loss_within", "loss_cross")


# ----------------------------------------------------------------------------------------------------
# Distributed helpers (no-ops without torch.distributed)
# ----------------------------------------------------------------------------------------------------
def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes (a copy; the input itself is returned without distribution)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def step_contrastive_normalizer(model, micro_batches: List[Dict[str, Any]], device=None) -> Optional[torch.Tensor]:
    """The ``contrastive_normalizer`` of every micro-batch of one optimiser step: ``max(pairs, 1) / world
    size`` for the ``(within, cross)`` pairs summed over the step's micro-batches and all processes
    (:meth:`MSCLLoss.contrastive_normalizer <modeling_mscl.losses_mscl.MSCLLoss.contrastive_normalizer>`).

    ``None`` when the contrastive terms are off, reduced by ``"sum"``, or the batches carry no
    ``contrastive_query_index``. A collective under ``torch.distributed``: call it on every process.
    """
    cfg = model.config
    if not cfg.use_contrastive or cfg.contrastive_reduction != "mean" or not micro_batches:
        return None
    if any("contrastive_query_index" not in b or "labels" not in b for b in micro_batches):
        return None
    counts = sum(
        model.count_contrastive_pairs(b["labels"], b["video_mask"], b["contrastive_query_index"]).double()
        for b in micro_batches
    )
    if device is not None:
        counts = counts.to(device)
    return model.criterion.contrastive_normalizer(counts).float()


def find_last_checkpoint(output_dir: str) -> Optional[str]:
    """The newest *complete* ``checkpoint-N`` folder (trainer state and EMA written), or ``None``.

    A run killed while saving leaves an incomplete folder; it is skipped.
    """
    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        m = _CHECKPOINT_RE.match(name)
        path = os.path.join(output_dir, name)
        if m and os.path.isdir(path) and is_complete_checkpoint(path):
            found.append((int(m.group(1)), path))
    return max(found)[1] if found else None


def is_complete_checkpoint(path: str) -> bool:
    if not (os.path.isfile(os.path.join(path, TRAINER_STATE_NAME)) and os.path.isfile(os.path.join(path, EMA_WEIGHTS_NAME))):
        return False
    try:
        with open(os.path.join(path, TRAINER_STATE_NAME), encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def checkpoint_global_step(path: str) -> int:
    with open(os.path.join(path, TRAINER_STATE_NAME), encoding="utf-8") as f:
        return int(json.load(f)["global_step"])


# ----------------------------------------------------------------------------------------------------
# Callback: normaliser and EMA, once per optimiser step
# ----------------------------------------------------------------------------------------------------
class MSCLStepCallback(TrainerCallback):
    """Runs the once-per-optimiser-step updates of :class:`MSCLTrainer` (see the module docstring)."""

    def __init__(self, trainer: "MSCLTrainer"):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._setup_ema()

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._end_of_optimizer_step()


# ----------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------
class MSCLTrainer(Trainer):
    """``transformers.Trainer`` for :class:`~modeling_mscl.MSCLForTemporalGrounding` (SnAG semantics).

    Args (besides the ``Trainer``'s):
        eval_dataset: rows to evaluate on (re-iterable, e.g.
            :func:`~modeling_mscl.training.data.load_eval_source`); ``evaluate`` grounds whole videos.
        recipe: the :class:`~modeling_mscl.training.TrainingRecipe` (``module_learning_rates``, ``ema_decay``,
            ``eval_ranks``/``eval_thresholds``); default ``TrainingRecipe()``.
        ema_decay: β of the weight EMA (default ``recipe.ema_decay``); ``use_ema=False`` → off.
        steps_per_epoch: optimiser steps per data epoch, only to report ``epoch`` in the logs.
        eval_num_videos / eval_max_videos: progress-bar total / cap for evaluation.
        predictions_path: where ``evaluate`` writes ``predictions.jsonl`` (optional).

    The optimiser defaults to SnAG's AdamW param groups (:func:`~modeling_mscl.training.optim.build_param_groups`)
    with ``args.learning_rate``/``args.weight_decay`` and ``recipe.module_learning_rates``; the schedule is
    ``args.lr_scheduler_type`` (``constant_with_warmup`` from :func:`~modeling_mscl.training.args.build_training_arguments`).
    """

    def __init__(
        self,
        *args,
        recipe: Optional[TrainingRecipe] = None,
        ema_decay: Optional[float] = None,
        use_ema: bool = True,
        steps_per_epoch: Optional[int] = None,
        eval_num_videos: Optional[int] = None,
        eval_max_videos: Optional[int] = None,
        predictions_path: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # several GPUs in this one process would mean torch.nn.DataParallel (see training.launch)
        check_not_data_parallel(self.args.n_gpu)
        # The model's loss is already "normalised over the accumulated batch" in SnAG's sense (each
        # micro-batch divides by the step's shared normaliser; gradients are summed): the Trainer must
        # not divide it by the number of accumulation steps.
        self.loss_is_scaled_for_ga = True
        if isinstance(self.train_dataset, TrainingSampleDataset):
            # the dataset replays its own order to the checkpoint's step (see `train`); the Trainer's
            # skipping would collate and drop every skipped batch on top of that
            self.args.ignore_data_skip = True
        self.recipe = recipe if recipe is not None else TrainingRecipe()
        self.use_ema = bool(use_ema)
        self.ema_decay = float(self.recipe.ema_decay if ema_decay is None else ema_decay)
        self.ema: Optional[ModelEMA] = None
        self.steps_per_epoch = steps_per_epoch
        self.eval_num_videos = eval_num_videos
        self.eval_max_videos = eval_max_videos
        self.predictions_path = predictions_path
        self._resume_checkpoint: Optional[str] = None
        self._reset_step_accumulators()
        self._reset_log_accumulators()
        self.add_callback(MSCLStepCallback(self))

    # ------------------------------------------------------------------------------------------
    # accumulators
    # ------------------------------------------------------------------------------------------
    def _reset_step_accumulators(self):
        self._step_positives = torch.zeros((), dtype=torch.float64)

    def _reset_log_accumulators(self):
        self._log_terms = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64)  # + num_positives
        self._log_steps = 0

    @property
    def unwrapped_model(self):
        return self.accelerator.unwrap_model(self.model)

    # ------------------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        if not isinstance(self.train_dataset, TrainingSampleDataset):
            return super().get_train_dataloader()
        if self.args.dataloader_num_workers:
            # Each worker would re-split the node's shards; ordering must stay a function of (seed, epoch).
            logger.warning("MSCLTrainer reads the training stream in the main process (dataloader_num_workers ignored)")
        collator = self.data_collator if isinstance(self.data_collator, TrainingCollator) else TrainingCollator(self.model.config)
        # A private generator: creating the iterator must not draw from the global RNG, or a resumed run
        # (which restores the RNG before iterating) would diverge from an uninterrupted one.
        return DataLoader(
            self.train_dataset,
            batch_size=self.args.per_device_train_batch_size,
            collate_fn=collator,
            num_workers=0,
            # page-locked batches let the host-to-GPU copy of the (B, T, Dv) features run asynchronously
            pin_memory=bool(self.args.dataloader_pin_memory) and self.args.device.type == "cuda",
            generator=torch.Generator().manual_seed(int(self.args.seed)),
        )

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        for batch in batch_samples:
            batch.pop("meta", None)
        normalizer = step_contrastive_normalizer(self.unwrapped_model, batch_samples, device=self.args.device)
        if normalizer is not None:
            for batch in batch_samples:
                batch["contrastive_normalizer"] = normalizer
        return batch_samples, num_items_in_batch

    # ------------------------------------------------------------------------------------------
    # loss
    # ------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {k: v for k, v in inputs.items() if k != "meta"}
        outputs = model(**inputs)
        loss = outputs.loss
        if loss is None:
            raise ValueError("the model returned no loss: the training batch needs `labels`")
        if model.training:
            # the terms and the positive count in one host copy (on a GPU, each copy is a host sync)
            terms = [getattr(outputs, name) for name in LOSS_TERMS] + [outputs.num_positives]
            zero = loss.new_zeros((), dtype=torch.float32)
            values = torch.stack([t.detach().float() if t is not None else zero for t in terms]).cpu().double()
            self._log_terms += values
            self._step_positives += values[len(LOSS_TERMS)]
        return (loss, outputs) if return_outputs else loss

    def _end_of_optimizer_step(self):
        """After backward and the optimiser step: normaliser EMA (global positive count), weight EMA."""
        model = self.unwrapped_model
        total = all_reduce_sum(self._step_positives.to(self.args.device)).cpu()
        model.update_loss_normalizer(float(total))
        self._reset_step_accumulators()
        if self.ema is not None:
            self.ema.update(model)
        self._log_steps += 1
        if self.steps_per_epoch:
            self.state.epoch = self.state.global_step / float(self.steps_per_epoch)

    # ------------------------------------------------------------------------------------------
    # logging
    # ------------------------------------------------------------------------------------------
    def log(self, logs: Dict[str, float], start_time: Optional[float] = None) -> None:
        if "loss" in logs and self._log_steps > 0:
            # every process reaches a training log at the same step: the reduction is safe
            sums = all_reduce_sum(self._log_terms.to(self.args.device)).cpu() / world_size()
            steps = float(self._log_steps)
            for i, name in enumerate(LOSS_TERMS):
                logs[name] = round(float(sums[i]) / steps, 6)
            # the model scales cls/reg by the world size in training mode; positives are per process
            logs["num_positives"] = round(float(sums[len(LOSS_TERMS)]) * world_size() / steps, 2)
            logs["loss_normalizer"] = round(float(self.unwrapped_model.loss_normalizer), 4)
            self._reset_log_accumulators()
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------
    # optimiser
    # ------------------------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            groups = build_param_groups(
                opt_model, self.args.learning_rate, self.args.weight_decay, self.recipe.module_learning_rates,
            )
            for g in groups:
                g.pop("param_names")
            self.optimizer = torch.optim.AdamW(
                groups, lr=self.args.learning_rate, betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon, weight_decay=0.0,
            )
        return self.optimizer

    # ------------------------------------------------------------------------------------------
    # EMA, checkpoints, resume
    # ------------------------------------------------------------------------------------------
    def _setup_ema(self):
        if not self.use_ema:
            self.ema = None
            return
        model = self.unwrapped_model
        self.ema = ModelEMA(model, self.ema_decay)
        if self._resume_checkpoint is not None:
            path = os.path.join(self._resume_checkpoint, EMA_WEIGHTS_NAME)
            if not os.path.isfile(path):
                raise ValueError(f"checkpoint {self._resume_checkpoint} has no {EMA_WEIGHTS_NAME}; cannot resume the EMA")
            self.ema.load(path)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.ema is not None and self.args.should_save:
            output_dir = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            # written last and atomically: its presence marks a complete checkpoint (find_last_checkpoint)
            self.ema.save(os.path.join(output_dir, EMA_WEIGHTS_NAME))

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """As ``Trainer.train``; ``resume_from_checkpoint`` may be a folder, ``True`` or ``"auto"`` (newest
        complete checkpoint in ``output_dir``, or a fresh start when there is none)."""
        if resume_from_checkpoint is True or resume_from_checkpoint == "auto":
            resume_from_checkpoint = find_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is not None:
                logger.info("resuming from %s", resume_from_checkpoint)
        elif resume_from_checkpoint is not None and resume_from_checkpoint is not False:
            if not is_complete_checkpoint(resume_from_checkpoint):
                raise ValueError(
                    f"{resume_from_checkpoint} is not a complete MSCL checkpoint (needs {TRAINER_STATE_NAME} and {EMA_WEIGHTS_NAME})"
                )
        else:
            resume_from_checkpoint = None
        self._resume_checkpoint = resume_from_checkpoint
        self._reset_step_accumulators()
        self._reset_log_accumulators()
        if isinstance(self.train_dataset, TrainingSampleDataset):
            step = checkpoint_global_step(resume_from_checkpoint) if resume_from_checkpoint else 0
            self.train_dataset.set_position(
                step * self.args.gradient_accumulation_steps * self.args.per_device_train_batch_size
            )
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial,
                             ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)

    def ema_model(self):
        """A copy of the model with the EMA weights (the live model when the EMA is off or not started)."""
        model = self.unwrapped_model
        if self.ema is None:
            return model
        return self.ema.averaged_model(model)

    def save_ema_model(self, output_dir: Optional[str] = None) -> str:
        """``save_pretrained`` of the EMA model (EMA weights as the main weights, live buffers, code + auto_map)."""
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            model = self.ema_model()
            model.save_pretrained(output_dir)
        if world_size() > 1:
            import torch.distributed as dist

            dist.barrier()
        return output_dir

    # ------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """Ground every video of ``eval_dataset`` with the EMA model; logs and returns prefixed metrics."""
        from .evaluation import evaluate_grounding

        rows = eval_dataset if eval_dataset is not None else self.eval_dataset
        if rows is None:
            raise ValueError("MSCLTrainer.evaluate needs eval_dataset (rows of the evaluation split)")
        model = self.ema_model() if self.ema is not None else self.unwrapped_model
        metrics = evaluate_grounding(
            model, rows, self.unwrapped_model.config, ranks=self.recipe.eval_ranks,
            thresholds=self.recipe.eval_thresholds, predictions_path=self.predictions_path,
            progress=not self.args.disable_tqdm, total=self.eval_num_videos, max_videos=self.eval_max_videos,
        )
        flat = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        self.log(dict(flat))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, flat)
        self.last_eval_metrics = metrics
        return flat


__all__ = [
    "LOSS_TERMS",
    "MSCLStepCallback",
    "MSCLTrainer",
    "all_reduce_sum",
    "checkpoint_global_step",
    "find_last_checkpoint",
    "is_complete_checkpoint",
    "step_contrastive_normalizer",
    "world_size",
]
