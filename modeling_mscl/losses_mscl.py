# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The loss of MSCL (paper Eq. 13): :class:`MSCLLoss`, and the pure functions it is made of.

:class:`MSCLLoss` is what ``MSCLForTemporalGrounding.forward`` calls when it is given labels (as DETR's
model calls its criterion). It owns every decision about the loss:

* grounding terms (SnAG §2–3): centre-sampling label assignment with overlapping regression ranges,
  sigmoid focal loss with label smoothing and (D)IoU regression, both summed and divided by the EMA
  positive-count normaliser (a buffer of the model, handed in; updated by :meth:`MSCLLoss.update_normalizer`
  once per optimiser step);
* contrastive terms (Eq. 10–12): the query drawn per video (query-centric sampling), its positive and
  negative point sets on Z^0 and every pyramid level, the within-scale and cross-scale InfoNCE sums and
  their reduction (``contrastive_reduction``);
* the distributed parts: under ``torch.distributed`` in training mode every term is scaled so that DDP's
  gradient averaging yields the gradient of the *global* quantity (sums × world size; means divided by
  ``max(global pair count, 1) / world size``, with the pair counts all-reduced).

The pure functions below (label assignment, point sets, focal, IoU, the two contrastive losses) take
tensors and plain numbers only, so they can be tested alone; strides are always passed in (they come from
:attr:`MSCLConfig.level_strides`). All are vectorised (loops run over pyramid levels or videos only) and
take batch-first features.

This file travels with checkpoints (``trust_remote_code``): torch only, no package imports.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# points and label assignment
# --------------------------------------------------------------------------------------------


def assign_labels(
    segments: torch.Tensor,
    lengths: Sequence[int],
    regression_ranges: Sequence[Sequence[float]],
    center_sampling_radius: float = 1.5,
    strides: Optional[Sequence[float]] = None,
) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Centre-sampling label assignment of SnAG (§2.3), one ground-truth segment per query.

    Point ``i`` of level ``l`` sits at ``p = i · stride_l`` on the model grid (left-aligned, SnAG §2.1).

    Args:
        segments: ``(N, 2)`` ground truth ``(start, end)`` in model-grid units.
        lengths: number of points ``T_l`` of each level.
        regression_ranges: per-level ``[lo, hi)`` bounds on ``max(d_s, d_e)`` in grid units.
        center_sampling_radius: the window is ``c ± radius * stride_l`` clipped to the segment.
        strides: stride of each level on the model grid (:attr:`MSCLConfig.level_strides`). ``None``
            keeps the signature of SnAG's reference (SnAG's pyramid, ``1, 2, 4, …``) for callers
            without a config, e.g. the parity tests.

    Returns:
        ``positives``: per level ``(N, T_l)`` bool; ``targets``: per level ``(N, T_l, 2)``
        stride-normalised distances ``(p - s, e - p) / stride_l`` (meaningful at positives only).
    """
    if strides is None:
        strides = [2.0**level for level in range(len(lengths))]
    if len(strides) < len(lengths):
        raise ValueError(f"assign_labels got {len(lengths)} level lengths but only {len(strides)} strides")
    segments = segments.float()
    start, end = segments[:, 0:1], segments[:, 1:2]  # (N, 1)
    center = 0.5 * (start + end)
    positives, targets = [], []
    for n, (lo, hi), stride in zip(lengths, regression_ranges, strides):
        stride = float(stride)
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


def draw_contrastive_queries(
    query_video_index: torch.Tensor, num_videos: int, generators: Optional[Sequence[torch.Generator]] = None
) -> torch.Tensor:
    """Query-centric sampling (Eq. 10): for every video, one of its own queries, uniformly.

    Args:
        query_video_index: ``(N,)`` video of each query.
        num_videos: ``B``.
        generators: one CPU generator per video (seeded per video, so a draw does not depend on the
            batch it lands in); ``None``: the global torch RNG.

    Returns:
        ``(B,)`` long indices into the ``N`` queries.
    """
    picks = []
    for v in range(num_videos):
        idx = (query_video_index == v).nonzero().flatten()
        if idx.numel() == 0:
            raise ValueError(f"video {v} of the batch has no query; every video needs at least one")
        r = torch.randint(idx.numel(), (1,), generator=generators[v] if generators else None)
        picks.append(idx[int(r)])
    return torch.stack(picks)


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
    if normalizer is None:
        return total / pairs.float().clamp(min=1.0)
    # a given normaliser is used as it is: it may be below 1 (max(global pairs, 1) / world size, see
    # MSCLLoss.contrastive_normalizer); the tiny floor only keeps a caller's 0 (no pairs, so a zero
    # total) from turning into 0/0
    denom = torch.as_tensor(normalizer, dtype=torch.float32, device=total.device)
    return total / denom.clamp(min=torch.finfo(torch.float32).tiny)


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
            (anchor, positive) pairs, at least 1, or by ``normalizer`` when given, used as it is, e.g.
            ``max(pairs summed over processes and micro-batches, 1) / world size``).
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


# --------------------------------------------------------------------------------------------
# the loss module (paper Eq. 13)
# --------------------------------------------------------------------------------------------


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _uniform_noise(b: int, t: int, generators: Optional[Sequence[torch.Generator]], device) -> torch.Tensor:
    """``(B, T)`` uniform noise; row ``b`` from ``generators[b]`` when given (per-video reproducibility)."""
    if generators is None:
        return torch.rand(b, t, device=device)
    return torch.stack([torch.rand(t, generator=g) for g in generators]).to(device)


def _pair_counts(anchor_counts: torch.Tensor, level_counts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(2,)`` long: (within, cross) (anchor, positive) pairs from the per-video positive counts of Z^0
    (``(B,)``) and of every level: within ``Σ_l |P(l)|·(|P(l)|−1)``, cross ``Σ_l |P(0)|·|P(l)|``."""
    within = sum((c * (c - 1)).sum() for c in level_counts)
    cross = (anchor_counts[:, None] * torch.stack(list(level_counts), 1)).sum()
    return torch.stack((within, cross)).long()


