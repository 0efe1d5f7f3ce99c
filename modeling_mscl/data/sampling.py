# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Video-centric training samples (SnAG §4.1), evaluation samples and the collator.

One *training sample* is one video plus a *group* of its queries; the video is encoded once and the
fusion runs once per query. Per epoch every video's queries are split into groups:

* **max-length presets** (``fixed_length is None``: TACoS, MAD, Ego4D, ``quickstart``): greedy windows.
  The worst-case crop window in seconds is ``(stride_eff·(W−1) + clip_size) / fps`` with
  ``W = max_video_length·video_input_stride`` for videos longer than that, else the video's feature count
  (``ceil(crop_lo·n)`` when ``crop_ratio`` is set). Queries are sorted by start; the earliest unused one is
  the probe; the unused queries fully inside ``[start_probe, start_probe + window]`` are the candidates,
  of which a random subset of ``max_queries_per_video`` is kept when there are more (the probe may be
  left out and is then the next probe). A probe longer than the window forms a group on its own.
* **fixed-length presets, ``query_grouping="greedy"``** (Charades): shuffle, then chunks of
  ``max_queries_per_video``.
* **``query_grouping="random"``** (ANet): one group per video per epoch with ``max_queries_per_video``
  (2) random queries; the others are not seen that epoch.

Settings. The model configuration (:class:`~modeling_mscl.MSCLConfig`: ``max_video_length``,
``video_input_stride``, ``fixed_length``, the time mapping, ``max_text_length``) says what the model
takes; the training recipe (:class:`~modeling_mscl.training.TrainingRecipe`: ``max_queries_per_video``,
``query_grouping``, ``crop_ratio``, ``truncation_threshold``, ``seed``) says how samples are drawn. The
training-sample functions take both (``config`` and the keyword ``recipe``); evaluation samples and the
collator need only the config.

Randomness. Every random choice (groups, crops, the contrastive draw) comes from a NumPy generator
seeded by a stable hash (BLAKE2b, never Python's salted ``hash``) of ``(seed, epoch, video_id, purpose,
group index)``. A sample is therefore a pure function of its row, the settings, the seed and the epoch:
runs replay exactly and samples do not depend on the batch they land in, the number of processes or
the order in which videos are read.

Crops (max-length presets). The window length is ``max_video_length·video_input_stride`` for longer
videos, a random integer in ``[ceil(crop_lo·T), floor(crop_hi·T)]`` for shorter ones when
``crop_ratio`` is set, the whole video otherwise. A start is valid when every grouped moment keeps
more than ``truncation_threshold`` of its length inside the window widened by the clip offset
``0.5·clip_size/stride_eff``. SnAG draws up to 5000 random starts and raises if none is valid; here the
valid starts are enumerated exactly (vectorised) and one is drawn uniformly, which is the distribution
rejection sampling converges to, without its failure mode when valid starts are rare. When no start
is valid a ``ValueError`` names the video and the queries.

Labels are in model-grid units (feature index / ``video_input_stride``), shifted by the crop and
clamped to ``[−offset, W + offset]`` (in feature-index units before the division), as in SnAG.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..processing_mscl import TimeMapping, resample_to_fixed_length
from .schema import time_mapping_for_row

# SnAG keeps at most this many random starts before giving up; kept for documentation and errors.
SNAG_MAX_CROP_TRIES = 5000

__all__ = [
    "GroundingCollator",
    "TrainingSampleStream",
    "contrastive_draw",
    "group_queries",
    "mapping_for_row",
    "plan_epoch",
    "prepare_eval_sample",
    "prepare_training_sample",
    "sample_rng",
    "stable_seed",
    "worst_case_window_seconds",
]


