# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Time mapping between seconds, feature indices and the model grid, and fixed-length resampling.

These are the only conversions the package uses; the data pipeline, evaluation, ``ground`` and the
pipeline all call them, so a moment survives seconds -> grid -> seconds exactly (the map is affine).

Conventions (SnAG §7.3 / §5.9):

* Feature ``i`` is centred on frame ``i * stride_eff + clip_size / 2``, where
  ``stride_eff = clip_stride * downsample_rate`` frames (for fixed-length datasets the per-video
  resampled stride, see :func:`resample_to_fixed_length`).
* ``feature_index = clip(t * fps, 0, num_frames) / stride_eff - 0.5 * clip_size / stride_eff``.
* ``grid = feature_index / input_stride`` (the model's level-0 grid; ``input_stride`` is 2 for MAD).
* The inverse is ``t = clamp((grid * input_stride * stride_eff + 0.5 * clip_size) / fps, 0, duration)``.

This file travels with checkpoints (``trust_remote_code``), so it imports nothing from the package.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

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


def segments_seconds_to_grid(segments: torch.Tensor, mapping: TimeMapping) -> torch.Tensor:
    """``(..., 2)`` segments in seconds -> model grid units."""
    return mapping.seconds_to_grid(segments)


def segments_grid_to_seconds(segments: torch.Tensor, mapping: TimeMapping) -> torch.Tensor:
    """``(..., 2)`` segments in grid units -> seconds, clamped to ``[0, duration]``."""
    return mapping.grid_to_seconds(segments)


__all__ = [
    "TimeMapping",
    "fixed_length_clip_size",
    "resample_to_fixed_length",
    "segments_grid_to_seconds",
    "segments_seconds_to_grid",
]
