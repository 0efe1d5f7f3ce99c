# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Everything between the model's tensors and the user's world: time mapping, input checks, post-processing.

* **Time mapping** (:class:`TimeMapping`) between seconds, feature indices and the model grid, and the
  fixed-length resampling of Charades / ANet. These are the only conversions the package uses (the data
  pipeline, :func:`post_process_grounding`, hence ``ground``, evaluation and the pipeline), so a moment
  survives seconds -> grid -> seconds exactly (the map is affine).
* **Input checks** (:func:`validate_grounding_batch`, :func:`validate_video_features`,
  :func:`validate_query_features`, :func:`as_feature_tensor`): one definition of what valid video / text
  features are, shared by ``MSCLForTemporalGrounding.forward`` and ``ground``, the pipeline and the
  training collator, so every entry point rejects bad input with the same message.
* **Post-processing** (:func:`post_process_grounding`): per-level head outputs -> top-k candidates ->
  Soft-NMS + voting (:mod:`.nms_mscl`) -> ``(start, end, score)`` moments on the grid or in seconds. The
  only decoder of the package: ``ground`` (hence evaluation and the pipeline) calls it.

Time-mapping conventions (SnAG §7.3 / §5.9):

* Feature ``i`` is centred on frame ``i * stride_eff + clip_size / 2``, where
  ``stride_eff = clip_stride * downsample_rate`` frames (for fixed-length datasets the per-video
  resampled stride, see :func:`resample_to_fixed_length`).
