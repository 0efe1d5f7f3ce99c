# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Adapters between the grounding datasets (:mod:`modeling_mscl.data`) and the ``Trainer``.

:class:`TrainingSampleDataset` is a ``torch`` ``IterableDataset`` that yields, for one process, the
prepared video-centric samples (:func:`~modeling_mscl.data.sampling.prepare_training_sample`) of **every
epoch of the run, one after the other**. The ``DataLoader`` batches them with :class:`TrainingCollator`.

Determinism and resume. The order of epoch ``e`` is a pure function of ``(seed, e)`` and the process
layout: the row stream's order comes from ``(seed, e)`` (:func:`~modeling_mscl.data.loading.iter_epoch`),
the groups, crops and contrastive draws from ``(seed, e, video id)``, and the sample shuffle buffer from
``(seed, e, rank)``. Resuming at optimiser step ``s`` therefore replays the stream to sample
``s × gradient_accumulation_steps × per_device_batch_size`` (:meth:`TrainingSampleDataset.set_position`);
skipped samples are planned but never cropped or collated. Nothing depends on a restored shuffle buffer.

Equal steps on every process. Each epoch yields exactly ``steps_per_epoch × accumulation × batch``
samples per process, where ``steps_per_epoch`` is computed once, identically on every process, from the
epoch-0 sample count of the whole split (:func:`count_training_samples`). A process whose rows give more
samples drops the surplus (``drop_last``); one whose rows give fewer wraps around its own epoch stream (as
``DistributedSampler`` pads by repeating). DDP never waits on a process that ran out of data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import IterableDataset

from ..data.loading import GroundingDataset, GroundingStream, iter_epoch, load_grounding_dataset
from ..data.sampling import GroundingCollator, group_queries, mapping_for_row, prepare_training_sample, stable_seed
from ..processing_mscl import validate_grounding_batch

#: Samples held by the per-process sample shuffle buffer (groups of one video are otherwise adjacent).
DEFAULT_SAMPLE_SHUFFLE_BUFFER = 16
_META_COLUMNS = ("video_id", "duration", "fps", "clip_size", "clip_stride", "downsample_rate", "queries")


# ----------------------------------------------------------------------------------------------------
# Collation
# ----------------------------------------------------------------------------------------------------
class TrainingCollator:
    """Prepared samples → the model's training batch (``GroundingCollator(training=True)``), checked with
    :func:`~modeling_mscl.processing_mscl.validate_grounding_batch` (the checks of the model's forward).

    ``batch["meta"]`` is dropped unless ``keep_meta=True``, so the output can go straight into
    ``model(**batch)`` — which is what the stock ``transformers.Trainer`` does.
    """

    def __init__(self, config, keep_meta: bool = False):
        self.config = config
        self.keep_meta = bool(keep_meta)
        self._collate = GroundingCollator(config, training=True)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        batch = self._collate(samples)
        # the checks of the model's forward, here in the data loader: a bad sample fails before the step
        validate_grounding_batch(
            self.config, batch["video_features"], batch["video_mask"], batch["text_features"], batch["text_mask"],
            batch["query_video_index"], batch.get("labels"),
        )
        if not self.keep_meta:
            batch.pop("meta", None)
        # Per-query tensors first: accelerate's batch dispatcher (the default for iterable datasets) infers
        # the batch size from the first tensor and slices every tensor to it. With the N >= B query tensors
        # first, that slice is a no-op; with video_features first it would cut the queries to B.
        first = ("text_features", "text_mask", "query_video_index", "labels")
        return {**{k: batch[k] for k in first if k in batch}, **{k: v for k, v in batch.items() if k not in first}}


# ----------------------------------------------------------------------------------------------------
# Counting samples (metadata only)
# ----------------------------------------------------------------------------------------------------
def estimate_num_features(row: Mapping[str, Any]) -> int:
    """Feature steps of a row after ``downsample_rate`` subsampling.

    Exact when the row carries ``video_features``; otherwise inferred from the duration and the clip
    grid (the last clip ends at the video's end): ``(duration·fps − clip_size) / clip_stride + 1``.
    """
    rate = int(row.get("downsample_rate") or 1)
    feats = row.get("video_features")
    if feats is not None:
        stored = len(feats)
    else:
        fps, size, stride = float(row["fps"]), float(row["clip_size"]), float(row["clip_stride"])
        stored = max(1, int(round((float(row["duration"]) * fps - size) / stride)) + 1)
    return max(1, int(math.ceil(stored / rate)))


def groups_of_row(row: Mapping[str, Any], config, epoch: int, seed: Optional[int] = None, *, recipe) -> List[List[int]]:
    """This epoch's query groups of one row (:func:`~modeling_mscl.data.sampling.group_queries`)."""
    if not row.get("queries"):
        return []
    return group_queries(
        row["queries"], num_features=estimate_num_features(row), mapping=mapping_for_row(row, config),
        config=config, recipe=recipe, epoch=int(epoch), video_id=str(row["video_id"]), seed=seed,
    )