# ----------------------------------------------------------------------------------------------------
# Deterministic randomness
# ----------------------------------------------------------------------------------------------------
def stable_seed(*parts: Any) -> int:
    """A 63-bit integer from a stable hash of ``parts`` (identical across processes, platforms and runs).

    Integers (Python or NumPy), floats and strings are tagged by kind and joined with a separator, so
    ``stable_seed(1, "ab")``, ``stable_seed("1", "ab")`` and ``stable_seed("1a", "b")`` all differ.
    """
    fields = []
    for p in parts:
        if isinstance(p, (bool, np.bool_)):
            fields.append(f"b:{int(p)}")
        elif isinstance(p, (int, np.integer)):
            fields.append(f"i:{int(p)}")
        elif isinstance(p, (float, np.floating)):
            fields.append(f"f:{float(p)!r}")
        else:
            fields.append(f"s:{p}")
    digest = hashlib.blake2b("\x1f".join(fields).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def sample_rng(seed: int, epoch: int, video_id: str, *extra: Any) -> np.random.Generator:
    """The generator of one video in one epoch (``extra`` separates independent streams)."""
    return np.random.default_rng(stable_seed(int(seed), int(epoch), str(video_id), *extra))


def _seed_of(recipe, seed: Optional[int]) -> int:
    return int(recipe.seed if seed is None else seed)


# ----------------------------------------------------------------------------------------------------
# Rows and time mapping
# ----------------------------------------------------------------------------------------------------
def _as_numpy_2d(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (T, D) array, got shape {arr.shape}")
    return arr


def mapping_for_row(row: Mapping[str, Any], config) -> TimeMapping:
    """The row's :class:`TimeMapping` with the model's input stride, *before* any fixed-length resample.

    Row fields (``fps``, ``clip_size``, ``clip_stride``, ``downsample_rate``, ``duration``) win over the
    config's, which are only defaults for rows that lack them.
    """
    full = {
        "fps": row.get("fps", config.fps),
        "clip_size": row.get("clip_size", config.clip_size),
        "clip_stride": row.get("clip_stride", config.clip_stride),
        "downsample_rate": row.get("downsample_rate", config.downsample_rate),
        "duration": row.get("duration"),
    }
    if full["duration"] is None:
        raise ValueError(f"video {row.get('video_id')!r}: row has no duration")
    return time_mapping_for_row(full, input_stride=int(config.video_input_stride))


def _subsampled_features(row: Mapping[str, Any], mapping: TimeMapping) -> np.ndarray:
    feats = _as_numpy_2d(row["video_features"], f"video {row.get('video_id')!r}: video_features")
    if feats.shape[0] == 0:
        raise ValueError(f"video {row.get('video_id')!r}: video_features is empty")
    k = int(mapping.downsample_rate)
    # SnAG subsamples by striding (no averaging).
    return feats[::k] if k > 1 else feats


def _query_segments(queries: Sequence[Mapping[str, Any]], video_id: str) -> np.ndarray:
    segs = np.array([[float(q["start"]), float(q["end"])] for q in queries], dtype=np.float64).reshape(-1, 2)
    if len(segs) and not np.all(segs[:, 1] > segs[:, 0]):
        bad = [queries[i].get("query_id") for i in np.nonzero(segs[:, 1] <= segs[:, 0])[0]]
        raise ValueError(f"video {video_id!r}: queries {bad} have end <= start")
    return segs


def _text_tensor(query: Mapping[str, Any], video_id: str, max_length: Optional[int]) -> torch.Tensor:
    tf = query.get("text_features")
    arr = None if tf is None else _as_numpy_2d(tf, f"video {video_id!r}, query {query.get('query_id')!r}: text_features")
    if arr is None or arr.shape[0] == 0:
        raise ValueError(
            f"video {video_id!r}, query {query.get('query_id')!r}: no text features; embed the sentences first "
            "(config.text_feature_source) — the sampler needs token features"
        )
    if max_length is not None:
        arr = arr[:max_length]
    return torch.from_numpy(np.ascontiguousarray(arr))


# ----------------------------------------------------------------------------------------------------
# Grouping
# ----------------------------------------------------------------------------------------------------
def _training_window_steps(num_features: int, config, recipe) -> Tuple[int, bool]:
    """(worst-case crop length in feature steps, whether the video is longer than the training length)."""
    max_in = int(config.max_video_length) * int(config.video_input_stride)
    if num_features > max_in:
        return max_in, True
    if recipe.crop_ratio is not None:
        return max(1, int(math.ceil(float(recipe.crop_ratio[0]) * num_features))), False
    return int(num_features), False


def worst_case_window_seconds(num_features: int, mapping: TimeMapping, config, recipe) -> float:
    """SnAG's grouping window ``(stride_eff·(W−1) + clip_size) / fps`` in seconds."""
    w, _ = _training_window_steps(num_features, config, recipe)
    return (mapping.stride_eff * (w - 1) + mapping.clip_size) / mapping.fps


def group_queries(
    queries: Sequence[Mapping[str, Any]],
    *,
    num_features: int,
    mapping: TimeMapping,
    config,
    recipe,
    epoch: int,
    video_id: str,
    seed: Optional[int] = None,
) -> List[List[int]]:
    """Split one video's queries into this epoch's training groups (indices into ``queries``).

    Args:
        queries: the row's queries (dicts with ``start``/``end`` in seconds).
        num_features: the video's feature count after ``downsample_rate`` subsampling.
        mapping: the row's :class:`TimeMapping` (see :func:`mapping_for_row`).
        config: an :class:`~modeling_mscl.MSCLConfig` (``fixed_length``, ``max_video_length``,
            ``video_input_stride``).
        recipe: a :class:`~modeling_mscl.training.TrainingRecipe` (``query_grouping``,
            ``max_queries_per_video``, ``crop_ratio``, ``seed``).
        epoch, video_id, seed: select the random stream (``seed`` defaults to ``recipe.seed``).

    Returns:
        Groups in a deterministic order, each a list of query indices sorted by (start, index). Greedy
        grouping uses every query exactly once; ``"random"`` returns one group of
        ``min(max_queries_per_video, len(queries))`` queries.
    """
    n = len(queries)
    if n == 0:
        raise ValueError(f"video {video_id!r}: no queries to group")
    k = int(recipe.max_queries_per_video)
    if k < 1:
        raise ValueError(f"max_queries_per_video must be >= 1, got {k}")
    seed = _seed_of(recipe, seed)
    rng = sample_rng(seed, epoch, video_id, "group")
    segs = _query_segments(queries, video_id)
    order_key = lambda i: (segs[i, 0], i)  # noqa: E731 - ties broken by position for determinism

    if recipe.query_grouping == "random":
        chosen = rng.choice(n, size=min(k, n), replace=False)
        return [sorted((int(i) for i in chosen), key=order_key)]
    if recipe.query_grouping != "greedy":
        raise ValueError(f"unknown query_grouping {recipe.query_grouping!r}")

    if config.fixed_length is not None:
        perm = rng.permutation(n)
        return [sorted((int(i) for i in perm[s : s + k]), key=order_key) for s in range(0, n, k)]

    window = worst_case_window_seconds(int(num_features), mapping, config, recipe)
    order = sorted(range(n), key=order_key)
    unused = list(order)  # kept sorted by start
    groups: List[List[int]] = []
    while unused:
        probe = unused[0]
        s0, e0 = segs[probe]
        if e0 - s0 > window:
            group = [probe]
        else:
            hi = s0 + window
            cands = [i for i in unused if segs[i, 0] >= s0 and segs[i, 1] <= hi]
            if len(cands) > k:
                pick = rng.choice(len(cands), size=k, replace=False)
                cands = [cands[j] for j in sorted(int(p) for p in pick)]
            group = cands
        taken = set(group)
        unused = [i for i in unused if i not in taken]
        groups.append(sorted(group, key=order_key))
    return groups


# ----------------------------------------------------------------------------------------------------
# Training samples
# ----------------------------------------------------------------------------------------------------
def contrastive_draw(num_queries: int, *, seed: int, epoch: int, video_id: str, group_index: int = 0) -> Tuple[int, int]:
    """Query-centric sampling (paper Eq. 10) for one sample: ``(local query index, int64 seed)``.

    The query is uniform over the sample's queries; the seed lets the model draw negatives reproducibly
    whatever the batch or process layout.
    """
    if num_queries < 1:
        raise ValueError("contrastive_draw needs at least one query")
    rng = sample_rng(seed, epoch, video_id, "contrastive", int(group_index))
    index = int(rng.integers(num_queries))
    draw_seed = int(rng.integers(0, np.iinfo(np.int64).max, dtype=np.int64))
    return index, draw_seed


def _crop_length(num_features: int, config, recipe, rng: np.random.Generator) -> int:
    max_in = int(config.max_video_length) * int(config.video_input_stride)
    if num_features > max_in:
        return max_in
    if recipe.crop_ratio is not None:
        lo = max(1, int(math.ceil(float(recipe.crop_ratio[0]) * num_features)))
        hi = min(num_features, max(lo, int(math.floor(float(recipe.crop_ratio[1]) * num_features))))
        return int(rng.integers(lo, hi + 1))
    return int(num_features)


def _valid_crop_starts(gt: np.ndarray, num_features: int, window: int, offset: float, threshold: float) -> np.ndarray:
    """All integer starts whose widened window keeps > ``threshold`` of every moment (``gt`` in feature idx)."""
    max_start, min_end = float(gt[:, 0].max()), float(gt[:, 1].min())
    lo = max(0, int(math.floor(max_start - window)))
    hi = min(num_features - window, int(math.ceil(min_end)))
    if hi < lo:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(lo, hi + 1, dtype=np.int64)
    st = starts[:, None].astype(np.float64)
    inter = np.minimum(gt[None, :, 1], st + window + offset) - np.maximum(gt[None, :, 0], st - offset)
    length = np.maximum(gt[None, :, 1] - gt[None, :, 0], 1e-8)
    keep = np.clip(inter, 0.0, None) / length > threshold
    return starts[keep.all(axis=1)]


def prepare_training_sample(
    row: Mapping[str, Any],
    group: Sequence[int],
    config,
    epoch: int,
    seed: Optional[int] = None,
    *,
    recipe,
    group_index: int = 0,
) -> Dict[str, Any]:
    """One training sample: the (resampled or cropped) video and the group's queries.

    Args:
        row: a dataset row (schema of :mod:`modeling_mscl.data.schema`).
        group: query indices of the row (one element of :func:`group_queries`).
        config: the model configuration.
        epoch, seed: the random stream (``seed`` defaults to ``recipe.seed``).
        recipe: the training recipe (``crop_ratio``, ``truncation_threshold``, ``seed``).
        group_index: position of ``group`` in the epoch's groups of this video (separates the crops and
            contrastive draws of different groups of one video).

    Returns:
        A dict with ``video_id``, ``video_features`` ``(W, Dv)`` float32 tensor, ``text_features`` (list of
        ``(L_i, Dt)`` tensors truncated to ``max_text_length``), ``labels`` ``(n, 2)`` float32 grid units
        in the crop, ``query_ids``, ``segments`` ``(n, 2)`` seconds (original GT), ``mapping`` (the
        :class:`TimeMapping` of the uncropped, possibly resampled sequence), ``crop_offset`` (first feature
        step of the crop), ``duration``, ``epoch``, ``group_index``, ``contrastive_query_index`` (local)
        and ``contrastive_seed``.
    """
    seed = _seed_of(recipe, seed)
    video_id = str(row["video_id"])
    group = [int(i) for i in group]
    if not group:
        raise ValueError(f"video {video_id!r}: empty query group")
    queries = [row["queries"][i] for i in group]
    mapping = mapping_for_row(row, config)
    feats = _subsampled_features(row, mapping)
    num_features = feats.shape[0]
    segs = _query_segments(queries, video_id)

    crop_offset = 0
    if config.fixed_length is not None:
        fixed = int(config.fixed_length)
        if fixed > int(config.max_video_length) * int(config.video_input_stride):
            raise ValueError(
                f"fixed_length {fixed} exceeds the training length max_video_length*video_input_stride "
                f"= {config.max_video_length * config.video_input_stride}"
            )
        video = resample_to_fixed_length(torch.from_numpy(np.ascontiguousarray(feats)), fixed)
        mapping = mapping.with_fixed_length(num_features, fixed)
        gt = np.asarray(mapping.seconds_to_feature_index(segs), dtype=np.float64)
    else:
        gt = np.asarray(mapping.seconds_to_feature_index(segs), dtype=np.float64)
        rng = sample_rng(seed, epoch, video_id, "crop", group_index)
        window = _crop_length(num_features, config, recipe, rng)
        offset = 0.5 * mapping.clip_size / mapping.stride_eff
        if window < num_features:
            starts = _valid_crop_starts(gt, num_features, window, offset, float(recipe.truncation_threshold))
            if starts.size == 0:
                qids = [q.get("query_id") for q in queries]
                raise ValueError(
                    f"video {video_id!r}: no crop of {window} steps keeps more than "
                    f"{recipe.truncation_threshold:.0%} of every moment of queries {qids} "
                    f"(feature-index segments {np.round(gt, 2).tolist()}); SnAG would fail after "
                    f"{SNAG_MAX_CROP_TRIES} tries"
                )
            crop_offset = int(starts[int(rng.integers(starts.size))])
            feats = feats[crop_offset : crop_offset + window]
        gt = np.clip(gt - crop_offset, -offset, window + offset)
        video = torch.from_numpy(np.ascontiguousarray(feats))

    labels = torch.from_numpy((gt / int(config.video_input_stride)).astype(np.float32)).reshape(-1, 2)
    text = [_text_tensor(q, video_id, int(config.max_text_length)) for q in queries]
    local, cseed = contrastive_draw(len(queries), seed=seed, epoch=epoch, video_id=video_id, group_index=group_index)
    return {
        "video_id": video_id,
        "video_features": video.float(),
        "text_features": text,
        "labels": labels,
        "query_ids": [str(q.get("query_id")) for q in queries],
        "query_indices": group,
        "segments": torch.from_numpy(segs.astype(np.float32)),
        "mapping": mapping,
        "crop_offset": int(crop_offset),
        "duration": float(row["duration"]),
        "epoch": int(epoch),
        "group_index": int(group_index),
        "contrastive_query_index": local,
        "contrastive_seed": cseed,
    }


def plan_epoch(
    rows: Iterable[Mapping[str, Any]], config, epoch: int, seed: Optional[int] = None, *, recipe
) -> List[Tuple[int, int, List[int]]]:
    """This epoch's samples as ``(row position, group index, query indices)`` triples, in row order.

    A trainer with random access to rows can shuffle this list and call
    :func:`prepare_training_sample` on each entry.
    """
    plan = []
    for pos, row in enumerate(rows):
        for gi, group in enumerate(_groups_of_row(row, config, recipe, epoch, seed)):
            plan.append((pos, gi, group))
    return plan


def _groups_of_row(row: Mapping[str, Any], config, recipe, epoch: int, seed: Optional[int]) -> List[List[int]]:
    mapping = mapping_for_row(row, config)
    num_stored = len(row["video_features"])
    num_features = int(math.ceil(num_stored / int(mapping.downsample_rate)))
    return group_queries(
        row["queries"], num_features=num_features, mapping=mapping, config=config, recipe=recipe, epoch=epoch,
        video_id=str(row["video_id"]), seed=seed,
    )


class TrainingSampleStream:
    """Prepared training samples for one epoch of an iterable of rows, in row order.

    Every group of every row is yielded once (greedy grouping: each query once per epoch; ``"random"``:
    one sample per video). Iterating again replays the same samples. ``num_shards``/``shard_index`` keep
    every ``num_shards``-th sample, for data-parallel workers that read the same rows; the samples
    themselves never depend on the sharding.

    Args:
        rows: an iterable of dataset rows (re-iterated on each ``iter``).
        config: the model configuration.
        epoch: the epoch number.
        seed: defaults to ``recipe.seed``.
        recipe: the training recipe (sampling settings and seed).
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]],
        config,
        epoch: int,
        seed: Optional[int] = None,
        *,
        recipe,
        num_shards: int = 1,
        shard_index: int = 0,
    ):
        if num_shards < 1 or not 0 <= shard_index < num_shards:
            raise ValueError(f"invalid sharding: shard_index={shard_index}, num_shards={num_shards}")
        self.rows = rows
        self.config = config
        self.recipe = recipe
        self.epoch = int(epoch)
        self.seed = _seed_of(recipe, seed)
        self.num_shards = int(num_shards)
        self.shard_index = int(shard_index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        counter = 0
        for row in self.rows:
            for gi, group in enumerate(_groups_of_row(row, self.config, self.recipe, self.epoch, self.seed)):
                if counter % self.num_shards == self.shard_index:
                    yield prepare_training_sample(row, group, self.config, self.epoch, self.seed, recipe=self.recipe,
                                                  group_index=gi)
                counter += 1


# ----------------------------------------------------------------------------------------------------
# Evaluation samples
# ----------------------------------------------------------------------------------------------------
def prepare_eval_sample(row: Mapping[str, Any], config) -> Dict[str, Any]:
    """One evaluation sample: the whole video and every query, never truncated or cropped.

    Fixed-length presets are still resampled to ``fixed_length`` with the per-video stride (as SnAG
    evaluates). Returns ``video_id``, ``video_features`` ``(T, Dv)``, ``text_features`` (list of full
    ``(L_i, Dt)`` tensors), ``query_ids``, ``segments`` ``(n, 2)`` seconds, ``labels`` ``(n, 2)`` GT in grid
    units, ``mapping`` (its :meth:`~TimeMapping.grid_to_seconds` goes back to seconds) and ``duration``.
    """
    video_id = str(row["video_id"])
    queries = list(row["queries"])
    if not queries:
        raise ValueError(f"video {video_id!r}: no queries")
    mapping = mapping_for_row(row, config)
    feats = _subsampled_features(row, mapping)
    video = torch.from_numpy(np.ascontiguousarray(feats))
    if config.fixed_length is not None:
        video = resample_to_fixed_length(video, int(config.fixed_length))
        mapping = mapping.with_fixed_length(feats.shape[0], int(config.fixed_length))
    segs = _query_segments(queries, video_id)
    labels = np.asarray(mapping.seconds_to_grid(segs), dtype=np.float32).reshape(-1, 2)
    return {
        "video_id": video_id,
        "video_features": video.float(),
        "text_features": [_text_tensor(q, video_id, None) for q in queries],
        "query_ids": [str(q.get("query_id")) for q in queries],
        "segments": torch.from_numpy(segs.astype(np.float32)),
        "labels": torch.from_numpy(labels),
        "mapping": mapping,
        "crop_offset": 0,
        "duration": float(row["duration"]),
    }


# ----------------------------------------------------------------------------------------------------
# Collation
# ----------------------------------------------------------------------------------------------------
class GroundingCollator:
    """List of prepared samples → the model's batch dict (plus ``batch["meta"]``).

    Training (``training=True``): every video is zero-padded to ``max_video_length·video_input_stride``
    input steps (SnAG pads to the full training length, not the batch maximum); the batch carries
    ``labels``, ``contrastive_query_index`` (a **global** index into the batch's ``N`` queries) and
    ``contrastive_seeds``. Evaluation (``training=False``): videos are padded to the larger of the training
    length and the batch maximum rounded up to a multiple of ``pyramid_stride·video_input_stride``;
    no labels (the GT stays in ``meta``). Text is padded to the batch's longest query in both modes.

    ``batch["meta"]`` holds ``video_ids``, ``query_ids`` (flat, aligned with the ``N`` queries),
    ``mappings`` (per-video :meth:`TimeMapping.to_dict`), ``durations``, ``crop_offsets`` (first
    feature step of each crop, 0 when uncropped), ``segments`` (flat ``(N, 2)`` GT seconds) and
    ``num_features`` (valid input steps per video). The trainer must strip ``meta`` before the model call.
    """

    def __init__(self, config, training: bool = True):
        self.config = config
        self.training = bool(training)

    def _padded_length(self, lengths: Sequence[int]) -> int:
        full = int(self.config.max_video_length) * int(self.config.video_input_stride)
        longest = max(lengths)
        if self.training:
            if longest > full:
                raise ValueError(
                    f"a training video has {longest} input steps, more than max_video_length*video_input_stride = {full}; "
                    "prepare samples with prepare_training_sample (which crops)"
                )
            return full
        unit = int(self.config.pyramid_stride) * int(self.config.video_input_stride)
        return max(full, int(math.ceil(longest / unit)) * unit)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        if not samples:
            raise ValueError("GroundingCollator got an empty list of samples")
        b = len(samples)
        lengths = [int(s["video_features"].shape[0]) for s in samples]
        dims = {int(s["video_features"].shape[1]) for s in samples}
        if len(dims) != 1:
            raise ValueError(f"samples have different video feature dims {sorted(dims)}")
        t_in = self._padded_length(lengths)
        video = torch.zeros(b, t_in, dims.pop(), dtype=torch.float32)
        video_mask = torch.zeros(b, t_in, dtype=torch.bool)
        for i, s in enumerate(samples):
            video[i, : lengths[i]] = s["video_features"]
            video_mask[i, : lengths[i]] = True

        texts = [t for s in samples for t in s["text_features"]]
        counts = [len(s["text_features"]) for s in samples]
        if any(c == 0 for c in counts):
            raise ValueError("every sample needs at least one query")
        tdims = {int(t.shape[1]) for t in texts}
        if len(tdims) != 1:
            raise ValueError(f"queries have different text feature dims {sorted(tdims)}")
        max_len = max(int(t.shape[0]) for t in texts)
        if min(int(t.shape[0]) for t in texts) < 1:
            raise ValueError("a query has no text tokens")
        text = torch.zeros(len(texts), max_len, tdims.pop(), dtype=torch.float32)
        text_mask = torch.zeros(len(texts), max_len, dtype=torch.bool)
        for j, t in enumerate(texts):
            text[j, : t.shape[0]] = t
            text_mask[j, : t.shape[0]] = True
        query_video_index = torch.repeat_interleave(torch.arange(b, dtype=torch.long), torch.tensor(counts))

        batch: Dict[str, Any] = {
            "video_features": video,
            "video_mask": video_mask,
            "text_features": text,
            "text_mask": text_mask,
            "query_video_index": query_video_index,
        }
        if self.training:
            batch["labels"] = torch.cat([s["labels"].reshape(-1, 2).float() for s in samples], dim=0)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            batch["contrastive_query_index"] = torch.tensor(
                [int(starts[i]) + int(s["contrastive_query_index"]) for i, s in enumerate(samples)], dtype=torch.long
            )
            batch["contrastive_seeds"] = torch.tensor([int(s["contrastive_seed"]) for s in samples], dtype=torch.long)
        batch["meta"] = {
            "video_ids": [s["video_id"] for s in samples],
            "query_ids": [q for s in samples for q in s["query_ids"]],
            "mappings": [s["mapping"].to_dict() for s in samples],
            "durations": [float(s["duration"]) for s in samples],
            "crop_offsets": [int(s.get("crop_offset", 0)) for s in samples],
            "num_features": lengths,
            "segments": torch.cat([s["segments"].reshape(-1, 2) for s in samples], dim=0),
        }
        if not self.training:
            batch["meta"]["labels"] = torch.cat([s["labels"].reshape(-1, 2) for s in samples], dim=0)
        return batch
