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

:func:`batched_soft_nms_with_voting` runs the loop for many queries at once (one row of index and score
tensors per query, every row exactly as if alone); :func:`soft_nms_with_voting` is its one-query case.

This file travels with checkpoints (``trust_remote_code``): it imports only torch, math and typing.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

__all__ = ["batched_soft_nms_with_voting", "soft_nms_with_voting", "segment_iou"]

# SnAG adds this to both lengths inside Soft-NMS (not inside voting).
_SOFT_NMS_LENGTH_EPS = 1e-6


def segment_iou(reference: torch.Tensor, candidates: torch.Tensor, length_eps: float = 0.0) -> torch.Tensor:
    """1-D IoU between one or more reference segments and candidate segments.

    Args:
        reference: ``(2,)`` or ``(..., M, 2)`` segments ``(start, end)``.
        candidates: ``(..., K, 2)`` segments (leading dimensions broadcast with the reference's: a batch of
            queries, each with its own references and candidates).
        length_eps: added to each length before forming the union (SnAG's Soft-NMS uses ``1e-6``).

    Returns:
        ``(K,)`` for a single reference segment, else ``(..., M, K)``. A zero union gives ``nan`` (as the
        reference), callers decide what that means.
    """
    single = reference.dim() == 1
    ref = reference.reshape(1, 2) if single else reference
    left = torch.maximum(ref[..., :, None, 0], candidates[..., None, :, 0])
    right = torch.minimum(ref[..., :, None, 1], candidates[..., None, :, 1])
    inter = (right - left).clamp(min=0)
    len_ref = ref[..., 1] - ref[..., 0]
    len_cand = candidates[..., 1] - candidates[..., 0]
    if length_eps:
        len_ref = len_ref + length_eps
        len_cand = len_cand + length_eps
    # Same operation order as the reference: (len_a + len_b) - inter.
    iou = inter / (len_ref[..., :, None] + len_cand[..., None, :] - inter)
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


def _host_reads_are_cheap(device: torch.device) -> bool:
    return device.type == "cpu"


def _fill_holes(order: torch.Tensor, current: torch.Tensor, holes: torch.Tensor, donors: torch.Tensor):
    """Move the ``j``-th donor of each row (counted from the end) into its ``j``-th hole (counted from the
    start): ``order``, ``current (N, W)``; ``holes``, ``donors (N, W)`` bool, as many of each per row. Dense
    scatters, no ``nonzero`` (whose size the host would have to read); entries that are not holes or donors
    go to a spare column that is dropped."""
    n, w = order.shape
    hole_rank = holes.cumsum(dim=1) - 1
    donor_rank = donors.flip(1).cumsum(dim=1).flip(1) - 1
    positions = torch.arange(w, device=order.device).expand(n, w)
    hole_at = order.new_zeros(n, w + 1).scatter_(1, torch.where(holes, hole_rank, w), positions)  # rank -> position
    target = torch.where(donors, hole_at.gather(1, donor_rank.clamp(min=0)), w)
    order = torch.cat((order, order[:, :1]), dim=1).scatter_(1, target, order)[:, :w]
    current = torch.cat((current, current[:, :1]), dim=1).scatter_(1, target, current)[:, :w]
    return order, current