def count_epoch_samples(
    rows: Iterable[Mapping[str, Any]], config, epoch: int = 0, seed: Optional[int] = None, *, recipe
) -> Tuple[int, int]:
    """(samples, videos) of one epoch over ``rows`` (rows need no ``video_features``)."""
    samples = videos = 0
    for row in rows:
        videos += 1
        samples += len(groups_of_row(row, config, epoch, seed, recipe=recipe))
    return samples, videos


def count_training_samples(
    path_or_rows: Union[str, Sequence[Mapping[str, Any]]],
    config,
    split: str = "train",
    epoch: int = 0,
    seed: Optional[int] = None,
    *,
    recipe,
) -> Tuple[int, int]:
    """(samples, videos) of epoch ``epoch`` over the **whole** split, reading no video features.

    Used to fix ``steps_per_epoch`` identically on every process before training.
    """
    if isinstance(path_or_rows, (list, tuple)):
        return count_epoch_samples(path_or_rows, config, epoch, seed, recipe=recipe)
    meta_rows = load_grounding_dataset(
        path_or_rows, split, streaming=True, shuffle_buffer=None, columns=list(_META_COLUMNS),
        equalize=None, video_dim=config.video_input_dim, text_dim=config.text_input_dim,
    )
    return count_epoch_samples(meta_rows, config, epoch, seed, recipe=recipe)


