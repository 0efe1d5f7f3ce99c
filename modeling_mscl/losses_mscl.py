# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Pure functions for points, label assignment and every loss term of MSCL.

Grounding part (SnAG §2–3): candidate points, centre-sampling label assignment with overlapping
regression ranges, sigmoid focal loss with label smoothing, (D)IoU regression loss.

Contrastive part (paper Eq. 10–12): positive/negative point sets for the query drawn per video,
and the within-scale and cross-scale InfoNCE-style losses over the video encoder's own pyramid.
All functions are vectorised (no Python loop over anchors or positives; loops run over pyramid
levels or videos only) and take batch-first features.

This file travels with checkpoints (``trust_remote_code``): torch only, no package imports.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# points and label assignment
# --------------------------------------------------------------------------------------------


def level_points(lengths: Sequence[int], device=None, dtype=torch.float32) -> List[torch.Tensor]:
    """Point positions of every level on the model grid: ``p = i * 2^l`` (left-aligned, SnAG §2.1)."""
    return [torch.arange(n, device=device, dtype=dtype) * (2**l) for l, n in enumerate(lengths)]


def assign_labels(
    segments: torch.Tensor,
    lengths: Sequence[int],
    regression_ranges: Sequence[Sequence[float]],
    center_sampling_radius: float = 1.5,
) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Centre-sampling label assignment of SnAG (§2.3), one ground-truth segment per query.

    Args:
        segments: ``(N, 2)`` ground truth ``(start, end)`` in model-grid units.
        lengths: number of points ``T_l`` of each level.
        regression_ranges: per-level ``[lo, hi)`` bounds on ``max(d_s, d_e)`` in grid units.
        center_sampling_radius: the window is ``c ± radius * stride_l`` clipped to the segment.

    Returns:
        ``positives``: per level ``(N, T_l)`` bool; ``targets``: per level ``(N, T_l, 2)``
        stride-normalised distances ``(p - s, e - p) / stride_l`` (meaningful at positives only).
    """
    segments = segments.float()
    start, end = segments[:, 0:1], segments[:, 1:2]  # (N, 1)
    center = 0.5 * (start + end)
    positives, targets = [], []
    for level, (n, (lo, hi)) in enumerate(zip(lengths, regression_ranges)):
        stride = float(2**level)
        p = torch.arange(n, device=segments.device, dtype=torch.float32)[None] * stride  # (1, T_l)
        d_s, d_e = p - start, end - p
        radius = center_sampling_radius * stride
        t_min = torch.maximum(center - radius, start)
        t_max = torch.minimum(center + radius, end)
        inside = (p > t_min) & (p < t_max)
        reach = torch.maximum(d_s, d_e)
        in_range = (reach >= lo) & (reach < hi)
        positives.append(inside & in_range)
        targets.append(torch.stack((d_s, d_e), dim=-1) / stride)
    return positives, targets


def contrastive_positive_mask(
    segments: torch.Tensor, length: int, stride: float, radius: float, valid: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """P(l) of the paper (Eq. 10 with centre sampling): ``max(s, c-α·stride) < p < min(e, c+α·stride)``.

    SnAG's centre window without the regression-range filter, so every level can hold positives.
    ``segments``: ``(B, 2)`` grid units; returns ``(B, length)`` bool (``& valid`` when given).
    """
    segments = segments.float()
    start, end = segments[:, 0:1], segments[:, 1:2]
    center = 0.5 * (start + end)
    p = torch.arange(length, device=segments.device, dtype=torch.float32)[None] * stride
    inside = (p > torch.maximum(start, center - radius * stride)) & (p < torch.minimum(end, center + radius * stride))
    return inside if valid is None else inside & valid


def contrastive_negative_candidates(
    segments: torch.Tensor, length: int, stride: float, valid: torch.Tensor
) -> torch.Tensor:
    """Points of a level outside the drawn query's moment (``p < s`` or ``p > e``), valid only."""
    segments = segments.float()
    p = torch.arange(length, device=segments.device, dtype=torch.float32)[None] * stride
    return ((p < segments[:, 0:1]) | (p > segments[:, 1:2])) & valid