def _gaussian_soft_nms(
    segments: torch.Tensor, scores: torch.Tensor, counts: torch.Tensor, sigma: float, min_score: float, max_segments: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS picks of ``N`` candidate lists at once, each run exactly as the reference's loop.

    Args:
        segments: ``(N, K, 2)``, scores ``(N, K)``: row ``q``'s candidates are its first ``counts[q]``
            entries, in the reference's input order (the rest is padding, never read as a candidate).

    Returns:
        ``(index (N, P), score (N, P))``: each row's picks in pick order (``P <= max_segments``), as indices
        into the row's candidates and decayed scores; ``-1`` / ``0`` where a row ran out of candidates.
    """
    n, k = scores.shape
    row = torch.arange(n, device=scores.device)
    # Working order of the not-yet-picked candidates (position -> candidate), as in the reference's arrays
    # after slot i: row q's valid positions are [0, remaining[q]); the arrays lose one column per pick.
    order = torch.arange(k, device=scores.device).expand(n, k).clone()
    current = scores.clone()
    remaining = counts.clone()
    lengths = segments[..., 1] - segments[..., 0] + _SOFT_NMS_LENGTH_EPS  # (N, K)
    picked_idx, picked_score = [], []
    # Where reading a value is cheap (CPUs) the loop stops when every row is done and refills only when a
    # hole has a donor; elsewhere (GPUs, where each read waits for every queued kernel) it runs all its steps
    # and refills unconditionally: a done row's later picks are -1 and an empty refill moves nothing.
    reads = _host_reads_are_cheap(scores.device)
    while len(picked_idx) < max_segments and order.shape[1] > 0 and (not reads or bool((remaining > 0).any())):
        active = remaining > 0
        valid = torch.arange(order.shape[1], device=scores.device) < remaining[:, None]
        # torch.argmax returns the first maximum, like the reference's strict '<' scan; scores are finite
        pos = current.masked_fill(~valid, -math.inf).argmax(dim=1)  # (N,)
        best, best_score = order[row, pos], current[row, pos]
        picked_idx.append(torch.where(active, best, -1))
        picked_score.append(torch.where(active, best_score, 0.0))
        # The reference swaps the pick with the slot's occupant: that occupant moves to `pos`.
        order[row, pos], current[row, pos] = order[:, 0].clone(), current[:, 0].clone()
        order, current = order[:, 1:], current[:, 1:]
        remaining = (remaining - 1).clamp(min=0)
        valid = valid[:, 1:]  # position p + 1 < the old count  <=>  p < the new one
        seg = segments[row, best]  # (N, 2)
        left = torch.maximum(seg[:, None, 0], segments[..., 0].gather(1, order))
        right = torch.minimum(seg[:, None, 1], segments[..., 1].gather(1, order))
        inter = (right - left).clamp(min=0)
        iou = inter / (lengths[row, best][:, None] + lengths.gather(1, order) - inter)
        current = current * torch.exp(-(iou * iou) / sigma)
        keep = (current >= min_score) & valid
        num_keep = keep.sum(dim=1)
        # The reference fills each dropped slot (left to right) with the last surviving candidate from the
        # tail: survivors before `num_keep` stay, the j-th hole takes the j-th tail survivor from the end.
        head = torch.arange(order.shape[1], device=scores.device) < num_keep[:, None]
        holes, donors = head & ~keep, ~head & keep
        if not reads or bool(donors.any()):
            order, current = _fill_holes(order, current, holes, donors)
        remaining = num_keep
    if not picked_idx:
        empty = scores.new_zeros((n, 0))
        return empty.long(), empty
    return torch.stack(picked_idx, dim=1), torch.stack(picked_score, dim=1)


def _segment_voting(
    kept: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor, voting_threshold: float
) -> torch.Tensor:
    """Score-weighted mean of the candidates with ``IoU >= voting_threshold`` to each kept segment:
    ``kept (N, P, 2)``, ``candidates (N, K, 2)``, ``weights (N, K)`` (0 for padding) -> ``(N, P, 2)``."""
    iou = segment_iou(kept, candidates)  # (N, P, K); no length eps here, as the reference
    neighbour = (iou >= voting_threshold).to(weights.dtype) * weights[:, None, :]
    total = neighbour.sum(dim=2, keepdim=True)
    refined = torch.bmm(neighbour / total, candidates)
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
    return batched_soft_nms_with_voting(
        segments[None], scores[None], sigma=sigma, min_score=min_score, max_segments=max_segments,
        voting_threshold=voting_threshold,
    )[0]


# voting compares every kept segment with every candidate: (rows, P, K) float64 temporaries per chunk of rows
_VOTING_CHUNK_ELEMENTS = 1 << 22


def batched_soft_nms_with_voting(
    segments: torch.Tensor,
    scores: torch.Tensor,
    num_candidates: Optional[torch.Tensor] = None,
    *,
    sigma: float = 0.9,
    min_score: float = 1e-3,
    max_segments: int = 5,
    voting_threshold: float = 0.95,
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """:func:`soft_nms_with_voting` of ``N`` queries at once: the same picks, ties and voting, row by row.

    The Soft-NMS loop runs once over all rows (at most ``max_segments`` steps of a few tensor ops each)
    instead of once per query, which is what makes decoding cheap for many queries per video.

    Args:
        segments: ``(N, K, 2)`` candidate segments of ``N`` queries.
        scores: ``(N, K)`` their scores.
        num_candidates: ``(N,)`` row ``q``'s candidates are its first ``num_candidates[q]`` entries, in
            order (the rest is padding and never read); default: all ``K``.
        sigma / min_score / max_segments / voting_threshold: as in :func:`soft_nms_with_voting`.

    Returns:
        ``N`` pairs ``(segments (M_q, 2), scores (M_q,))``, float32, each equal to
        ``soft_nms_with_voting(segments[q, :n_q], scores[q, :n_q])``.

    Raises:
        ValueError: on wrong shapes, counts out of range, non-finite candidates or invalid settings.
    """
    if not isinstance(segments, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise ValueError("batched_soft_nms_with_voting expects torch tensors for segments and scores")
    if segments.dim() != 3 or segments.shape[-1] != 2 or scores.shape != segments.shape[:2]:
        raise ValueError(
            f"expected segments (N, K, 2) and scores (N, K), got {tuple(segments.shape)} and {tuple(scores.shape)}"
        )
    n, k = scores.shape
    if num_candidates is None:
        num_candidates = torch.full((n,), k, dtype=torch.long, device=scores.device)
    num_candidates = torch.as_tensor(num_candidates, device=scores.device).long()
    if num_candidates.shape != (n,) or bool((num_candidates < 0).any()) or bool((num_candidates > k).any()):
        raise ValueError(f"num_candidates must hold one count in [0, {k}] per row ({n} rows)")
    valid = torch.arange(k, device=scores.device) < num_candidates[:, None]
    segments = torch.where(valid[..., None], segments.detach().to(torch.float64), 0.0)
    scores = torch.where(valid, scores.detach().to(torch.float64), 0.0)
    # padding is zero, so one check covers the candidates of every row
    _validate(segments.reshape(-1, 2), scores.reshape(-1), sigma, min_score, max_segments)
    if n == 0 or k == 0:
        return [(segments.new_zeros((0, 2), dtype=torch.float32), scores.new_zeros((0,), dtype=torch.float32))] * n
    index, nms_scores = _gaussian_soft_nms(segments, scores, num_candidates, float(sigma), float(min_score),
                                           int(max_segments))
    picked = index >= 0  # (N, P): a prefix of each row
    nms_segments = segments.gather(1, index.clamp(min=0)[..., None].expand(-1, -1, 2))  # (N, P, 2)
    if voting_threshold > 0 and index.shape[1] > 0:
        rows = max(1, _VOTING_CHUNK_ELEMENTS // (index.shape[1] * k))
        nms_segments = torch.cat([
            _segment_voting(nms_segments[a : a + rows], segments[a : a + rows], scores[a : a + rows],
                            float(voting_threshold))
            for a in range(0, n, rows)
        ])
    # Soft-NMS picks are already non-increasing; a stable sort keeps the pick order on ties.
    order = torch.sort(nms_scores.masked_fill(~picked, -math.inf), dim=1, descending=True, stable=True).indices
    nms_segments = nms_segments.gather(1, order[..., None].expand(-1, -1, 2)).to(torch.float32)
    nms_scores = nms_scores.gather(1, order).to(torch.float32)
    counts = picked.sum(dim=1).tolist()
    return [(nms_segments[q, :m], nms_scores[q, :m]) for q, m in enumerate(counts)]