# ----------------------------------------------------------------------------------------------------
# The schedule
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainingSchedule:
    """Steps of a run, fixed before training and identical on every process.

    ``batch_size`` (the recipe's) is the number of videos per micro-batch summed over processes (so the recipe —
    lr, steps per epoch, warmup — does not change with the number of processes);
    ``per_device_batch_size = batch_size / world_size``. One optimiser step sees
    ``batch_size × gradient_accumulation_steps`` videos. ``num_epochs`` is the total, warmup included
    (SnAG trains ``epochs + warmup_epochs``).
    """

    num_samples: int
    num_videos: int
    batch_size: int
    world_size: int
    gradient_accumulation_steps: int
    num_epochs: int
    warmup_epochs: int
    max_steps_override: Optional[int] = None

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_size % self.world_size:
            raise ValueError(
                f"batch_size ({self.batch_size} videos per micro-batch over all processes) must be divisible by "
                f"the number of processes ({self.world_size})"
            )
        if self.gradient_accumulation_steps < 1:
            raise ValueError(f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        if self.num_epochs < 1:
            raise ValueError(f"the run needs at least one epoch, got {self.num_epochs}")
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training split has {self.num_samples} samples per epoch ({self.num_videos} videos), fewer than "
                f"one optimiser step of {self.batch_size * self.gradient_accumulation_steps} videos"
            )

    @property
    def per_device_batch_size(self) -> int:
        return self.batch_size // self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.gradient_accumulation_steps)

    @property
    def samples_per_epoch_per_process(self) -> int:
        return self.steps_per_epoch * self.gradient_accumulation_steps * self.per_device_batch_size

    @property
    def max_steps(self) -> int:
        if self.max_steps_override is not None:
            return int(self.max_steps_override)
        return self.steps_per_epoch * self.num_epochs

    @property
    def data_epochs(self) -> int:
        """Epochs the data stream must cover (more than ``num_epochs`` when ``max_steps`` is overridden)."""
        return max(1, -(-self.max_steps // self.steps_per_epoch))

    @property
    def warmup_steps(self) -> int:
        return self.steps_per_epoch * self.warmup_epochs

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("per_device_batch_size", "steps_per_epoch", "samples_per_epoch_per_process", "max_steps", "warmup_steps"):
            out[name] = getattr(self, name)
        return out


# ----------------------------------------------------------------------------------------------------
# The training stream
# ----------------------------------------------------------------------------------------------------
RowSource = Union[Sequence[Mapping[str, Any]], GroundingStream, GroundingDataset]


class TrainingSampleDataset(IterableDataset):
    """All epochs' prepared training samples of one process, in a replayable order.

    Args:
        source: this process's rows — a stream from :func:`load_training_source` (already split by
            node), or an in-memory sequence of rows (ordered per epoch by ``rng(seed, epoch)`` and split
            ``rows[rank::world_size]`` here).
        config: the model configuration.
        recipe: the training recipe (sampling settings, ``seed``).
        samples_per_epoch: samples to yield per epoch (:attr:`TrainingSchedule.samples_per_epoch_per_process`).
        num_epochs: epochs to yield.
        seed: defaults to ``recipe.seed``.
        rank / world_size: this process (only used to split in-memory rows and to seed the buffer).
        sample_shuffle_buffer: samples mixed across videos before batching (0/1: off).
    """

    def __init__(
        self,
        source: RowSource,
        config,
        *,
        recipe,
        samples_per_epoch: int,
        num_epochs: int,
        seed: Optional[int] = None,
        rank: int = 0,
        world_size: int = 1,
        sample_shuffle_buffer: int = DEFAULT_SAMPLE_SHUFFLE_BUFFER,
    ):
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.source = source
        self.config = config
        self.recipe = recipe
        self.samples_per_epoch = int(samples_per_epoch)
        self.num_epochs = int(num_epochs)
        self.seed = int(recipe.seed if seed is None else seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.sample_shuffle_buffer = int(sample_shuffle_buffer or 0)
        self.start_sample = 0

    def set_position(self, num_samples_consumed: int) -> None:
        """Start the next iteration after ``num_samples_consumed`` samples (resume)."""
        if num_samples_consumed < 0:
            raise ValueError(f"position must be >= 0, got {num_samples_consumed}")
        self.start_sample = int(num_samples_consumed)

    def __len__(self) -> int:  # pragma: no cover - deliberately absent for the Trainer (see module doc)
        raise TypeError("TrainingSampleDataset has no length; use TrainingSchedule.max_steps")

    # ------------------------------------------------------------------------------------------
    def _epoch_rows(self, epoch: int) -> Iterator[Mapping[str, Any]]:
        if isinstance(self.source, (list, tuple)):
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.source))
            for i in order[self.rank :: self.world_size]:
                yield self.source[int(i)]
        else:
            yield from iter_epoch(self.source, epoch)

    def _descriptors(self, epoch: int) -> Iterator[Tuple[Mapping[str, Any], int, List[int]]]:
        for row in self._epoch_rows(epoch):
            for gi, group in enumerate(groups_of_row(row, self.config, epoch, self.seed, recipe=self.recipe)):
                yield row, gi, group

    def _shuffled(self, items: Iterator, rng: np.random.Generator) -> Iterator:
        size = self.sample_shuffle_buffer
        if size <= 1:
            yield from items
            return
        buffer: List[Any] = []
        for item in items:
            if len(buffer) < size:
                buffer.append(item)
                continue
            k = int(rng.integers(size))
            yield buffer[k]
            buffer[k] = item
        for k in rng.permutation(len(buffer)):
            yield buffer[int(k)]

    def epoch_samples(self, epoch: int, skip: int = 0) -> Iterator[Dict[str, Any]]:
        """Exactly ``samples_per_epoch`` samples of ``epoch`` (wrapping around if the rows run short)."""
        emitted, pass_index = 0, 0
        while emitted < self.samples_per_epoch:
            rng = np.random.default_rng(stable_seed(self.seed, int(epoch), self.rank, "sample-buffer", pass_index))
            got = 0
            items = self._shuffled(self._descriptors(epoch), rng)
            try:
                for row, gi, group in items:
                    if emitted >= self.samples_per_epoch:
                        break
                    got += 1
                    if emitted >= skip:
                        yield prepare_training_sample(row, group, self.config, epoch, self.seed, recipe=self.recipe,
                                                      group_index=gi)
                    emitted += 1
            finally:
                # close the row stream now (not at garbage collection, possibly during interpreter exit)
                items.close()
            if got == 0:
                raise ValueError(f"process {self.rank}: epoch {epoch} has no training samples (empty split or shard)")
            pass_index += 1

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        first_epoch, skip = divmod(self.start_sample, self.samples_per_epoch)
        for epoch in range(first_epoch, self.num_epochs):
            yield from self.epoch_samples(epoch, skip if epoch == first_epoch else 0)


# ----------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------
def load_training_source(
    path_or_repo: str,
    config,
    split: str = "train",
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle_buffer: Optional[int] = 64,
):
    """This process's streamed training rows (whole shards per process; feature widths checked); the
    order of epoch ``e`` is a function of ``(seed, e)`` (pass the recipe's ``seed``)."""
    kwargs: Dict[str, Any] = {}
    if world_size > 1:
        kwargs.update(rank=rank, world_size=world_size)
    return load_grounding_dataset(
        path_or_repo, split, streaming=True, shuffle_buffer=shuffle_buffer, seed=int(seed),
        video_dim=config.video_input_dim, text_dim=config.text_input_dim, **kwargs,
    )


def load_eval_source(path_or_repo: str, config, split: str, *, rank: int = 0, world_size: int = 1):
    """This process's evaluation rows, in stored order (every row of the split lands on one process)."""
    kwargs: Dict[str, Any] = {}
    if world_size > 1:
        kwargs.update(rank=rank, world_size=world_size)
    return load_grounding_dataset(
        path_or_repo, split, streaming=True, shuffle_buffer=None, equalize=None,
        video_dim=config.video_input_dim, text_dim=config.text_input_dim, **kwargs,
    )


__all__ = [
    "DEFAULT_SAMPLE_SHUFFLE_BUFFER",
    "TrainingCollator",
    "TrainingSampleDataset",
    "TrainingSchedule",
    "count_epoch_samples",
    "count_training_samples",
    "estimate_num_features",
    "groups_of_row",
    "load_eval_source",
    "load_training_source",
]