* ``feature_index = clip(t * fps, 0, num_frames) / stride_eff - 0.5 * clip_size / stride_eff``.
* ``grid = feature_index / input_stride`` (the model's level-0 grid; ``input_stride`` is 2 for MAD).
* The inverse is ``t = clamp((grid * input_stride * stride_eff + 0.5 * clip_size) / fps, 0, duration)``.

This file travels with checkpoints (``trust_remote_code``): it imports only its flat sibling
:mod:`.nms_mscl`, relatively.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .nms_mscl import batched_soft_nms_with_voting

ArrayLike = Union[float, np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class TimeMapping:
    """How one video's feature sequence maps onto time.

    Args:
        fps: frames per second of the source video.
        clip_size: frames covered by one feature vector (after any fixed-length resampling).
        clip_stride: frames between consecutive feature vectors, *before* ``downsample_rate``.
        downsample_rate: keep every k-th feature (``features[::k]``), as SnAG does for TACoS/EgoVLP.
        input_stride: the model's input stride (2 for MAD: two input features per grid step).
        duration: video length in seconds; predictions are clamped to ``[0, duration]``.
    """

    fps: float
    clip_size: float
    clip_stride: float
    downsample_rate: int = 1
    input_stride: int = 1
    duration: Optional[float] = None

    def __post_init__(self):
        for name in ("fps", "clip_size", "clip_stride"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TimeMapping.{name} must be a positive finite number, got {value!r}")
        if int(self.downsample_rate) != self.downsample_rate or self.downsample_rate < 1:
            raise ValueError(f"TimeMapping.downsample_rate must be a positive integer, got {self.downsample_rate!r}")
        if self.input_stride not in (1, 2, 4, 8):
            raise ValueError(f"TimeMapping.input_stride must be 1, 2, 4 or 8, got {self.input_stride!r}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"TimeMapping.duration must be positive, got {self.duration!r}")

    @property
    def stride_eff(self) -> float:
        """Frames between consecutive features after temporal subsampling."""
        return float(self.clip_stride) * int(self.downsample_rate)

    @property
    def num_frames(self) -> Optional[float]:
        return None if self.duration is None else self.duration * self.fps

    def to_dict(self) -> dict:
        return asdict(self)

    # seconds <-> feature index ---------------------------------------------------------------
    def seconds_to_feature_index(self, t: ArrayLike) -> ArrayLike:
        frames = t * self.fps
        if self.num_frames is not None:
            frames = _clip(frames, 0.0, self.num_frames)
        return frames / self.stride_eff - 0.5 * self.clip_size / self.stride_eff

    def feature_index_to_seconds(self, idx: ArrayLike, clamp: bool = True) -> ArrayLike:
        t = (idx * self.stride_eff + 0.5 * self.clip_size) / self.fps
        if clamp:
            t = _clip(t, 0.0, self.duration if self.duration is not None else math.inf)
        return t

    # seconds <-> model grid -------------------------------------------------------------------
    def seconds_to_grid(self, t: ArrayLike) -> ArrayLike:
        return self.seconds_to_feature_index(t) / self.input_stride

    def grid_to_seconds(self, grid: ArrayLike, clamp: bool = True) -> ArrayLike:
        return self.feature_index_to_seconds(grid * self.input_stride, clamp=clamp)

    def with_fixed_length(self, num_features: int, fixed_length: int) -> "TimeMapping":
        """The mapping after :func:`resample_to_fixed_length` of ``num_features`` features."""
        size = fixed_length_clip_size(num_features, fixed_length, self.stride_eff, self.clip_size)
        return TimeMapping(
            fps=self.fps, clip_size=size, clip_stride=size, downsample_rate=1,
            input_stride=self.input_stride, duration=self.duration,
        )


def _clip(x: ArrayLike, lo: float, hi: float) -> ArrayLike:
    if isinstance(x, torch.Tensor):
        return x.clamp(lo, hi)
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(x, lo), hi)


def fixed_length_clip_size(num_features: int, fixed_length: int, stride_eff: float, clip_size: float) -> float:
    """Frames spanned by one step after resampling ``num_features`` steps to ``fixed_length`` (SnAG §4.1)."""
    return ((num_features - 1) * stride_eff + clip_size) / fixed_length


def resample_to_fixed_length(features: torch.Tensor, fixed_length: int) -> torch.Tensor:
    """Resample ``(T, D)`` features to ``(fixed_length, D)`` as SnAG does for Charades / ANet.

    Linear interpolation to ``fixed_length * ceil(T / fixed_length)`` steps, then average pooling with
    kernel ``ceil(T / fixed_length)``. Short videos are therefore stretched, long ones averaged.
    """
    if features.ndim != 2:
        raise ValueError(f"expected (T, D) features, got shape {tuple(features.shape)}")
    t = features.shape[0]
    if t < 1:
        raise ValueError("cannot resample an empty feature sequence")
    factor = max(1, math.ceil(t / fixed_length))
    x = features.t().unsqueeze(0).float()  # (1, D, T)
    x = F.interpolate(x, size=fixed_length * factor, mode="linear", align_corners=False)
    if factor > 1:
        x = F.avg_pool1d(x, kernel_size=factor, stride=factor)
    return x.squeeze(0).t().contiguous().to(features.dtype)


# ----------------------------------------------------------------------------------------------------
# Input checks (forward, ground, the pipeline and the training collator)
# ----------------------------------------------------------------------------------------------------
def as_feature_tensor(x: Any, what: str, *, device=None, source: str = "") -> torch.Tensor:
    """A float32 tensor of the features ``x`` (tensor, NumPy array or nested lists), on ``device`` when given.

    ``what`` names the input in the error (e.g. ``"video features"``), ``source`` is appended to it
    (e.g. the file it came from).
    """
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a numeric array ({exc}){source}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}{source}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def _dimension_error(kind: str, got: int, expected: int) -> str:
    return f"{kind} feature dimension is {got} but the model expects {kind}_input_dim={expected}"


def _all_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def validate_video_features(video: torch.Tensor, config, *, source: str = "") -> None:
    """One whole video's features ``(T, video_input_dim)``: not empty, 2-D, the model's width, finite."""
    dim = config.video_input_dim
    if video.numel() == 0:
        raise ValueError(f"video features are empty (shape {tuple(video.shape)}){source}")
    if video.ndim != 2:
        raise ValueError(
            f"video features must be a 2-D (T, {dim}) array (time-major), got shape {tuple(video.shape)}{source}"
        )
    if video.shape[1] != dim:
        raise ValueError(_dimension_error("video", video.shape[1], dim) + source)
    if not _all_finite(video):
        raise ValueError(f"video features contain NaN or inf{source}")


def validate_query_features(query: torch.Tensor, config, index: int) -> None:
    """Token features ``(L, text_input_dim)`` of query ``index``: 2-D, at least one token, the model's
    width, finite."""
    dim = config.text_input_dim
    if query.ndim != 2:
        raise ValueError(f"query {index}: token features must be a 2-D (L, {dim}) array, got shape {tuple(query.shape)}")
    if query.shape[0] == 0:
        raise ValueError(f"query {index} is empty (zero tokens)")
    if query.shape[1] != dim:
        raise ValueError(f"query {index}: " + _dimension_error("text", query.shape[1], dim))
    if not _all_finite(query):
        raise ValueError(f"query {index}: token features contain NaN or inf")


def validate_grounding_batch(
    config,
    video_features: torch.Tensor,
    video_mask: torch.Tensor,
    text_features: torch.Tensor,
    text_mask: torch.Tensor,
    query_video_index: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
) -> None:
    """A padded video-centric batch, as ``forward`` takes it and the collator makes it.

    ``video_features (B, T, Dv)``, ``video_mask (B, T)`` bool, ``text_features (N, L, Dt)``,
    ``text_mask (N, L)`` bool, ``query_video_index (N,)``, ``labels (N, 2)`` on the model grid (optional).
    Raises ``ValueError`` naming the problem: wrong rank or width, mask shapes, no query, an empty video or
    query, NaN/inf, a query pointing at a missing video, NaN or inverted labels.
    """
    cfg = config
    if video_features.ndim != 3:
        raise ValueError(f"video_features must be (B, T, {cfg.video_input_dim}), got shape {tuple(video_features.shape)}")
    if video_features.shape[-1] != cfg.video_input_dim:
        raise ValueError(_dimension_error("video", video_features.shape[-1], cfg.video_input_dim))
    if video_features.shape[1] == 0:
        raise ValueError("video_features has zero time steps")
    if text_features.ndim != 3:
        raise ValueError(f"text_features must be (N, L, {cfg.text_input_dim}), got shape {tuple(text_features.shape)}")
    if text_features.shape[-1] != cfg.text_input_dim:
        raise ValueError(_dimension_error("text", text_features.shape[-1], cfg.text_input_dim))
    if video_mask.shape != video_features.shape[:2]:
        raise ValueError(f"video_mask shape {tuple(video_mask.shape)} != video_features (B, T) {tuple(video_features.shape[:2])}")
    if text_mask.shape != text_features.shape[:2]:
        raise ValueError(f"text_mask shape {tuple(text_mask.shape)} != text_features (N, L) {tuple(text_features.shape[:2])}")
    if text_features.shape[0] == 0:
        raise ValueError("the batch holds no text query")
    if not bool(video_mask.any(dim=1).all()):
        raise ValueError("a video in the batch has no valid time step (empty video_mask row)")
    if not bool(text_mask.any(dim=1).all()):
        raise ValueError("a text query in the batch is empty (no valid token in text_mask)")
    if not _all_finite(video_features):
        raise ValueError("video_features contain NaN or inf")
    if not _all_finite(text_features):
        raise ValueError("text_features contain NaN or inf")
    if query_video_index.shape != (text_features.shape[0],):
        raise ValueError(
            f"query_video_index must have one entry per query ({text_features.shape[0]}), got shape "
            f"{tuple(query_video_index.shape)}"
        )
    bad = (query_video_index < 0) | (query_video_index >= video_features.shape[0])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"query {i} points at video {int(query_video_index[i])}, but the batch has "
            f"{video_features.shape[0]} video(s)"
        )
    if labels is not None:
        if labels.shape != (text_features.shape[0], 2):
            raise ValueError(f"labels must be (N, 2) segments, got shape {tuple(labels.shape)}")
        if not _all_finite(labels):
            raise ValueError("labels contain NaN or inf")
        inverted = labels[:, 0] >= labels[:, 1]
        if bool(inverted.any()):
            i = int(inverted.nonzero()[0, 0])
            raise ValueError(
                f"label of query {i} has start >= end ({float(labels[i, 0])} >= {float(labels[i, 1])})"
            )


# ----------------------------------------------------------------------------------------------------
# Post-processing: head outputs -> moments
# ----------------------------------------------------------------------------------------------------
def post_process_grounding(
    outputs,
    config,
    *,
    max_segments: Optional[int] = None,
    pre_nms_threshold: Optional[float] = None,
    time_mappings: Optional[Union[TimeMapping, Sequence[TimeMapping]]] = None,
) -> List[torch.Tensor]:
    """Per-level head outputs of ``N`` queries -> each query's moments (SnAG §5 steps 4–8).

    Steps: scores ``sigmoid(logit)`` at valid points; candidates above ``pre_nms_threshold``, at most
    ``pre_nms_topk`` per query; segments ``(p − d_s·stride_l, p + d_e·stride_l)`` around each point
    ``p = i·stride_l`` (strides from ``config.level_strides``); segments no longer than
    ``min_segment_length`` dropped; Gaussian Soft-NMS + voting keeping ``max_segments``, all queries at once
    (:func:`~.nms_mscl.batched_soft_nms_with_voting`: per query, :func:`~.nms_mscl.soft_nms_with_voting`);
    optionally grid -> seconds.

    Args:
        outputs: an ``MSCLOutput`` (anything with ``logits``, ``offsets`` and ``masks``) or a
            ``(logits, offsets, masks)`` triple: per level ``(N, T_l)``, ``(N, T_l, 2)``, ``(N, T_l)``.
        config: the model's :class:`MSCLConfig` (decoding settings and level strides).
        max_segments / pre_nms_threshold: override ``config.max_segments`` / ``config.pre_nms_threshold``.
        time_mappings: ``None`` for moments on the model grid; a :class:`TimeMapping` (every query of one
            video) or one per query for moments in seconds, clamped to ``[0, duration]``.

    Returns:
        ``N`` CPU tensors ``(K, 3)`` of ``(start, end, score)``, sorted by decreasing score (``K <=
        max_segments``): float32 on the grid, float64 in seconds. Boundaries are computed in float64
        (a float32 ulp at t ≈ 1,200 is 1.2e-4 grid units, enough to make the moments depend on the batch
        size; see :func:`~.nms_mscl.soft_nms_with_voting`); the top-k selection stays float32.
    """
    if hasattr(outputs, "logits"):
        logits, offsets, masks = outputs.logits, outputs.offsets, outputs.masks
    else:
        logits, offsets, masks = outputs
    if logits is None or offsets is None or masks is None:
        raise ValueError("post_process_grounding needs the logits, offsets and masks of every level")
    num_queries = logits[0].shape[0]
    # duck-typed: with trust_remote_code the pipeline's and the model's copies of this module can be two
    # different modules, hence two TimeMapping classes
    if time_mappings is None or hasattr(time_mappings, "grid_to_seconds"):
        mappings = [time_mappings] * num_queries
    else:
        mappings = list(time_mappings)
        if len(mappings) != num_queries:
            raise ValueError(f"time_mappings must hold one mapping per query ({num_queries}), got {len(mappings)}")
    cfg = config
    threshold = cfg.pre_nms_threshold if pre_nms_threshold is None else pre_nms_threshold
    keep_segments = cfg.max_segments if max_segments is None else max_segments
    strides = cfg.level_strides
    if len(logits) > len(strides):
        raise ValueError(f"got head outputs of {len(logits)} levels, the config has {len(strides)}")
    scores = torch.cat([torch.sigmoid(x.float()) * m.float() for x, m in zip(logits, masks)], dim=1)  # (N, ΣT)
    offs = torch.cat([o.float() for o in offsets], dim=1)  # (N, ΣT, 2)
    device = scores.device
    points = torch.cat([torch.arange(x.shape[1], device=device, dtype=torch.float64) * s for x, s in zip(logits, strides)])
    point_strides = torch.cat([torch.full((x.shape[1],), float(s), device=device, dtype=torch.float64) for x, s in zip(logits, strides)])
    k = min(cfg.pre_nms_topk, scores.shape[1])
    # points at or below the threshold never enter the top-k
    ranked = scores.masked_fill(scores <= threshold, -1.0)
    top_scores, top_idx = ranked.topk(k, dim=1)
    # every query's candidates at once (top-k order; Soft-NMS breaks ties by it): segments in float64
    p, s = points[top_idx], point_strides[top_idx]  # (N, k)
    o = offs.gather(1, top_idx[..., None].expand(-1, -1, 2)).double()  # (N, k, 2)
    seg = torch.stack((p - o[..., 0] * s, p + o[..., 1] * s), dim=2)
    keep = (top_scores > threshold) & ((seg[..., 1] - seg[..., 0]) > cfg.min_segment_length)
    # each query's kept candidates first, in their order (stable), the rest padding
    first = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    seg = seg.gather(1, first[..., None].expand(-1, -1, 2))
    moments = batched_soft_nms_with_voting(
        seg, top_scores.gather(1, first), keep.sum(dim=1),
        sigma=cfg.nms_sigma, min_score=cfg.nms_min_score, max_segments=keep_segments,
        voting_threshold=cfg.voting_threshold,
    )
    if not moments:
        return []
    # the chunk's segments and scores reach the host in one copy each (copies per query would be two host
    # syncs per query on a GPU)
    counts = [len(sc) for _, sc in moments]
    segs = torch.cat([seg for seg, _ in moments]).cpu().split(counts)
    scs = torch.cat([sc for _, sc in moments]).cpu().split(counts)
    out = []
    for seg, sc, mapping in zip(segs, scs, mappings):
        if mapping is not None:
            seg, sc = mapping.grid_to_seconds(seg.double()), sc.double()
        out.append(torch.cat((seg, sc[:, None]), dim=1))
    return out


__all__ = [
    "TimeMapping",
    "as_feature_tensor",
    "fixed_length_clip_size",
    "post_process_grounding",
    "resample_to_fixed_length",
    "validate_grounding_batch",
    "validate_query_features",
    "validate_video_features",
]
