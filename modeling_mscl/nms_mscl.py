# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Post-processing of grounding candidates: Gaussian Soft-NMS followed by segment voting.

This reproduces SnAG's inference post-processing (reference §5, steps 7-8) in vectorised torch:

1. **Gaussian Soft-NMS.** Repeatedly pick the remaining candidate with the highest score; multiply
   every other remaining score by ``exp(-IoU^2 / sigma)`` (``sigma`` used as-is, no factor 2) and
   drop the candidates whose score falls below ``min_score``. The first ``max_segments`` picks are kept.
   The IoU adds ``1e-6`` to both segment lengths: ``inter / ((len_a + 1e-6) + (len_b + 1e-6) - inter)``.
2. **Segment voting.** Each kept segment's boundaries become the mean of the boundaries of all
   *pre-NMS* candidates whose IoU with it is ``>= voting_threshold``, weighted by their *original*
   scores. This IoU has no ``1e-6``. The score stays the decayed Soft-NMS score.
3. Sort by score (descending, stable) and keep ``max_segments``.

Ties are broken exactly like the reference's C++ loop: the pick is the *first* maximum in the
reference's working order, where a pick swaps places with the current slot and a dropped candidate
is replaced by the last remaining one. The working order is emulated here with index tensors, so
tied scores resolve to the same segments as SnAG.

This file travels with checkpoints (``trust_remote_code``): it imports only torch, math and typing.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["soft_nms_with_voting", "segment_iou"]

# SnAG adds this to both lengths inside Soft-NMS (not inside voting).
_SOFT_NMS_LENGTH_EPS = 1e-6


def segment_iou(reference: torch.Tensor, candidates: torch.Tensor, length_eps: float = 0.0) -> torch.Tensor:
    """1-D IoU between one or more reference segments and candidate segments.

    Args:
        reference: ``(2,)`` or ``(M, 2)`` segments ``(start, end)``.
        candidates: ``(K, 2)`` segments.
        length_eps: added to each length before forming the union (SnAG's Soft-NMS uses ``1e-6``).

    Returns:
        ``(K,)`` for a single reference segment, else ``(M, K)``. A zero union gives ``nan`` (as the
        reference), callers decide what that means.
    """
    single = reference.dim() == 1
    ref = reference.reshape(-1, 2)
    left = torch.maximum(ref[:, None, 0], candidates[None, :, 0])
    right = torch.minimum(ref[:, None, 1], candidates[None, :, 1])
    inter = (right - left).clamp(min=0)
    len_ref = ref[:, 1] - ref[:, 0]
    len_cand = candidates[:, 1] - candidates[:, 0]
    if length_eps:
        len_ref = len_ref + length_eps
        len_cand = len_cand + length_eps
    # Same operation order as the reference: (len_a + len_b) - inter.
    iou = inter / (len_ref[:, None] + len_cand[None, :] - inter)
    return iou[0] if single else iou