class MSCLLoss(nn.Module):
    """The training loss of :class:`~modeling_mscl.MSCLForTemporalGrounding` (paper Eq. 13).

    ``loss = loss_cls + ρ_reg·loss_reg + ρ_within·loss_within + ρ_cross·loss_cross`` with every setting
    read from the config (``focal_*``, ``label_smoothing``, ``regression_*``, ``center_sampling_radius``,
    ``contrastive_*``, the loss weights, ``level_strides``). It has no parameters and no buffers: the
    EMA positive-count normaliser is a buffer of the model (state-dict key ``loss_normalizer``), handed to
    :meth:`forward` and updated through :meth:`update_normalizer`.

    Normalisation (the choices where the paper is silent, in one place):

    * ``loss_cls`` / ``loss_reg``: focal and (D)IoU sums divided by the normaliser, an EMA of the number
      of positives per optimiser step (SnAG §3). Under ``torch.distributed`` in training mode the sums
      are multiplied by the world size, so DDP's gradient averaging gives the gradient of the global sum
      divided by the shared normaliser, exactly as one process with the whole batch.
    * ``loss_within`` / ``loss_cross`` with ``contrastive_reduction="mean"``: the sums divided by
      ``max(pairs, 1)``. Under ``torch.distributed`` in training mode ``pairs`` is the global count
      (all-reduced) and the divisor is ``max(global pairs, 1) / world size``: after DDP's averaging, the
      gradient of the global mean, even when a step has fewer pairs than processes. A trainer that
      accumulates micro-batches passes the step's divisor as ``contrastive_normalizer``
      (:meth:`contrastive_normalizer` of the counts summed over the micro-batches).
    * ``contrastive_reduction="sum"``: Eq. 11 / 12 literally; under ``torch.distributed`` in training
      mode multiplied by the world size like the grounding terms, so the gradient is that of the global
      sum.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config

    # ----------------------------------------------------------------------------------------
    def forward(
        self,
        *,
        labels: torch.Tensor,
        query_video_index: torch.Tensor,
        logits: Sequence[torch.Tensor],
        offsets: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        embedding: torch.Tensor,
        embedding_mask: torch.Tensor,
        levels: Sequence[torch.Tensor],
        level_masks: Sequence[torch.Tensor],
        loss_normalizer: torch.Tensor,
        contrastive_query_index: Optional[torch.Tensor] = None,
        contrastive_seeds: Optional[torch.Tensor] = None,
        contrastive_normalizer: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """All terms of Eq. 13 for one (micro-)batch.

        Args:
            labels: ``(N, 2)`` each query's ``(start, end)`` on the model grid.
            query_video_index: ``(N,)`` video of each query.
            logits / offsets / masks: per level ``(N, T_l)``, ``(N, T_l, 2)``, ``(N, T_l)`` head outputs.
            embedding / embedding_mask: Z^0 ``(B, T, C)`` and ``(B, T)``.
            levels / level_masks: the pre-fusion pyramid Z^1..Z^L, per level ``(B, T_l, C)`` / ``(B, T_l)``.
            loss_normalizer: the model's EMA positive-count normaliser (scalar).
            contrastive_query_index / contrastive_seeds / contrastive_normalizer: see
                :meth:`MSCLForTemporalGrounding.forward`.

        Returns:
            ``{"loss", "loss_cls", "loss_reg", "loss_within", "loss_cross", "num_positives",
            "num_contrastive_pairs"}`` (scalars; the pair counts ``(2,)`` long).
        """
        cfg = self.config
        labels = labels.float()
        loss_cls, loss_reg, num_pos = self.grounding_losses(labels, logits, offsets, masks, loss_normalizer)
        loss_within, loss_cross, pair_counts = self.contrastive_losses(
            labels, query_video_index, embedding, embedding_mask, levels, level_masks,
            contrastive_query_index, contrastive_seeds, contrastive_normalizer,
        )
        loss = loss_cls + cfg.regression_loss_weight * loss_reg
        loss = loss + cfg.within_loss_weight * loss_within + cfg.cross_loss_weight * loss_cross
        return {
            "loss": loss, "loss_cls": loss_cls, "loss_reg": loss_reg, "loss_within": loss_within,
            "loss_cross": loss_cross, "num_positives": num_pos, "num_contrastive_pairs": pair_counts,
        }

    def _global_scale(self) -> float:
        """World size under ``torch.distributed`` in training mode (undoes DDP's gradient averaging)."""
        return float(_world_size()) if self.training else 1.0

    # ----------------------------------------------------------------------------------------
    # grounding terms
    # ----------------------------------------------------------------------------------------
    def grounding_losses(self, labels, logits, offsets, masks, loss_normalizer):
        """``(loss_cls, loss_reg, num_positives)``: focal over every valid point, (D)IoU over the
        positives, both divided by ``loss_normalizer``."""
        cfg = self.config
        lengths = [x.shape[1] for x in logits]
        positives, targets = assign_labels(
            labels, lengths, cfg.regression_ranges, cfg.center_sampling_radius, strides=cfg.level_strides
        )
        valid = torch.cat(list(masks), dim=1)  # (N, ΣT_l)
        pos = torch.cat(positives, dim=1) & valid
        all_logits = torch.cat(list(logits), dim=1)
        focal = sigmoid_focal_loss(
            all_logits, pos.float(), alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, label_smoothing=cfg.label_smoothing
        )
        cls_sum = focal.masked_fill(~valid, 0.0).sum()
        pred = torch.cat(list(offsets), dim=1)[pos]
        tgt = torch.cat(targets, dim=1)[pos]
        reg_sum = iou_loss_1d(pred, tgt, kind=cfg.regression_loss_type).sum() if pred.numel() else pred.sum() * 0.0
        norm = loss_normalizer.float()
        scale = self._global_scale()
        return cls_sum * scale / norm, reg_sum * scale / norm, pos.sum()

    @torch.no_grad()
    def update_normalizer(self, loss_normalizer: torch.Tensor, num_positives: Union[int, float, torch.Tensor]) -> float:
        """EMA update, in place, of ``loss_normalizer`` with the positive count of one optimiser step
        (summed over its micro-batches and processes; at least 1). Returns the new value."""
        m = self.config.loss_normalizer_momentum
        value = float(num_positives)
        loss_normalizer.mul_(m).add_((1.0 - m) * max(value, 1.0))
        return float(loss_normalizer)

    # ----------------------------------------------------------------------------------------
    # contrastive terms
    # ----------------------------------------------------------------------------------------
    def _strides(self, num_levels: int) -> List[float]:
        """Strides of Z^0 (1: the embedding is on the model grid) and of the pyramid levels."""
        return [1.0] + [float(s) for s in self.config.level_strides[:num_levels]]

    def _positive_sets(self, segments, masks) -> List[torch.Tensor]:
        """P(l) of the drawn queries' ``segments (B, 2)`` on Z^0 and every level (``masks``: ``(B, T_l)``)."""
        radius = self.config.contrastive_radius
        return [
            contrastive_positive_mask(segments, m.shape[1], stride, radius, m)
            for m, stride in zip(masks, self._strides(len(masks) - 1))
        ]

    def count_contrastive_pairs(
        self,
        labels: torch.Tensor,
        contrastive_query_index: torch.Tensor,
        embedding_mask: torch.Tensor,
        level_masks: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """``(2,)`` (within, cross) pair counts of a batch from its masks alone (no features needed), the
        same numbers :meth:`forward` reports in ``num_contrastive_pairs``."""
        segments = labels.float()[contrastive_query_index.long()]
        pos = self._positive_sets(segments, [embedding_mask, *level_masks])
        return _pair_counts(pos[0].sum(1), [p.sum(1) for p in pos[1:]])

    def contrastive_normalizer(self, pair_counts: torch.Tensor) -> torch.Tensor:
        """Divisors ``(2,)`` of the (within, cross) sums for ``contrastive_reduction="mean"``:
        ``max(pairs, 1) / world size`` with ``pairs`` summed over processes.

        Divided by this, each process's sum becomes its share of the global mean; DDP's averaging of the
        gradients then yields the gradient of the global mean. A collective under ``torch.distributed``
        (call it on every process); without it, ``max(pairs, 1)``.
        """
        counts = pair_counts.float()
        world = _world_size()
        if world > 1:
            counts = counts.clone()
            dist.all_reduce(counts)
        return counts.clamp(min=1.0) / world

    def contrastive_losses(
        self, labels, query_video_index, embedding, embedding_mask, levels, level_masks,
        contrastive_query_index=None, contrastive_seeds=None, contrastive_normalizer=None,
    ):
        """``(loss_within, loss_cross, pair_counts)`` of Eq. 11 / Eq. 12 for the query drawn per video."""
        cfg = self.config
        zero = embedding.new_zeros((), dtype=torch.float32)
        if not cfg.use_contrastive:
            return zero, zero, torch.zeros(2, dtype=torch.long, device=embedding.device)
        b = embedding.shape[0]
        generators = None
        if contrastive_seeds is not None:
            generators = [torch.Generator().manual_seed(int(s)) for s in contrastive_seeds.tolist()]
        if contrastive_query_index is None:
            contrastive_query_index = draw_contrastive_queries(query_video_index, b, generators)
        contrastive_query_index = contrastive_query_index.long().to(embedding.device)
        if contrastive_query_index.shape != (b,):
            raise ValueError(f"contrastive_query_index must have one entry per video ({b}), got {tuple(contrastive_query_index.shape)}")
        owner = query_video_index[contrastive_query_index]
        if bool((owner != torch.arange(b, device=owner.device)).any()):
            raise ValueError("contrastive_query_index must pick, for every video, one of that video's own queries")
        segments = labels[contrastive_query_index]  # (B, 2) on the model grid

        # P(l) and a uniform draw of N(l) (|N(l)| = ceil(ratio·|P(l)|)) for Z^0 and every pyramid level
        feats = [embedding] + list(levels)
        fmasks = [embedding_mask] + list(level_masks)
        pos_sets = self._positive_sets(segments, fmasks)
        neg_sets = []
        for z, m, pos, stride in zip(feats, fmasks, pos_sets, self._strides(len(levels))):
            cand = contrastive_negative_candidates(segments, z.shape[1], stride, m)
            counts = torch.ceil(pos.sum(dim=1).float() * cfg.contrastive_negative_ratio).long()
            noise = _uniform_noise(b, z.shape[1], generators, z.device)
            neg_sets.append(draw_negatives(cand, counts, noise))

        # pair counts are known before any similarity is computed: normalise with global counts
        pair_counts = _pair_counts(pos_sets[0].sum(1), [p.sum(1) for p in pos_sets[1:]])
        normalizer = contrastive_normalizer
        if normalizer is None and cfg.contrastive_reduction == "mean":
            normalizer = self.contrastive_normalizer(pair_counts) if self.training else pair_counts.float().clamp(min=1.0)
        kwargs = dict(temperature=cfg.contrastive_temperature, normalize=cfg.contrastive_normalize,
                      reduction=cfg.contrastive_reduction)
        within = within_scale_contrastive_loss(
            levels, pos_sets[1:], neg_sets[1:], normalizer=None if normalizer is None else normalizer[0], **kwargs
        )
        cross = cross_scale_contrastive_loss(
            embedding, pos_sets[0], levels, pos_sets[1:], neg_sets[1:],
            normalizer=None if normalizer is None else normalizer[1], **kwargs,
        )
        if cfg.contrastive_reduction == "sum":
            scale = self._global_scale()
            within, cross = within * scale, cross * scale
        return within, cross, pair_counts


__all__ = [
    "MSCLLoss",
    "assign_labels",
    "contrastive_negative_candidates",
    "contrastive_positive_mask",
    "cross_scale_contrastive_loss",
    "draw_contrastive_queries",
    "draw_negatives",
    "iou_loss_1d",
    "sigmoid_focal_loss",
    "within_scale_contrastive_loss",
]