def draw_negatives(candidates: torch.Tensor, counts: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Draw ``counts[b]`` of the ``candidates[b]`` uniformly without replacement (all if fewer).

    ``noise`` is ``(B, T)`` uniform noise (one draw per video from its own generator, so the draw does
    not depend on how videos are batched); taking the points of smallest noise is a uniform draw.
    """
    keyed = torch.where(candidates, noise, torch.full_like(noise, 2.0))
    rank = keyed.argsort(dim=1).argsort(dim=1)  # rank of each point by its noise
    return candidates & (rank < counts[:, None])


# --------------------------------------------------------------------------------------------
# grounding losses
# --------------------------------------------------------------------------------------------


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.5,
    gamma: float = 2.0,
    label_smoothing: float = 0.2,
) -> torch.Tensor:
    """Element-wise sigmoid focal loss with label smoothing used inside ``p_t`` too (SnAG §3).

    ``y' = y (1 - ε) + ε / 2``; ``p_t = p y' + (1 - p)(1 - y')``; ``α_t = α`` where ``y' ≥ 0.5``.
    Computed in float32.
    """
    logits = logits.float()
    y = targets.float() * (1.0 - label_smoothing) + label_smoothing / 2.0
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p_t = p * y + (1.0 - p) * (1.0 - y)
    loss = ce * (1.0 - p_t) ** gamma
    if alpha >= 0:
        loss = torch.where(y >= 0.5, alpha * loss, (1.0 - alpha) * loss)
    return loss


def iou_loss_1d(pred: torch.Tensor, target: torch.Tensor, *, kind: str = "diou", eps: float = 1e-8) -> torch.Tensor:
    """(D)IoU loss on ``(..., 2)`` non-negative distances ``(left, right)`` from a point (SnAG §3)."""
    pred, target = pred.float(), target.float()
    lp, rp = pred[..., 0], pred[..., 1]
    lg, rg = target[..., 0], target[..., 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = lp + rp + lg + rg - inter
    iou = inter / union.clamp(min=eps)
    loss = 1.0 - iou
    if kind == "diou":
        enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
        rho = 0.5 * ((rp - lp) - (rg - lg))
        loss = loss + (rho / enclosing.clamp(min=eps)) ** 2
    elif kind != "iou":
        raise ValueError(f"unknown regression loss {kind!r}; expected 'diou' or 'iou'")
    return loss


# --------------------------------------------------------------------------------------------
# contrastive losses (paper Eq. 11, Eq. 12)
# --------------------------------------------------------------------------------------------


def _gather_sets(features: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pack the points selected by ``mask (B, T)`` of ``features (B, T, D)`` into ``(B, K, D)``.

    Returns the packed features and their validity ``(B, K)``; K = the largest set in the batch.
    """
    counts = mask.sum(dim=1)
    k = int(counts.max()) if mask.numel() else 0
    if k == 0:
        return features.new_zeros(features.shape[0], 0, features.shape[-1]), mask.new_zeros(mask.shape[0], 0)
    # stable sort puts selected points first, in temporal order
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :k]  # (B, K)
    packed = torch.gather(features, 1, order[..., None].expand(-1, -1, features.shape[-1]))
    valid = torch.arange(k, device=mask.device)[None] < counts[:, None]
    return packed, valid


def _prepare(features: torch.Tensor, normalize: bool) -> torch.Tensor:
    features = features.float()
    return F.normalize(features, dim=-1) if normalize else features


_NEG = -1e30


def _info_nce_terms(
    sim_pos: torch.Tensor, sim_neg: torch.Tensor, neg_valid: torch.Tensor
) -> torch.Tensor:
    """``-log(e^{s_ij} / (e^{s_ij} + Σ_n e^{s_in}))`` for every (anchor i, positive j).

    ``sim_pos (B, A, P)``, ``sim_neg (B, A, M)``, ``neg_valid (B, M)``; log-sum-exp throughout so
    unnormalised features do not overflow; no negatives gives exactly 0.
    """
    # A finite "minus infinity": logaddexp(s, _NEG) == s in float32, so an empty N(l) gives an exact
    # zero term, and no -inf ever reaches a logsumexp backward (which would produce NaN).
    neg = sim_neg.masked_fill(~neg_valid[:, None, :], _NEG)
    if neg.shape[-1]:
        neg_lse = torch.logsumexp(neg, dim=-1, keepdim=True)
    else:
        neg_lse = torch.full_like(sim_pos[..., :1], _NEG)
    return torch.logaddexp(sim_pos, neg_lse.expand_as(sim_pos)) - sim_pos


def _reduce(total: torch.Tensor, pairs: torch.Tensor, reduction: str, normalizer: Optional[torch.Tensor]):
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ValueError(f"unknown reduction {reduction!r}; expected 'mean' or 'sum'")
    denom = pairs.float() if normalizer is None else torch.as_tensor(normalizer, dtype=torch.float32, device=total.device)
    return total / denom.clamp(min=1.0)


def within_scale_contrastive_loss(
    levels: Sequence[torch.Tensor],
    positives: Sequence[torch.Tensor],
    negatives: Sequence[torch.Tensor],
    *,
    temperature: float = 1.0,
    normalize: bool = False,
    reduction: str = "mean",
    normalizer: Optional[torch.Tensor] = None,
    return_pairs: bool = False,
):
    """Within-scale contrastive loss, paper Eq. 11, summed over the batch.

    For each level ``l`` and video: ``Σ_{i∈P(l)} Σ_{j∈P(l), j≠i} -log(e^{z_i·z_j} / (e^{z_i·z_j} +
    Σ_{n∈N(l)} e^{z_i·z_n}))`` with similarity ``z_i·z_j / temperature`` after optional L2
    normalisation.

    Args:
        levels: per level ``(B, T_l, D)`` features.
        positives, negatives: per level ``(B, T_l)`` bool sets P(l), N(l).
        reduction: ``"sum"`` (Eq. 11 literally) or ``"mean"`` (divide by the number of
            (anchor, positive) pairs, or by ``normalizer`` when given, e.g. the count summed across
            processes and micro-batches).
        return_pairs: also return the number of (anchor, positive) pairs.
    """
    # zero that stays in the graph, so an empty batch still backpropagates (zeros) under DDP
    total = sum(z.float().sum() for z in levels) * 0.0
    pairs = torch.zeros((), dtype=torch.long, device=levels[0].device)
    for z, pos, neg in zip(levels, positives, negatives):
        z = _prepare(z, normalize)
        zp, pv = _gather_sets(z, pos)  # (B, P, D)
        if zp.shape[1] < 2:
            continue
        zn, nv = _gather_sets(z, neg)  # (B, M, D)
        sim_pp = torch.einsum("bid,bjd->bij", zp, zp) / temperature
        sim_pn = torch.einsum("bid,bnd->bin", zp, zn) / temperature
        terms = _info_nce_terms(sim_pp, sim_pn, nv)
        eye = torch.eye(zp.shape[1], dtype=torch.bool, device=z.device)[None]
        pair_mask = pv[:, :, None] & pv[:, None, :] & ~eye
        total = total + terms.masked_fill(~pair_mask, 0.0).sum()
        pairs = pairs + pair_mask.sum()
    loss = _reduce(total, pairs, reduction, normalizer)
    return (loss, pairs) if return_pairs else loss


def cross_scale_contrastive_loss(
    anchor: torch.Tensor,
    anchor_positives: torch.Tensor,
    levels: Sequence[torch.Tensor],
    positives: Sequence[torch.Tensor],
    negatives: Sequence[torch.Tensor],
    *,
    temperature: float = 1.0,
    normalize: bool = False,
    reduction: str = "mean",
    normalizer: Optional[torch.Tensor] = None,
    return_pairs: bool = False,
):
    """Cross-scale contrastive loss, paper Eq. 12, summed over the batch.

    Anchors are the positives P(0) of the embedding output ``anchor (B, T_0, D)``; for every
    pyramid level ``l`` and ``j ∈ P(l)``: ``-log(e^{z0_i·z_j} / (e^{z0_i·z_j} + Σ_{n∈N(l)}
    e^{z0_i·z_n}))``. Same similarity, reduction and ``normalizer`` semantics as
    :func:`within_scale_contrastive_loss`; pairs are (anchor, level positive).
    """
    total = (anchor.float().sum() + sum(z.float().sum() for z in levels)) * 0.0
    pairs = torch.zeros((), dtype=torch.long, device=anchor.device)
    za, av = _gather_sets(_prepare(anchor, normalize), anchor_positives)  # (B, A, D)
    if za.shape[1] > 0:
        for z, pos, neg in zip(levels, positives, negatives):
            z = _prepare(z, normalize)
            zp, pv = _gather_sets(z, pos)
            if zp.shape[1] == 0:
                continue
            zn, nv = _gather_sets(z, neg)
            sim_ap = torch.einsum("bad,bjd->baj", za, zp) / temperature
            sim_an = torch.einsum("bad,bnd->ban", za, zn) / temperature
            terms = _info_nce_terms(sim_ap, sim_an, nv)
            pair_mask = av[:, :, None] & pv[:, None, :]
            total = total + terms.masked_fill(~pair_mask, 0.0).sum()
            pairs = pairs + pair_mask.sum()
    loss = _reduce(total, pairs, reduction, normalizer)
    return (loss, pairs) if return_pairs else loss


__all__ = [
    "assign_labels",
    "contrastive_negative_candidates",
    "contrastive_positive_mask",
    "cross_scale_contrastive_loss",
    "draw_negatives",
    "iou_loss_1d",
    "level_points",
    "sigmoid_focal_loss",
    "within_scale_contrastive_loss",
]