def _validate(segments: torch.Tensor, scores: torch.Tensor, sigma: float, min_score: float, max_segments: int) -> None:
    if not isinstance(segments, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise ValueError("soft_nms_with_voting expects torch tensors for segments and scores")
    if segments.dim() != 2 or segments.shape[-1] != 2:
        raise ValueError(f"segments must have shape (K, 2), got {tuple(segments.shape)}")
    if scores.dim() != 1 or scores.shape[0] != segments.shape[0]:
        raise ValueError(
            f"scores must have shape (K,) matching segments (K={segments.shape[0]}), got {tuple(scores.shape)}"
        )
    if not (torch.isfinite(segments).all() and torch.isfinite(scores).all()):
        raise ValueError("segments and scores must be finite (found nan or inf)")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    if int(max_segments) != max_segments or max_segments < 1:
        raise ValueError(f"max_segments must be a positive integer, got {max_segments!r}")
    if not math.isfinite(min_score):
        raise ValueError(f"min_score must be finite, got {min_score!r}")


def _gaussian_soft_nms(
    segments: torch.Tensor, scores: torch.Tensor, sigma: float, min_score: float, max_segments: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices (into ``segments``) and decayed scores of the first ``max_segments`` Soft-NMS picks."""
    # Working order of the not-yet-picked candidates, as in the reference's arrays after slot i.
    order = torch.arange(segments.shape[0], device=segments.device)
    current = scores.clone()
    lengths = segments[:, 1] - segments[:, 0] + _SOFT_NMS_LENGTH_EPS
    picked_idx, picked_score = [], []
    while order.numel() > 0 and len(picked_idx) < max_segments:
        # torch.argmax returns the first maximum, like the reference's strict '<' scan.
        pos = int(torch.argmax(current))
        best, best_score = int(order[pos]), current[pos].clone()
        picked_idx.append(best)
        picked_score.append(best_score)
        # The reference swaps the pick with the slot's occupant: that occupant moves to `pos`.
        if pos != 0:
            order, current = order.clone(), current.clone()
            order[pos], current[pos] = order[0].clone(), current[0].clone()
        order, current = order[1:], current[1:]
        if order.numel() == 0:
            break
        seg = segments[best]
        left = torch.maximum(seg[0], segments[order, 0])
        right = torch.minimum(seg[1], segments[order, 1])
        inter = (right - left).clamp(min=0)
        iou = inter / (lengths[best] + lengths[order] - inter)
        current = current * torch.exp(-(iou * iou) / sigma)
        keep = current >= min_score
        num_keep = int(keep.sum())
        if num_keep < order.numel():
            # The reference fills each dropped slot (left to right) with the last surviving candidate
            # from the tail: survivors before `num_keep` stay, tail survivors fill the holes in reverse.
            holes = torch.nonzero(~keep[:num_keep]).flatten()
            donors = (torch.nonzero(keep[num_keep:]).flatten() + num_keep).flip(0)
            new_order, new_current = order[:num_keep].clone(), current[:num_keep].clone()
            new_order[holes], new_current[holes] = order[donors], current[donors]
            order, current = new_order, new_current
    index = torch.tensor(picked_idx, dtype=torch.long, device=segments.device)
    return index, torch.stack(picked_score)


def _segment_voting(
    kept: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor, voting_threshold: float
) -> torch.Tensor:
    """Score-weighted mean of the candidates with ``IoU >= voting_threshold`` to each kept segment."""
    iou = segment_iou(kept, candidates)  # (M, K); no length eps here, as the reference
    neighbour = (iou >= voting_threshold).to(weights.dtype) * weights[None, :]
    total = neighbour.sum(dim=1, keepdim=True)
    refined = (neighbour / total) @ candidates
    # A kept segment with no weighted neighbour (zero length, or all neighbour scores 0) would be
    # 0/0 = nan in the reference; keep its own boundaries instead.
    return torch.where(total > 0, refined, kept)


def soft_nms_with_voting(
    segments: torch.Tensor,
    scores: torch.Tensor,
    *,
    sigma: float = 0.9,
    min_score: float = 1e-3,
    max_segments: int = 5,
    voting_threshold: float = 0.95,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """SnAG's Gaussian Soft-NMS followed by segment voting, for the candidates of one query.

    Args:
        segments: ``(K, 2)`` candidate ``(start, end)`` segments (any unit; SnAG uses level-0 grid units).
        scores: ``(K,)`` candidate scores (SnAG: sigmoid probabilities, already top-k filtered).
        sigma: Gaussian decay ``exp(-IoU^2 / sigma)``; SnAG uses 0.9, with no factor 2.
        min_score: a candidate whose decayed score drops below this is discarded.
        max_segments: number of segments returned at most (SnAG: 5; MAD 50).
        voting_threshold: IoU at or above which a pre-NMS candidate votes for a kept segment's
            boundaries; ``<= 0`` disables voting (as in the reference).

    Returns:
        ``(segments (M, 2), scores (M,))`` with ``M <= max_segments``, sorted by score (descending).
        Computed in float64 on the input's device and returned in float32 (Soft-NMS itself is a
        short loop over the M picks, so the precision costs nothing measurable). Why float64: on
        absolute grid coordinates one float32 ulp near t = 1,200 is 1.2e-4 grid units, so a 1-ulp
        boundary difference (e.g. from GEMMs blocked differently at another batch size) would move
        the Gaussian-decayed score of a short segment by up to ~1e-4; in float64 the result depends
        on the inputs' own differences only.
        Empty input gives empty outputs. As in the reference, the first pick is kept even if its score
        is below ``min_score`` (only decayed scores are tested); SnAG pre-filters scores at 1e-3 anyway.

    Raises:
        ValueError: on wrong shapes, non-finite values or invalid settings.
    """
    _validate(segments, scores, sigma, min_score, max_segments)
    segments = segments.detach().to(torch.float64)
    scores = scores.detach().to(torch.float64)
    if segments.shape[0] == 0:
        return segments.new_zeros((0, 2), dtype=torch.float32), scores.new_zeros((0,), dtype=torch.float32)
    index, nms_scores = _gaussian_soft_nms(segments, scores, float(sigma), float(min_score), int(max_segments))
    nms_segments = segments[index]
    if voting_threshold > 0:
        nms_segments = _segment_voting(nms_segments, segments, scores, float(voting_threshold))
    # Soft-NMS picks are already non-increasing; a stable sort keeps the pick order on ties.
    order = torch.sort(nms_scores, descending=True, stable=True).indices[:max_segments]
    return nms_segments[order].to(torch.float32), nms_scores[order].to(torch.float32)
