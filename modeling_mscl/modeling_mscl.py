# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""MSCL: SnAG's video-centric grounding model with the paper's multi-scale contrastive losses.

Where things are (the flat ``*_mscl.py`` files travel with every checkpoint and import only each other):

* this file — the network: building blocks, video / text encoders, fusion, heads, and
  :class:`MSCLForTemporalGrounding` (``forward`` for training batches, ``ground`` for inference);
* :mod:`.losses_mscl` — :class:`MSCLLoss` (Eq. 13: label assignment, focal + DIoU, the contrastive draw
  and Eq. 11 / 12, every reduction including the distributed ones), called by ``forward``;
* :mod:`.processing_mscl` — :func:`post_process_grounding` (decoding + Soft-NMS + voting, grid → seconds),
  the time mapping, and the input checks shared by ``forward``, ``ground``, the pipeline and the collator;
* :mod:`.configuration_mscl` — :class:`MSCLConfig`, the single source of the hyperparameters
  (including the pyramid's ``level_strides``).

Layout: every tensor is batch-first and channels-last, ``(batch, time, channels)``. SnAG itself is
channels-first; :mod:`modeling_mscl.convert_snag` maps its weights onto these modules.

Forward order (SnAG §1): text encoder → video encoder (once per video) → shared cross-attention
fusion on every pyramid level (once per query) → shared classification / regression heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_mscl import MSCLConfig
from .losses_mscl import MSCLLoss
from .processing_mscl import (
    TimeMapping,
    as_feature_tensor,
    post_process_grounding,
    validate_grounding_batch,
    validate_query_features,
    validate_video_features,
)

logger = logging.get_logger(__name__)

# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


@dataclass
class MSCLOutput(ModelOutput):
    """Output of :class:`MSCLForTemporalGrounding`.

    Shapes: ``B`` videos, ``N`` queries, ``T_l`` points of pyramid level ``l`` (``T_0`` = the model grid,
    the input length divided by ``video_input_stride``), ``T`` = ``T_0``, ``L`` text tokens, ``C`` =
    ``hidden_size``, ``D`` = ``text_hidden_size``. Per-level fields are tuples with one entry per level.

    Args:
        loss: ``()`` Eq. 13, ``loss_cls + ρ_reg·loss_reg + ρ_within·loss_within + ρ_cross·loss_cross``
            (only with ``labels``, as every loss field).
        loss_cls: ``()`` focal sum divided by the EMA positive-count normaliser.
        loss_reg: ``()`` (D)IoU sum over the positives divided by the same normaliser.
        loss_within: ``()`` within-scale contrastive term (Eq. 11) after ``contrastive_reduction``.
        loss_cross: ``()`` cross-scale contrastive term (Eq. 12) after ``contrastive_reduction``.
        logits: per level ``(N, T_l)`` classification logits.
        offsets: per level ``(N, T_l, 2)`` distances to (start, end) in units of the level's stride.
        masks: per level ``(N, T_l)`` bool validity of the points.
        num_positives: ``()`` long, positive points of this micro-batch (feeds
            :meth:`MSCLForTemporalGrounding.update_loss_normalizer`).
        num_contrastive_pairs: ``(2,)`` long, (within, cross) (anchor, positive) pair counts.
        text_hidden_states: ``(N, L+1, D)`` text encoder output (token 0 = background / pooled token).
        text_mask: ``(N, L+1)`` bool validity of ``text_hidden_states``.
        video_hidden_states: per level ``(B, T_l, C)`` pre-fusion pyramid (the paper's Z^1..Z^L).
        video_embeddings: ``(B, T, C)`` convolutional embedding (the paper's Z^0).
        video_masks: per level ``(B, T_l)`` bool validity of ``video_hidden_states``.
        fused_hidden_states: per level ``(N, T_l, C)`` text-conditioned features before the heads.

    The hidden-state fields (``text_hidden_states`` to ``fused_hidden_states``) are filled with
    ``output_hidden_states=True`` only.
    """

    loss: Optional[torch.Tensor] = None
    loss_cls: Optional[torch.Tensor] = None
    loss_reg: Optional[torch.Tensor] = None
    loss_within: Optional[torch.Tensor] = None
    loss_cross: Optional[torch.Tensor] = None
    logits: Optional[Tuple[torch.Tensor, ...]] = None
    offsets: Optional[Tuple[torch.Tensor, ...]] = None
    masks: Optional[Tuple[torch.Tensor, ...]] = None
    num_positives: Optional[torch.Tensor] = None
    num_contrastive_pairs: Optional[torch.Tensor] = None
    text_hidden_states: Optional[torch.Tensor] = None
    text_mask: Optional[torch.Tensor] = None
    video_hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    video_embeddings: Optional[torch.Tensor] = None
    video_masks: Optional[Tuple[torch.Tensor, ...]] = None
    fused_hidden_states: Optional[Tuple[torch.Tensor, ...]] = None


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def sinusoid_table(length: int, dim: int, device=None) -> torch.Tensor:
    """SnAG's fixed position table ``(length, dim)``: sin block then cos block, divided by √dim."""
    n = dim // 2
    freqs = torch.pow(10000.0, torch.arange(n, dtype=torch.float64) / n)
    t = torch.arange(length, dtype=torch.float64)[:, None] / freqs[None]
    table = torch.cat((torch.sin(t), torch.cos(t)), dim=1)
    if table.shape[1] < dim:  # odd widths: keep the last channel at zero
        table = F.pad(table, (0, dim - table.shape[1]))
    return (table / math.sqrt(dim)).to(torch.float32).to(device)


def stretch_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resample a ``(T, D)`` table to ``length`` rows (align_corners=True), as SnAG does."""
    if table.shape[0] == length:
        return table
    return F.interpolate(table.t()[None], size=length, mode="linear", align_corners=True)[0].t()


def add_position_encoding(
    x: torch.Tensor, mask: torch.Tensor, table: torch.Tensor, rows: Optional[int] = None
) -> torch.Tensor:
    """Add the table at valid positions; a sequence longer than the table gets it stretched over its
    *valid* length (SnAG stretches over the padded length; ours does not depend on padding).
    ``rows``: compute the sum in tiles of that many rows (inference on long videos, where the stretched,
    padded and masked tables would each be a full-length buffer); the same sums."""
    bsz, t, _ = x.shape
    max_len = table.shape[0]
    # per sequence, the table it reads (stretched over its valid length when longer than the table)
    sources = None if t <= max_len else [
        table[:n] if n <= max_len else stretch_table(table, n) for n in (int(k) for k in mask.sum(dim=1))]

    def pe_rows(a: int, e: int) -> torch.Tensor:  # (1 or B, e − a, D)
        if sources is None:
            return table[a:e][None]
        return torch.stack([F.pad(src[a:e], (0, 0, 0, (e - a) - src[a:e].shape[0])) for src in sources])

    if rows is None or rows >= t:
        return x + pe_rows(0, t).to(x.dtype) * mask[..., None].to(x.dtype)
    out = torch.empty_like(x)
    for a in range(0, t, rows):
        e = min(a + rows, t)
        out[:, a:e] = x[:, a:e] + pe_rows(a, e).to(x.dtype) * mask[:, a:e, None].to(x.dtype)
    return out


def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero ``x (N, T, C)`` at padded steps. On CPUs a no-op (no copy) when every step is valid, the
    common case at inference where videos are not padded; on other devices always the product (the same
    values: ``x · 1 = x``), because reading ``mask.all()`` there waits for every queued kernel (a host
    sync per call, and every masked conv, attention and block calls it), which costs more than the product."""
    if x.device.type == "cpu" and bool(mask.all()):
        return x
    return x * mask[..., None].to(x.dtype)


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Nearest-neighbour downsampling, ``mask_out[i] = mask_in[stride·i]`` (valid = ceil(len/stride))."""
    return mask[:, ::stride] if stride > 1 else mask


class LayerScale(nn.Module):
    """Per-channel learnable scale (init ``1e-4`` in SnAG) followed by drop-path (stochastic depth: the whole
    sample dropped with probability ``drop_path``, kept ones scaled by ``1 / keep``; training only)."""

    def __init__(self, dim: int, init: float, drop_path: float):
        super().__init__()
        self.init_value = init
        self.drop_path = drop_path
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_path == 0.0 or not self.training:
            return x * self.gamma
        keep = 1.0 - self.drop_path
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        scale = x.new_empty(shape).bernoulli_(keep).div_(keep)  # (B, 1, …, 1)
        # one pass over x: the per-sample drop-path scale is folded into the per-channel γ
        return x * (self.gamma * scale)


class DepthwiseConv(nn.Module):
    """Masked depthwise conv, kernel 3, padding 1, stride 1 or 2, no bias, channels-last.

    Written as a sum of shifted slices so it runs directly on ``(B, T, C)`` without transposes.
    """

    def __init__(self, dim: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(dim, 1, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = apply_mask(x, mask)
        xp = F.pad(x, (0, 0, 1, 1))  # (B, T+2, C)
        t_out = (x.shape[1] - 1) // self.stride + 1
        return self.from_padded(xp, t_out), downsample_mask(mask, self.stride)

    def from_padded(self, xp: torch.Tensor, t_out: int) -> torch.Tensor:
        """The conv's ``t_out`` outputs from its input with one row of context on each side
        (``xp`` rows ``[−1, stride·(t_out − 1) + 2)``, zero outside the sequence)."""
        w = self.weight[:, 0, :].to(xp.dtype)  # (C, 3)
        s = self.stride
        return (
            xp[:, 0 : s * (t_out - 1) + 1 : s] * w[:, 0]
            + xp[:, 1 : s * (t_out - 1) + 2 : s] * w[:, 1]
            + xp[:, 2 : s * (t_out - 1) + 3 : s] * w[:, 2]
        )

    def tap_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """``(3, C)``: row ``k`` multiplies the input at offset ``k − 1`` (inference fast path)."""
        return self.weight[:, 0, :].t().to(dtype).contiguous()


class _TapSum(torch.autograd.Function):
    """The shifted sum of a kernel-3 conv's tap products, ``taps (N, T, 3·O)`` → ``(N, T, O)``:
    ``out[t] = taps[t − 1, :O] + taps[t, O:2O] + taps[t + 1, 2O:]`` (zero beyond either end).

    Both directions write each output once, with no padded copy of the taps: autograd through the slices
    of a zero-padded tensor would fill a padded copy of the taps (``queries × points × 3C`` in the heads)
    in the forward pass and one per slice in the backward pass, and add them up; in training that was the
    largest non-GEMM cost of the heads. The sums are the padded slices' to the bit: ``(a + b) + c`` with
    zero for a missing neighbour, and float addition is commutative."""

    @staticmethod
    def forward(ctx, taps: torch.Tensor) -> torch.Tensor:
        o = taps.shape[-1] // 3
        out = taps[..., o : 2 * o].clone()
        out[:, 1:] += taps[:, :-1, :o]
        out[:, :-1] += taps[:, 1:, 2 * o :]
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        n, t, o = grad_out.shape
        grad = grad_out.new_empty(n, t, 3 * o)
        grad[:, : t - 1, :o] = grad_out[:, 1:]  # taps[s, :O] feeds out[s + 1]
        grad[:, t - 1 :, :o] = 0
        grad[:, :, o : 2 * o] = grad_out
        grad[:, 1:, 2 * o :] = grad_out[:, : t - 1]  # taps[s, 2O:] feeds out[s − 1]
        grad[:, :1, 2 * o :] = 0
        return grad


class MaskedConv(nn.Module):
    """Masked 1-D conv on channels-last input (input zeroed at padding; output not re-masked)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3, stride: int = 1, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)

    def tap_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """``(3·O, C)`` weight of the three taps as one linear map (kernel 3, stride 1 only): output block
        ``k`` multiplies the input at offset ``k − 1``, so the conv is one GEMM and two shifted adds."""
        conv = self.conv
        return conv.weight.permute(2, 0, 1).reshape(3 * conv.out_channels, -1).to(dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = apply_mask(x, mask)
        conv = self.conv
        if conv.kernel_size[0] == 3 and conv.stride[0] == 1:
            # channels-last without transposes: one GEMM for the three taps, then shifted sums
            o = conv.out_channels
            taps = F.linear(x, conv.weight.permute(2, 0, 1).reshape(3 * o, -1))  # (N, T, 3·O)
            out = _TapSum.apply(taps)
            if conv.bias is not None:
                out = out + conv.bias
            return out, mask
        out = conv(x.transpose(1, 2)).transpose(1, 2)
        return out, downsample_mask(mask, conv.stride[0])

    def valid(self, x: torch.Tensor) -> torch.Tensor:
        """The conv without its zero padding, on masked input that holds its own context rows:
        ``(N, T, C)`` → ``(N, (T − k) // stride + 1, O)`` (inference row tiles). The same sums as
        :meth:`forward` on the rows inside; at the sequence's edges the caller supplies zero rows."""
        conv = self.conv
        if conv.kernel_size[0] == 3 and conv.stride[0] == 1:
            o = conv.out_channels
            taps = F.linear(x, conv.weight.permute(2, 0, 1).reshape(3 * o, -1))  # (N, T, 3·O)
            out = _shifted_sum(taps, o)
            return out + conv.bias if conv.bias is not None else out
        return F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, stride=conv.stride).transpose(1, 2)


class FeedForward(nn.Module):
    """``Linear(C, 4C) → GELU → dropout → Linear(4C, C) → dropout``."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))

    def inference_weights(self, norm: nn.LayerNorm, layer_scale: "LayerScale", dtype: torch.dtype,
                          fused: bool = False) -> dict:
        """Eval-mode weights of ``x + γ·FFN(norm(x))`` for :func:`_ffn_residual`. Exact algebra: the
        LayerScale ``γ`` is folded into ``fc2`` (``diag(γ)·W2``, ``γ·b2``); dropout is the identity.
        ``fused``: also the two GEMMs' weights packed for oneDNN's fused linear (see :func:`_ffn_residual`)."""
        gamma = layer_scale.gamma.float()
        out = {
            "norm_w": norm.weight.float(), "norm_b": norm.bias.float(), "norm_eps": norm.eps,
            "w1": self.fc1.weight.to(dtype), "b1": self.fc1.bias.to(dtype),
            "w2": (self.fc2.weight.float() * gamma[:, None]).to(dtype),
            "b2": (self.fc2.bias.float() * gamma).to(dtype),
        }
        if fused:
            out["w1_packed"] = torch.ops.mkldnn._reorder_linear_weight(out["w1"], None)
            out["w2_packed"] = torch.ops.mkldnn._reorder_linear_weight(out["w2"], None)
        return out


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.view(b, t, heads, c // heads).transpose(1, 2)  # (B, h, T, d)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, window: int,
    dropout: float = 0.0, training: bool = False,
) -> torch.Tensor:
    """Sliding-window attention, ``O(T·w)`` time and memory.

    ``q, k, v``: ``(B, h, T, d)``; ``key_mask``: ``(B, T)``. Query ``i`` sees keys ``|i − j| ≤ w//2``
    inside ``[0, T)``; padded keys get ``−1e4`` (SnAG's additive mask); padded query rows are the
    caller's business (SnAG zeroes them). The band is processed one diagonal offset at a time, so no
    ``(T, T)`` or ``(T, w, d)`` tensor is ever built.
    """
    half = window // 2
    kp = F.pad(k, (0, 0, half, half))  # (B, h, T + 2·half, d)
    vp = F.pad(v, (0, 0, half, half))
    return _local_attention_rows(q, kp, vp, _local_attention_bias(key_mask, half, q.dtype), window, dropout, training)


def _local_attention_bias(key_mask: torch.Tensor, half: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, T + 2·half)`` additive bias per key slot: 0 for valid keys, −1e4 for padded keys, −inf outside [0, T)."""
    key_valid = F.pad(key_mask, (half, half), value=False)
    in_range = F.pad(torch.ones_like(key_mask), (half, half), value=False)
    bias = torch.where(key_valid, 0.0, -1e4).to(dtype)
    return torch.where(in_range, bias, float("-inf"))


def _tile_scale(device: torch.device) -> int:
    """How many times larger inference tiles are on ``device`` than on a CPU. The CPU sizes keep every
    temporary far below glibc's mmap threshold (see :func:`_tile_rows`); on a GPU the caching allocator
    reuses its blocks whatever their size, and each op of a tile is a kernel launch, so CPU-sized tiles
    would leave a GPU waiting on launches (up to 2.9× the ops per query at TACoS lengths, docs/performance.md):
    there a tile's largest temporary may reach 256 MB in float32 (512 MB for the fusion's FFN)."""
    return 1 if torch.device(device).type == "cpu" else 64


def _tile_rows(width: int, budget: int = 1 << 20) -> int:
    """Rows of an inference tile whose ``(rows, width)`` float buffers hold ``budget`` elements (on CPUs
    ``1 << 20``, 4 MB in float32: far below glibc's mmap threshold (≤ 32 MB), so freed tiles are reused
    from the heap; on GPUs :func:`_tile_scale` times more)."""
    return max(256, budget // max(1, width))


def _rows_with_context(x: torch.Tensor, mask: torch.Tensor, lo: int, hi: int, value: float = 0.0,
                       transform=None) -> torch.Tensor:
    """Rows ``[lo, hi)`` of ``x (B, T, C)``, masked by ``mask`` (then ``transform(rows, mask)``), and ``value``
    outside ``[0, T)``: an inference tile's input with the context rows its convs / windows read."""
    a, e = max(lo, 0), min(hi, x.shape[1])
    part = apply_mask(x[:, a:e], mask[:, a:e])
    if transform is not None:
        part = transform(part, mask[:, a:e])
    return part if (a, e) == (lo, hi) else F.pad(part, (0, 0, a - lo, hi - e), value=value)


def _local_attention_rows(q, kp, vp, bias, window: int, dropout: float, training: bool) -> torch.Tensor:
    """:func:`local_attention` for the query rows of ``q (B, h, t, d)``, given the keys / values / bias
    of rows ``[−half, t + half)`` around them (``kp``, ``vp`` ``(B, h, t + 2·half, d)``, ``bias (B, t + 2·half)``)."""
    t = q.shape[2]
    scale = q.shape[-1] ** -0.5
    logits = torch.stack(
        [(q * kp[:, :, c : c + t]).sum(-1) * scale + bias[:, None, c : c + t] for c in range(window)], dim=-1
    )  # (B, h, T, w): column c is key i - half + c
    attn = torch.softmax(logits, dim=-1)
    if dropout > 0 and training:
        attn = F.dropout(attn, dropout, training=True)
    out = attn[..., 0:1] * vp[:, :, 0:t]
    for c in range(1, window):
        out = out + attn[..., c : c + 1] * vp[:, :, c : c + t]
    return out  # (B, h, T, d)


def global_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Full attention with padded keys excluded (``−inf``). ``q (B,h,Tq,d)``, ``key_mask (B, Tk)``."""
    mask = key_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout if training else 0.0)


class LocalSelfAttention(nn.Module):
    """SnAG's video self-attention: per-branch depthwise conv + LN on q, k, v (stride 1 or 2),
    1×1 projections, local window attention, output projection and dropout."""

    def __init__(self, config: MSCLConfig, stride: int):
        super().__init__()
        c = config.hidden_size
        self.heads = config.num_attention_heads
        self.window = config.attention_window
        self.stride = stride
        self.attn_dropout = config.attention_dropout
        self.q_conv, self.k_conv, self.v_conv = (DepthwiseConv(c, stride) for _ in range(3))
        self.q_norm, self.k_norm, self.v_norm = (nn.LayerNorm(c) for _ in range(3))
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(c, c) for _ in range(3))
        self.out_proj = nn.Linear(c, c)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        q, new_mask = self.q_conv(x, mask)
        k, _ = self.k_conv(x, mask)
        v, _ = self.v_conv(x, mask)
        q = _split_heads(self.q_proj(self.q_norm(q)), self.heads)
        k = _split_heads(self.k_proj(self.k_norm(k)), self.heads)
        v = _split_heads(self.v_proj(self.v_norm(v)), self.heads)
        out = local_attention(q, k, v, new_mask, self.window, self.attn_dropout, self.training)
        out = apply_mask(_merge_heads(out), new_mask)  # padded query rows → 0
        return self.dropout(self.out_proj(out)), new_mask


class GlobalSelfAttention(nn.Module):
    """Plain multi-head self-attention (text encoder, attention pooling); padded keys excluded."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, proj_dropout: float):
        super().__init__()
        self.heads = heads
        self.attn_dropout = attn_dropout
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = _split_heads(self.q_proj(x), self.heads)
        k = _split_heads(self.k_proj(x), self.heads)
        v = _split_heads(self.v_proj(x), self.heads)
        out = global_attention(q, k, v, mask, self.attn_dropout, self.training)
        out = apply_mask(_merge_heads(out), mask)
        return self.dropout(self.out_proj(out))


class MaskedMaxPool(nn.Module):
    """Max-pool, kernel 3, stride 2, padding 1, over valid positions only (SnAG's strided skip)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fill = torch.finfo(x.dtype).min
        x = x.masked_fill(~mask[..., None], fill)
        xp = F.pad(x, (0, 0, 1, 1), value=fill)
        return self.from_padded(xp, (x.shape[1] - 1) // 2 + 1)

    @staticmethod
    def from_padded(xp: torch.Tensor, t_out: int) -> torch.Tensor:
        """``t_out`` outputs from the masked-filled input with one row of context on each side."""
        return torch.maximum(
            torch.maximum(xp[:, 0 : 2 * t_out - 1 : 2], xp[:, 1 : 2 * t_out : 2]), xp[:, 2 : 2 * t_out + 1 : 2]
        )


class VideoBlock(nn.Module):
    """Pre-LN local-window Transformer block with optional stride-2 downsampling (SnAG §1.1)."""

    def __init__(self, config: MSCLConfig, stride: int):
        super().__init__()
        c = config.hidden_size
        self.stride = stride
        self.norm_attn = nn.LayerNorm(c)
        self.attn = LocalSelfAttention(config, stride)
        self.skip_pool = MaskedMaxPool() if stride > 1 else None
        self.layer_scale_attn = LayerScale(c, config.layer_scale_init, config.drop_path)
        self.norm_ffn = nn.LayerNorm(c)
        self.ffn = FeedForward(c, config.hidden_dropout)
        self.layer_scale_ffn = LayerScale(c, config.layer_scale_init, config.drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        rows = _tile_rows(x.shape[0] * 4 * x.shape[2], _tile_scale(x.device) << 20)
        if not torch.is_grad_enabled() and not self.training and (x.shape[1] - 1) // self.stride + 1 > rows:
            return self._forward_tiles(x, mask, rows)
        x = apply_mask(x, mask)
        h, new_mask = self.attn(self.norm_attn(x), mask)
        skip = self.skip_pool(x, mask) if self.skip_pool is not None else x
        x = apply_mask(skip, new_mask) + self.layer_scale_attn(h)
        x = x + self.layer_scale_ffn(apply_mask(self.ffn(self.norm_ffn(x)), new_mask))
        return x, new_mask

    def _forward_tiles(self, x: torch.Tensor, mask: torch.Tensor, rows: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Inference on long sequences: the same block, output rows in tiles of ``rows``.

        Each tile reads its input rows with the context its convs and its attention window need
        (keys and values ``window // 2`` output rows beyond the tile, recomputed: < 2% extra work) and
        the same ops run on the tile, so no temporary exceeds a few MB on CPUs (:func:`_tile_scale` times
        more on GPUs): buffers of T × C (let alone T × 4C) would be above glibc's mmap threshold on long
        videos, i.e. mapped and page-faulted afresh for every op. Only the block's output is allocated
        at full length.
        """
        attn, s = self.attn, self.stride
        half = attn.window // 2
        b, t, c = x.shape
        t_out = (t - 1) // s + 1
        new_mask = downsample_mask(mask, s)
        bias = _local_attention_bias(new_mask, half, x.dtype)  # (B, t_out + 2·half)
        fill = torch.finfo(x.dtype).min
        out = x.new_empty(b, t_out, c)

        for a in range(0, t_out, rows):
            e = min(a + rows, t_out)
            n_kv = e - a + 2 * half  # output rows [a − half, e + half) for keys / values
            xp = _rows_with_context(x, mask, s * (a - half) - 1, s * (e + half - 1) + 2,
                         transform=lambda p, m: apply_mask(self.norm_attn(p), m))
            q = _split_heads(attn.q_proj(attn.q_norm(attn.q_conv.from_padded(xp, n_kv)[:, half : half + e - a])), attn.heads)
            k = _split_heads(attn.k_proj(attn.k_norm(attn.k_conv.from_padded(xp, n_kv))), attn.heads)
            v = _split_heads(attn.v_proj(attn.v_norm(attn.v_conv.from_padded(xp, n_kv))), attn.heads)
            h = _local_attention_rows(q, k, v, bias[:, a : e + 2 * half], attn.window, 0.0, False)
            h = attn.out_proj(apply_mask(_merge_heads(h), new_mask[:, a:e]))
            if self.skip_pool is not None:
                pooled = _rows_with_context(x, mask, 2 * a - 1, 2 * e, value=fill,
                                            transform=lambda p, m: p.masked_fill(~m[..., None], fill))
                skip = self.skip_pool.from_padded(pooled, e - a)
            else:
                skip = apply_mask(x[:, a:e], mask[:, a:e])
            y = apply_mask(skip, new_mask[:, a:e]) + self.layer_scale_attn(h)
            out[:, a:e] = y + self.layer_scale_ffn(apply_mask(self.ffn(self.norm_ffn(y)), new_mask[:, a:e]))
        return out, new_mask


class TextBlock(nn.Module):
    """Pre-LN Transformer block with global self-attention (SnAG text encoder, conv disabled)."""

    def __init__(self, config: MSCLConfig):
        super().__init__()
        d = config.text_hidden_size
        self.norm_attn = nn.LayerNorm(d)
        self.attn = GlobalSelfAttention(d, config.num_attention_heads, config.attention_dropout, config.hidden_dropout)
        self.layer_scale_attn = LayerScale(d, config.layer_scale_init, config.drop_path)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.hidden_dropout)
        self.layer_scale_ffn = LayerScale(d, config.layer_scale_init, config.drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = apply_mask(x, mask)
        x = x + self.layer_scale_attn(self.attn(self.norm_attn(x), mask))
        return x + self.layer_scale_ffn(apply_mask(self.ffn(self.norm_ffn(x)), mask))


# --------------------------------------------------------------------------------------------
# encoders, fusion, heads
# --------------------------------------------------------------------------------------------


class MSCLVideoEncoder(nn.Module):
    """Conv projection + embedding convs (Z^0), optional PE, stem, and the pyramid branch (Z^1..Z^L)."""

    def __init__(self, config: MSCLConfig):
        super().__init__()
        c = config.hidden_size
        self.config = config
        self.embed_proj = nn.Linear(config.video_input_dim, c)
        convs, norms = [], []
        for i in range(config.num_embedding_convs):
            strided = config.video_input_stride > 1 and i == 0
            convs.append(MaskedConv(c, c, kernel_size=5 if strided else 3, stride=config.video_input_stride if strided else 1))
            norms.append(nn.LayerNorm(c))
        self.embed_convs = nn.ModuleList(convs)
        self.embed_norms = nn.ModuleList(norms)
        self.stem = nn.ModuleList(VideoBlock(config, 1) for _ in range(config.num_stem_blocks))
        # block l downsamples from level l-1's stride to level l's (the first keeps the embedding's grid)
        strides = config.level_strides
        self.branch = nn.ModuleList(
            VideoBlock(config, 1 if i == 0 else strides[i] // strides[i - 1]) for i in range(config.num_pyramid_levels)
        )
        self._pe_cache = {}

    def position_table(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._pe_cache:  # computed, not a buffer: nothing to restore after loading
            self._pe_cache[key] = sinusoid_table(self.config.max_video_length, self.config.hidden_size, device)
        return self._pe_cache[key]

    def forward(self, features: torch.Tensor, mask: torch.Tensor):
        """``features (B, T_in, Dv)``, ``mask (B, T_in)`` → embedding ``(B, T, C)``, its mask, the
        pyramid (per level ``(B, T_l, C)``) and the level masks."""
        rows = _tile_rows(features.shape[0] * max(features.shape[2], 3 * self.config.hidden_size),
                          _tile_scale(features.device) << 20)
        tiled = not torch.is_grad_enabled() and not self.training and features.shape[1] > rows
        if tiled:
            x, mask = self._embed_tiles(features, mask, rows)
        else:
            x = self.embed_proj(apply_mask(features, mask))
            for conv, norm in zip(self.embed_convs, self.embed_norms):
                x, mask = conv(x, mask)
                x = F.relu(norm(x))
            x = apply_mask(x, mask)
        embedding, embedding_mask = x, mask  # Z^0: before the position encoding, masked
        if self.config.video_use_abs_pe:
            x = add_position_encoding(x, mask, self.position_table(x.device), rows if tiled else None)
        for block in self.stem:
            x, mask = block(x, mask)
        levels, masks = [], []
        for block in self.branch:
            x, mask = block(x, mask)
            levels.append(x)
            masks.append(mask)
        return embedding, embedding_mask, levels, masks

    def _embed_tiles(self, features: torch.Tensor, mask: torch.Tensor, rows: int):
        """The embedding stage (projection, embedding convs, norms, ReLU, mask) at inference on long
        sequences, in tiles of ``rows`` output rows; the same ops on the same rows as the untiled stage.

        Each tile reads the input rows its convs need (for every conv, ``stride × tile + kernel − 1``
        rows of the stage before: a few rows of recomputed context), masked and zero outside the
        sequence as the convs' own zero padding would be. Only the output is allocated at full length:
        on a 32,768-clip video the untiled stage's T × 3C conv taps and its copies are hundreds of MB
        of fresh pages per call.
        """
        convs = [m.conv for m in self.embed_convs]
        masks = [mask]  # each stage's mask (booleans: cheap at full length)
        for conv in convs:
            masks.append(downsample_mask(masks[-1], conv.stride[0]))
        b, t_out = features.shape[0], masks[-1].shape[1]
        out = features.new_empty(b, t_out, self.config.hidden_size, dtype=self.embed_proj.weight.dtype)

        for a in range(0, t_out, rows):
            e = min(a + rows, t_out)
            spans = [(a, e)]  # rows of every stage's output this tile reads, from the last stage back
            for conv in reversed(convs):
                lo, hi = spans[0]
                s, p = conv.stride[0], conv.padding[0]
                spans.insert(0, (s * lo - p, s * (hi - 1) + p + 1))
            lo, hi = spans[0]
            x = self.embed_proj(_rows_with_context(features, masks[0], lo, hi))
            for j, (conv, norm) in enumerate(zip(self.embed_convs, self.embed_norms)):
                lo, hi = spans[j]
                # rows outside the sequence or masked: zero, as the untiled conv's padding and mask make them
                in_seq = F.pad(masks[j][:, max(lo, 0) : min(hi, masks[j].shape[1])],
                               (max(-lo, 0), max(hi - masks[j].shape[1], 0)), value=False)
                x = F.relu(norm(conv.valid(apply_mask(x, in_seq))))
            out[:, a:e] = apply_mask(x, masks[-1][:, a:e])
        return out, masks[-1]


class MSCLTextEncoder(nn.Module):
    """SnAG's text encoder: ``transformer`` (PE + background token + global blocks) or ``identity``
    (attention-pooled token prepended to the projected tokens)."""

    def __init__(self, config: MSCLConfig):
        super().__init__()
        d = config.text_hidden_size
        self.config = config
        self.embed_proj = nn.Linear(config.text_input_dim, d)
        self.kind = config.text_encoder_type
        if self.kind == "transformer":
            self.background_token = (
                nn.Parameter(torch.zeros(d)) if config.text_use_background_token else None
            )
            self.layers = nn.ModuleList(TextBlock(config) for _ in range(config.text_num_layers))
            self.attention_pool = None
        else:
            self.background_token = None
            self.layers = nn.ModuleList()
            self.attention_pool = GlobalSelfAttention(d, config.num_attention_heads, config.attention_dropout, 0.0)
        # tokens the output has beyond the input's: the background / pooled token 0
        self.added_tokens = 0 if self.kind == "transformer" and self.background_token is None else 1
        self._pe_cache = {}

    def position_table(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._pe_cache:
            self._pe_cache[key] = sinusoid_table(self.config.max_text_length, self.config.text_hidden_size, device)
        return self._pe_cache[key]

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N, L, Dt)`` token features → ``(N, L+1, D)`` with token 0 the background/pooled token."""
        x = self.embed_proj(apply_mask(features, mask))
        if self.kind == "transformer":
            if self.config.text_use_abs_pe:
                x = add_position_encoding(x, mask, self.position_table(x.device))
            if self.background_token is not None:
                bg = self.background_token.to(x.dtype)[None, None].expand(x.shape[0], 1, -1)
                x = torch.cat((bg, x), dim=1)
                mask = torch.cat((mask[:, :1], mask), dim=1)
            for layer in self.layers:
                x = layer(x, mask)
            return x, mask
        # identity: attention pooling over [masked mean, tokens], output 0 prepended to the tokens
        m = mask[..., None].to(x.dtype)
        mean = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
        seq = torch.cat((mean, x), dim=1)
        seq_mask = torch.cat((mask[:, :1] | True, mask), dim=1)
        pooled = self.attention_pool(seq, seq_mask)[:, :1]
        return torch.cat((pooled, x), dim=1), torch.cat((seq_mask[:, :1], mask), dim=1)


class FusionLayer(nn.Module):
    """One cross-attention modulation layer (SnAG §1.3): ``q ← norm(q)·scale + shift`` (no residual
    around the attention), then a LayerScale FFN residual."""

    def __init__(self, config: MSCLConfig):
        super().__init__()
        c, d = config.hidden_size, config.text_hidden_size
        self.heads = config.num_attention_heads
        self.attn_dropout = config.attention_dropout
        self.norm_video = nn.LayerNorm(c)
        self.norm_text = nn.LayerNorm(d)
        self.q_conv = DepthwiseConv(c, 1)
        self.q_norm = nn.LayerNorm(c)
        self.q_proj = nn.Linear(c, c)
        self.k_proj = nn.Linear(d, c)
        self.v_proj = nn.Linear(d, c)
        self.out_proj = nn.Linear(c, 2 * c)
        self.dropout = nn.Dropout(config.hidden_dropout)
        # adaln: non-affine LN of the modulated features; affine: modulate them as they are
        self.modulation_norm = nn.LayerNorm(c, elementwise_affine=False) if config.fusion_mode == "adaln" else nn.Identity()
        self.norm_ffn = nn.LayerNorm(c)
        self.ffn = FeedForward(c, config.hidden_dropout)
        self.layer_scale_ffn = LayerScale(c, config.layer_scale_init, config.drop_path)

    def forward(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        query_video_index: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``video (B', T, C)``; ``text (N, L, D)``; ``query_video_index (N,)`` maps each query to its
        row of ``video`` (``None`` when video already has one row per query)."""
        video = apply_mask(video, video_mask)
        q = self.video_query(video, video_mask)
        if query_video_index is not None:  # one row per (video, query) pair from here on
            if video.shape[0] == 1:
                # one video (inference): broadcast instead of copying it for every query
                n = query_video_index.shape[0]
                q = q.expand(n, -1, -1)
                video_mask = video_mask.expand(n, -1)
            else:
                q = q.index_select(0, query_video_index)
                video = video.index_select(0, query_video_index)
                video_mask = video_mask.index_select(0, query_video_index)
        kv = self.norm_text(text)
        k = _split_heads(self.k_proj(kv), self.heads)
        v = _split_heads(self.v_proj(kv), self.heads)
        out = global_attention(_split_heads(q, self.heads), k, v, text_mask, self.attn_dropout, self.training)
        out = self.dropout(self.out_proj(_merge_heads(out)))
        scale, shift = out.chunk(2, dim=-1)
        x = self.modulation_norm(apply_mask(video, video_mask)) * scale + shift
        x = x + self.layer_scale_ffn(apply_mask(self.ffn(self.norm_ffn(x)), video_mask))
        return x, video_mask

    def video_query(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """Attention queries of the (masked) video features alone, ``(B, T, C)``: in the first fusion
        layer they do not depend on the text, so inference computes them once per video."""
        q, _ = self.q_conv(self.norm_video(video), video_mask)
        return self.q_proj(self.q_norm(q))

    # -- eval-mode inference (see `_fuse_and_predict_rows`) ----------------------------------------
    def fold_text(self, text: torch.Tensor, text_mask: torch.Tensor, fold_query: bool) -> dict:
        """Per-query tensors of this layer's cross-attention in eval mode, in float32.

        ``text (N, L, D)``, ``text_mask (N, L)``. Exact algebra (no dropout in eval mode):

        * ``out_proj`` is linear and each head's attention weights sum to 1, so
          ``out_proj(concat_h A_h V_h) = Σ_h A_h (V_h W_o,hᵀ + b_o / h)``: the output projection is
          applied to the L value vectors of every head instead of to every video point.
        * ``fold_query`` (layers whose queries depend on the text): ``q_proj`` and ``q_norm``'s affine
          are folded into the keys, ``(W_q,h (γ⊙n + β) + b_q,h)·k_j / √d = n·k'_j + c_j`` with
          ``k'_j = γ ⊙ (W_q,hᵀ k_j) / √d`` and ``c_j = (W_q,h β + b_q,h)·k_j / √d``, so the video points
          need neither the C×C query projection nor the affine.

        Returns ``keys`` ``(N, h, L, d)`` (scaled by 1/√d) or, folded, ``(N, h, L, C)``; ``key_bias``
        ``(N, h, L)`` (``−inf`` at padded tokens, as the attention mask); ``values`` ``(N, h, L, 2C)``.
        """
        heads = self.heads
        t = F.layer_norm(text.float(), text.shape[-1:], self.norm_text.weight.float(), self.norm_text.bias.float(),
                         self.norm_text.eps)
        k = F.linear(t, self.k_proj.weight.float(), self.k_proj.bias.float())
        v = F.linear(t, self.v_proj.weight.float(), self.v_proj.bias.float())
        n, length, c = k.shape
        d = c // heads
        scale = d**-0.5
        k = k.view(n, length, heads, d).transpose(1, 2)  # (N, h, L, d)
        v = v.view(n, length, heads, d).transpose(1, 2)
        w_out = self.out_proj.weight.float().view(2 * c, heads, d)
        values = torch.einsum("nhld,ohd->nhlo", v, w_out) + self.out_proj.bias.float() / heads
        bias = torch.zeros(n, heads, length, device=text.device).masked_fill(~text_mask[:, None, :], float("-inf"))
        if not fold_query:
            return {"keys": k * scale, "key_bias": bias, "values": values}
        w_q = self.q_proj.weight.float()
        keys = torch.einsum("nhld,hdc->nhlc", k, w_q.view(heads, d, c)) * (self.q_norm.weight.float() * scale)
        q_bias = F.linear(self.q_norm.bias.float(), w_q, self.q_proj.bias.float()).view(heads, d)
        bias = bias + torch.einsum("nhld,hd->nhl", k, q_bias) * scale
        return {"keys": keys, "key_bias": bias, "values": values}

    def inference_weights(self, dtype: torch.dtype, first: bool, fused: bool = False) -> dict:
        """Eval-mode weights of this layer for :func:`_fuse_and_predict_rows` (``first``: the layer whose
        queries come from the video alone; the others need ``norm_video`` and ``q_conv`` per query;
        ``fused``: the FFN's weights packed for oneDNN's fused linear as well)."""
        adaln = isinstance(self.modulation_norm, nn.LayerNorm)
        out = {
            "ffn": self.ffn.inference_weights(self.norm_ffn, self.layer_scale_ffn, dtype, fused=fused),
            "adaln": adaln, "mod_eps": self.modulation_norm.eps if adaln else 0.0,
        }
        if adaln:  # explicit unit affine: the same LayerNorm, and ATen's faster kernel on CPUs
            out["mod_unit"] = (torch.ones_like(self.norm_ffn.weight, dtype=torch.float32),
                               torch.zeros_like(self.norm_ffn.weight, dtype=torch.float32))
        if not first:
            out.update(norm_video_w=self.norm_video.weight.float(), norm_video_b=self.norm_video.bias.float(),
                       norm_video_eps=self.norm_video.eps, dw=self.q_conv.tap_weights(dtype), q_norm_eps=self.q_norm.eps,
                       q_norm_unit=(torch.ones_like(self.q_norm.weight, dtype=dtype),
                                    torch.zeros_like(self.q_norm.weight, dtype=dtype)))
        return out


class MSCLFusion(nn.Module):
    """Two shared fusion layers and a final LayerNorm, applied to every pyramid level."""

    def __init__(self, config: MSCLConfig):
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(config) for _ in range(config.fusion_num_layers))
        self.norm_out = nn.LayerNorm(config.hidden_size)

    def forward(self, video, video_mask, text, text_mask, query_video_index):
        x, mask = video, video_mask
        for i, layer in enumerate(self.layers):
            x, mask = layer(x, mask, text, text_mask, query_video_index if i == 0 else None)
        if not self.layers:
            x, mask = x.index_select(0, query_video_index), mask.index_select(0, query_video_index)
        return self.norm_out(x), mask


class MSCLHead(nn.Module):
    """Shared conv head: ``n × [masked conv k3 → LN → ReLU]`` then a masked conv to ``out_dim``."""

    def __init__(self, config: MSCLConfig, out_dim: int, num_levels: int = 0):
        super().__init__()
        c = config.hidden_size
        self.convs = nn.ModuleList(MaskedConv(c, c, 3) for _ in range(config.head_num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in range(config.head_num_layers))
        self.out = MaskedConv(c, out_dim, 3, bias=True)
        # per-level learnable scalar of the regression head (SnAG's Scale), empty for classification
        self.level_scales = nn.Parameter(torch.ones(num_levels)) if num_levels else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, level: int) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x, _ = conv(x, mask)
            x = F.relu(norm(x))
        out, _ = self.out(x, mask)
        if self.level_scales is not None:
            out = F.relu(out * self.level_scales[level])
        return out

    def inference_weights(self, dtype: torch.dtype) -> dict:
        """Eval-mode weights for :func:`_fuse_and_predict_rows`: the hidden convs as ``(3, C, C)`` per-tap
        matrices, the LayerNorms, and the output conv as its ``(3·O, C)`` tap matrix with its bias."""
        return {
            "convs": [conv.conv.weight.permute(2, 1, 0).to(dtype).contiguous() for conv in self.convs],
            "norms": [(norm.weight.to(dtype), norm.bias.to(dtype), norm.eps) for norm in self.norms],
            "out_taps": self.out.tap_weights(dtype),
            "out_bias": self.out.conv.bias.to(dtype),
        }


# --------------------------------------------------------------------------------------------
# eval-mode fusion + heads (the inference fast path of `ground`)
# --------------------------------------------------------------------------------------------
#
# `fuse_and_predict` (training, and the reference) runs fusion + heads level by level on
# (queries × points) tensors. In eval mode `ground` computes the same function with less work:
#
# * everything that depends on the video alone (the first fusion layer's queries and modulation
#   input) is computed once per video and shared by all its queries;
# * exact algebra on the linear maps (`FusionLayer.fold_text`, `FeedForward.inference_weights`):
#   out_proj applied to the ≤ ~50 value vectors per head instead of to every point, q_proj and the
#   q_norm affine of the later layers folded into the keys, LayerScale folded into fc2;
# * every k=3 conv of the heads as three accumulating GEMMs on shifted rows (no tap buffer);
# * all pyramid levels laid end to end in one row sequence, separated by one zero row (a k=3 conv
#   then sees exactly its zero padding), so the work is a few large GEMMs instead of many small
#   ones, and it is cut into row tiles (with a halo for the convs) of a few MB on CPUs, so that no
#   buffer ever reaches glibc's mmap threshold and the allocator reuses its heap, and of hundreds of
#   MB on GPUs, where each op of a tile is a kernel launch (`_tile_scale`);
# * with shape buckets (bf16 / fp16 on CPUs by default), each call's rows, queries and text length are
#   rounded up to a small set of sizes (`_shape_bucket`), padded so that nothing padded reaches an
#   output: oneDNN compiles and caches a kernel per GEMM shape, and exact shapes would add kernels (and
#   their memory) for every new video length (docs/performance.md, "Shape buckets").
#
# Precision: the residual stream, LayerNorm statistics and the folding are float32 for any compute
# dtype; GEMMs, GELU and the heads run in the model's dtype (bf16 on AMX / AVX-512-BF16 CPUs and
# GPUs). `_fuse_and_predict_rows` is a pure function of tensors so that `torch.compile` can fuse
# its elementwise chains; the eager function gives the same results where compile is unavailable.


def _shifted_sum(taps: torch.Tensor, width: int, start: int = 0) -> torch.Tensor:
    """'Valid' kernel-3 conv from its tap products: ``taps (N, R, ·)`` → ``(N, R − 2, width)``, using
    the columns ``[start, start + 3·width)`` (tap ``k`` multiplies the input at offset ``k − 1``)."""
    a, b, c = start, start + width, start + 2 * width
    out = taps[:, :-2, a:b] + taps[:, 1:-1, b:c]
    return out.add_(taps[:, 2:, c : c + width])


def _depthwise_k3(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """'Valid' depthwise kernel-3 conv: ``x (N, R, C)``, ``taps (3, C)`` → ``(N, R − 2, C)``."""
    out = x[:, :-2] * taps[0]
    return out.addcmul_(x[:, 1:-1], taps[1]).addcmul_(x[:, 2:], taps[2])


def _ffn_residual(x: torch.Tensor, w: dict) -> torch.Tensor:
    """``x + γ·FFN(norm(x))`` with ``γ`` folded into ``fc2``: ``x``, the residual stream, is float32 and
    stays so (a small update survives the addition); the FFN itself runs in the weights' dtype.

    With packed weights (``w1_packed``, bf16 on CPUs: :func:`_fused_linear_available`), each GEMM is one
    oneDNN call with its bias (and the GELU) applied to the float32 accumulator before the one rounding
    to bf16; the eager path rounds after the GEMM, again after the bias and after the GELU. In eager
    PyTorch on CPUs with bf16 matrix units the separate bias add and GELU over the (rows × 4C) hidden
    layer cost about as much as the GEMMs themselves (docs/performance.md)."""
    h = F.layer_norm(x, x.shape[-1:], w["norm_w"], w["norm_b"], w["norm_eps"]).to(w["w1"].dtype)
    if "w1_packed" in w:
        h = torch.ops.mkldnn._linear_pointwise(h, w["w1_packed"], w["b1"], "gelu", [], "none")
        return x + torch.ops.mkldnn._linear_pointwise(h, w["w2_packed"], w["b2"], "none", [], "").float()
    # biases added after the GEMMs, where torch.compile fuses them into the next elementwise kernel
    h = F.gelu(F.linear(h, w["w1"]).add_(w["b1"]))
    return x + F.linear(h, w["w2"]).add_(w["b2"]).float()


def _fuse_and_predict_rows(
    video_query: torch.Tensor,
    video_mod: torch.Tensor,
    row_mask: torch.Tensor,
    level_scale: torch.Tensor,
    text: List[dict],
    weights: dict,
    heads: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fusion + both heads in eval mode for ``n`` queries over ``R`` rows of the concatenated pyramid.

    Args:
        video_query: ``(R, C)`` the first fusion layer's attention queries (video only).
        video_mod: ``(R, C)`` the first layer's modulation input (``modulation_norm(video)``).
        row_mask: ``(R, 1)`` 1 at pyramid points, 0 at the separator / padding rows.
        level_scale: ``(R, 1)`` the regression head's per-level scale of each row.
        text: per fusion layer, the call layout of :meth:`FusionLayer.fold_text` for the ``n`` queries:
            first layer ``keys (n·h·L, C)`` (block-diagonal over heads), ``key_bias (n·h·L, 1)``; later
            layers ``keys (n, h·L, C)``, ``key_bias (n, h·L, 1)``; all ``values (n, h·L, 2C)``.
        weights: :meth:`MSCLForTemporalGrounding._inference_weights`.
        heads: attention heads.

    Returns:
        ``(logits (n, R − 2·halo), offsets (n, R − 2·halo, 2))`` for the rows ``[halo, R − halo)``,
        ``halo = (fusion layers − 1) + head layers + 1`` (each k=3 conv consumes one row per side).

    Precision: GEMMs, GELU, softmax, the depthwise conv and the heads run in ``video_query``'s dtype;
    the residual stream of the fusion layers is float32, and every LayerNorm computes its statistics
    in float32. No op mixes dtypes (casts are explicit, so eager CPU kernels stay vectorised).
    """
    r, c = video_query.shape
    dtype = video_query.dtype
    layers = weights["layers"]
    # Attention logits are computed transposed, (keys, rows): the softmax over a query's ≤ ~50 keys
    # then runs along a strided axis, vectorised across the rows (on CPUs an order of magnitude faster
    # than a softmax over a last axis of ~10 elements).
    # first fusion layer: queries from the video alone, one GEMM for all n queries' keys
    values = text[0]["values"]
    n, hl = values.shape[0], values.shape[1]
    logits = torch.addmm(text[0]["key_bias"], text[0]["keys"], video_query.t())  # (n·h·L, R)
    attn = torch.softmax(logits.view(n, heads, hl // heads, r), dim=2).view(n, hl, r)
    mod = torch.bmm(attn.transpose(1, 2), values)  # (n, R, 2C): out_proj already applied to the values
    x = torch.addcmul(mod[..., c:], video_mod, mod[..., :c]).float()  # (n, R, C) residual stream
    x = _ffn_residual(x, layers[0]["ffn"])
    lo = 0  # x holds the rows [lo, R − lo)
    for w, t in zip(layers[1:], text[1:]):
        u = F.layer_norm(x, (c,), w["norm_video_w"], w["norm_video_b"], w["norm_video_eps"]).to(dtype)
        z = _depthwise_k3(u.mul_(row_mask[lo : r - lo]), w["dw"])  # q_conv (zero input at separator rows)
        lo += 1
        rows = r - 2 * lo
        ones, zeros = w["q_norm_unit"]  # q_norm's affine and q_proj are folded into the keys
        y = F.layer_norm(z, (c,), ones, zeros, w["q_norm_eps"])
        logits = torch.baddbmm(t["key_bias"], t["keys"], y.transpose(1, 2))  # (n, h·L, rows)
        attn = torch.softmax(logits.view(n, heads, hl // heads, rows), dim=2).view(n, hl, rows)
        mod = torch.bmm(attn.transpose(1, 2), t["values"])
        base = x[:, 1:-1]
        if w["adaln"]:
            ones, zeros = w["mod_unit"]
            base = F.layer_norm(base, (c,), ones, zeros, w["mod_eps"])
        x = torch.addcmul(mod[..., c:], base.to(dtype), mod[..., :c]).float()
        x = _ffn_residual(x, w["ffn"])
    norm_w, norm_b, norm_eps = weights["norm_out"]
    f = F.layer_norm(x, (c,), norm_w, norm_b, norm_eps).to(dtype).mul_(row_mask[lo : r - lo])
    # Heads on the n queries' rows laid end to end: each query's rows start and end with separator rows
    # (zeroed before every conv), so a 'valid' conv along the flat sequence is each query's conv, and
    # every k=3 conv is three accumulating GEMMs on shifted row ranges (no tap buffer, no shifted adds).
    rows = r - 2 * lo
    flat = f.view(n * rows, c)
    flat_mask = row_mask[lo : r - lo].repeat(n, 1)
    outs = []
    for hw in weights["heads"]:
        h = flat
        for k, ((nw, nb, eps), taps) in enumerate(zip(hw["norms"], hw["convs"])):
            h = _conv3_rows(h, taps)
            h = F.layer_norm(h, h.shape[-1:], nw, nb, eps).relu_().mul_(flat_mask[k + 1 : n * rows - k - 1])
        out_taps = hw["out_taps"]  # (3·O, C), O = 1 or 2: one small GEMM and shifted adds
        width = out_taps.shape[0] // 3
        out = _shifted_sum(F.linear(h, out_taps)[None], width)[0] + hw["out_bias"]
        # query i's outputs: flat rows [i·rows, i·rows + rows − 2·depth) (out has O ≤ 2 columns: a cheap pad)
        depth = len(hw["convs"]) + 1
        outs.append(F.pad(out, (0, 0, 0, 2 * depth)).view(n, rows, width)[:, : rows - 2 * depth])
    hlo = lo + len(weights["heads"][0]["convs"]) + 1  # the outputs are the tile's rows [hlo, R − hlo)
    logits = outs[0][..., 0]
    offsets = F.relu(outs[1] * level_scale[hlo : r - hlo])
    return logits, offsets


def _conv3_rows(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """'Valid' kernel-3 conv along the rows of ``x (N, C)``: ``taps (3, C, O)`` → ``(N − 2, O)``, as three
    GEMMs accumulating into one output (the same sum, in the same order, as the tap products)."""
    out = torch.mm(x[:-2], taps[0])
    out.addmm_(x[1:-1], taps[1])
    return out.addmm_(x[2:], taps[2])


def _text_call_layout(folded: List[dict], index: torch.Tensor, length: int, dtype: torch.dtype) -> List[dict]:
    """The queries ``index`` of :meth:`FusionLayer.fold_text`'s output, trimmed to ``length`` tokens, in
    the layout of :func:`_fuse_and_predict_rows`'s ``text`` argument."""
    out = []
    for i, f in enumerate(folded):
        keys = f["keys"][index, :, :length]  # (n, h, L, d) first layer, (n, h, L, C) later ones
        bias = f["key_bias"][index, :, :length]  # (n, h, L)
        n, heads = keys.shape[:2]
        values = f["values"][index, :, :length].reshape(n, heads * length, -1).to(dtype)
        if i == 0:
            # the first layer's queries are shared by all n queries: one (n·h·L, C) key matrix,
            # block-diagonal over the heads (head j reads only its d channels)
            d = keys.shape[-1]
            block = keys.new_zeros(n, heads, length, heads * d)
            for j in range(heads):
                block[:, j, :, j * d : (j + 1) * d] = keys[:, j]
            out.append({"keys": block.view(-1, heads * d).to(dtype), "key_bias": bias.reshape(-1, 1).to(dtype),
                        "values": values})
        else:
            c = keys.shape[-1]
            out.append({"keys": keys.reshape(n, heads * length, c).to(dtype),
                        "key_bias": bias.reshape(n, heads * length, 1).to(dtype), "values": values})
    return out


def _shape_bucket(size: int, per_octave: int, min_step: int = 1) -> int:
    """``size`` rounded up to a multiple of ``max(min_step, 2^⌊log2 size⌋ / per_octave)``: a geometric set
    of sizes (``per_octave`` per doubling, so at most ``1 / per_octave`` of padding beyond the first octave)."""
    step = max(min_step, (1 << (max(size, 1).bit_length() - 1)) // per_octave)
    return -(-max(size, 1) // step) * step


_FUSED_LINEAR: Optional[bool] = None


def _fused_linear_available() -> bool:
    """Whether oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``, what inductor emits for
    CPU linears, with prepacked weights) runs here and computes ``gelu(x·Wᵀ + b)``: checked once per
    process on a small input against the unfused ops, so a torch build without it, or one whose op
    means something else, falls back to the eager FFN (the same function, rounded more often)."""
    global _FUSED_LINEAR
    if _FUSED_LINEAR is None:
        try:
            g = torch.Generator().manual_seed(0)
            w, b, x = (torch.randn(*shape, generator=g) for shape in ((16, 32), (16,), (5, 32)))
            bf = torch.bfloat16
            packed = torch.ops.mkldnn._reorder_linear_weight(w.to(bf), None)
            got = torch.ops.mkldnn._linear_pointwise(x.to(bf), packed, b.to(bf), "gelu", [], "none").float()
            want = F.gelu(F.linear(x.to(bf).float(), w.to(bf).float(), b.to(bf).float()))
            _FUSED_LINEAR = bool(torch.allclose(got, want, rtol=2e-2, atol=2e-2))
        except Exception:  # no oneDNN, or an op that has changed: the eager FFN
            _FUSED_LINEAR = False
        if not _FUSED_LINEAR:
            logger.info("oneDNN's fused linear is not available; the bf16 fast path runs its FFN eagerly")
    return _FUSED_LINEAR


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


# torch.compile of `_fuse_and_predict_rows`: built on first use; if compiling fails once (no C++
# compiler, unsupported platform, ...), the eager function is used for the rest of the process
_COMPILED_ROWS = None
_COMPILE_ERROR: Optional[str] = None


def _run_rows(use_compile: bool, *args):
    global _COMPILED_ROWS, _COMPILE_ERROR
    if use_compile and _COMPILE_ERROR is None:
        try:
            if _COMPILED_ROWS is None:
                # dynamic shapes: rows, queries per call and text length vary from call to call
                _COMPILED_ROWS = torch.compile(_fuse_and_predict_rows, dynamic=True)
            return _COMPILED_ROWS(*args)
        except Exception as exc:  # any compile failure: the eager function computes the same
            _COMPILE_ERROR = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            logger.warning(f"torch.compile of the inference fast path failed ({_COMPILE_ERROR}); running it eagerly")
    return _fuse_and_predict_rows(*args)


class _EvalFusion:
    """Fusion + heads of one video in eval mode (the fast path of ``ground``): built once per video from
    its encoded pyramid, then called on each chunk of encoded queries. Returns per-level logits,
    offsets and masks, as :meth:`MSCLForTemporalGrounding.fuse_and_predict` does."""

    def __init__(self, model: "MSCLForTemporalGrounding", levels, level_masks, use_compile: bool, tile_rows: int,
                 shape_buckets: bool = False):
        first = model.fusion.layers[0]
        dtype = levels[0].dtype
        self.model, self.level_masks, self.use_compile = model, level_masks, use_compile
        self.shape_buckets = shape_buckets
        self.heads = first.heads
        self.dtype = dtype
        # bf16 on CPUs, eager: the FFN's GEMMs with their bias and GELU fused (torch.compile fuses on its own)
        fused = dtype == torch.bfloat16 and levels[0].device.type == "cpu" and not use_compile and _fused_linear_available()
        self.weights = model._inference_weights(dtype, fused=fused)
        # all levels end to end: [halo zero rows, level 0, 0, level 1, 0, ..., level L−1, halo zero rows]
        self.halo = len(model.fusion.layers) + model.config.head_num_layers
        self.lengths = [x.shape[1] for x in levels]
        self.starts, pos = [], self.halo
        for t in self.lengths:
            self.starts.append(pos)
            pos += t + 1
        self.rows = pos - 1 + self.halo
        self.tile_rows = max(tile_rows, 4 * self.halo + 1)
        # With shape buckets, every call's rows, queries and text length are rounded up to a small set of
        # sizes; the rows beyond the video are more zero rows (row mask 0, outputs dropped), so the buffers
        # reach one tile beyond the video.
        self.call_rows = _shape_bucket(self.rows, 8, 16) if shape_buckets else self.rows
        buffer_rows = max(self.call_rows, self.rows + self.tile_rows) if shape_buckets else self.rows
        c = levels[0].shape[-1]
        self.query = levels[0].new_zeros(buffer_rows, c)
        self.mod = levels[0].new_zeros(buffer_rows, c)
        self.row_mask = levels[0].new_zeros(buffer_rows, 1)
        self.level_scale = levels[0].new_zeros(buffer_rows, 1)
        # the first layer's video-only work, once per video, in row tiles (q_conv reads one row of context)
        rows = max(1, tile_rows)
        for level, (x, s, t) in enumerate(zip(levels, self.starts, self.lengths)):
            for a in range(0, t, rows):
                e = min(a + rows, t)
                lo, hi = max(a - 1, 0), min(e + 1, t)
                xp = F.pad(first.norm_video(x[:, lo:hi]), (0, 0, lo - (a - 1), (e + 1) - hi))
                self.query[s + a : s + e] = first.q_proj(first.q_norm(first.q_conv.from_padded(xp, e - a)))[0]
                self.mod[s + a : s + e] = first.modulation_norm(x[0, a:e])
            self.row_mask[s : s + t] = 1
            self.level_scale[s : s + t] = model.reg_head.level_scales[level].to(dtype)

    @classmethod
    def applies(cls, model, levels, level_masks) -> bool:
        """Whether the fast path computes exactly ``fuse_and_predict``: one unpadded video, eval mode, and
        no autocast (under autocast, ``ground`` keeps the reference path and autocast's semantics; the
        fast path's precision follows the model's dtype instead)."""
        return (not model.training and len(model.fusion.layers) > 0 and levels[0].shape[0] == 1
                and not _autocast_enabled(levels[0].device.type) and all(bool(m.all()) for m in level_masks))

    def __call__(self, text: torch.Tensor, text_mask: torch.Tensor):
        model, halo, rows = self.model, self.halo, self.rows
        folded = [layer.fold_text(text, text_mask, fold_query=i > 0) for i, layer in enumerate(model.fusion.layers)]
        n_total = text.shape[0]
        out_rows = rows - 2 * halo
        logits = text.new_empty(n_total, out_rows, dtype=self.dtype)
        offsets = text.new_empty(n_total, out_rows, 2, dtype=self.dtype)
        # queries of similar length share a call (fewer padded keys); several queries per call while
        # they fit the row budget, else one query in row tiles
        per_call = max(1, self.tile_rows // self.call_rows)
        order = torch.argsort(text_mask.sum(1), stable=True)
        tile = self.tile_rows - 2 * halo
        for g in range(0, n_total, per_call):
            index = order[g : g + per_call]
            n = len(index)
            length = int(text_mask[index].any(0).nonzero().max()) + 1
            if self.shape_buckets:
                # a bucketed number of queries (copies of the last one, outputs dropped) and of text keys
                # (padded tokens: key bias −inf, attention weight exactly 0)
                index = torch.cat([index, index[-1:].expand(min(_shape_bucket(n, 2), per_call) - n)])
                length = min(_shape_bucket(length, 8, 8), text.shape[1])
            call_text = _text_call_layout(folded, index, length, self.dtype)
            for s in range(halo, rows - halo, tile if per_call == 1 else out_rows):
                e = min(s + tile, rows - halo) if per_call == 1 else rows - halo
                a, b = s - halo, e + halo
                if self.shape_buckets:
                    b = a + (min(_shape_bucket(b - a, 8, 16), self.tile_rows) if per_call == 1 else self.call_rows)
                lg, off = _run_rows(self.use_compile, self.query[a:b], self.mod[a:b], self.row_mask[a:b],
                                    self.level_scale[a:b], call_text, self.weights, self.heads)
                logits[index[:n], s - halo : e - halo] = lg[:n, : e - s]
                offsets[index[:n], s - halo : e - halo] = off[:n, : e - s]
        level_logits, level_offsets, masks = [], [], []
        for s, t, m in zip(self.starts, self.lengths, self.level_masks):
            level_logits.append(logits[:, s - halo : s - halo + t])
            level_offsets.append(offsets[:, s - halo : s - halo + t])
            masks.append(m.expand(n_total, -1))
        return level_logits, level_offsets, masks


# --------------------------------------------------------------------------------------------
# pretrained model
# --------------------------------------------------------------------------------------------


class MSCLPreTrainedModel(PreTrainedModel):
    """Weight initialisation and Hub plumbing shared by MSCL models."""

    config_class = MSCLConfig
    # no base model to strip or add when loading: MSCLForTemporalGrounding *is* the whole network, so the
    # prefix stays transformers' default "" (`model.base_model` is the model itself)
    base_model_prefix = ""
    main_input_name = "video_features"
    # activation checkpointing (`model.activation_checkpointing_enable()` / TrainingArguments(activation_checkpointing=True))
    # recomputes fusion + heads level by level in the backward pass: their per-query activations are
    # most of a training step's memory (see MSCLForTemporalGrounding.fuse_and_predict)
    supports_gradient_checkpointing = True
    # the forward takes no **kwargs; stated explicitly so the Trainer never scales the loss itself
    accepts_loss_kwargs = False
    _no_split_modules = ["VideoBlock", "TextBlock", "FusionLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """SnAG's init (§1.5): PyTorch default for linear/conv weights, every bias zero, LN (1, 0),
        LayerScale at its init value, per-level scales 1, background token trunc-normal(0, 0.02)."""
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, DepthwiseConv):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, LayerScale):
            module.gamma.fill_(module.init_value)
        elif isinstance(module, MSCLHead):
            if module.level_scales is not None:
                module.level_scales.fill_(1.0)
        elif isinstance(module, MSCLTextEncoder) and module.background_token is not None:
            nn.init.trunc_normal_(module.background_token, std=0.02, a=-2.0, b=2.0)
        elif isinstance(module, MSCLForTemporalGrounding):
            prior = self.config.head_prior_prob
            bias = -math.log((1 - prior) / prior) if prior > 0 else 0.0
            module.cls_head.out.conv.bias.fill_(bias)
            module.loss_normalizer.fill_(self.config.loss_normalizer_init)


class MSCLForTemporalGrounding(MSCLPreTrainedModel):
    """MSCL for video temporal grounding.

    ``forward`` takes a video-centric batch (B videos, N queries, each query pointing at its video)
    and returns per-level logits/offsets and, with ``labels``, the four loss terms of Eq. 13 computed
    by :class:`~modeling_mscl.losses_mscl.MSCLLoss` (``self.criterion``). :meth:`ground` runs inference
    on one whole video and any number of queries; its moments come from
    :func:`~modeling_mscl.processing_mscl.post_process_grounding`.

    Example::

        model = MSCLForTemporalGrounding(MSCLConfig.from_preset("tacos_c3d"))
        moments = model.ground(video_features, [query_tokens])  # [(K, 3) start, end, score in grid units]
    """

    def __init__(self, config: MSCLConfig):
        super().__init__(config)
        self.text_encoder = MSCLTextEncoder(config)
        self.video_encoder = MSCLVideoEncoder(config)
        self.fusion = MSCLFusion(config)
        self.cls_head = MSCLHead(config, 1)
        self.reg_head = MSCLHead(config, 2, num_levels=config.num_pyramid_levels)
        # the loss (no parameters or buffers: it adds nothing to the state dict)
        self.criterion = MSCLLoss(config)
        # EMA of the positive count per optimiser step (SnAG §3), used by the criterion; a buffer of the
        # model so that it is saved with the weights under the key "loss_normalizer"
        self.register_buffer("loss_normalizer", torch.tensor(float(config.loss_normalizer_init)), persistent=True)
        # set by activation_checkpointing_enable(), with self._gradient_checkpointing_func
        self.gradient_checkpointing = False
        self.post_init()

    # ----------------------------------------------------------------------------------------
    # building blocks of the forward, reusable by `ground`
    # ----------------------------------------------------------------------------------------
    def encode_video(self, video_features: torch.Tensor, video_mask: torch.Tensor):
        """``(B, T_in, Dv)`` → (Z^0 ``(B, T, C)``, its mask, pyramid levels, level masks)."""
        return self.video_encoder(video_features, video_mask)

    def _encode_padded_video(self, video: torch.Tensor, t_pad: int, trim: bool = False):
        """Encode one video ``(T, Dv)`` zero-padded under its mask to ``t_pad`` steps, in the model's dtype;
        ``trim`` drops every level's masked tail (the valid points are the same as unpadded). Returns the
        pyramid levels and their masks."""
        t_valid = video.shape[0]
        # no copy of the whole input where there is nothing to pad (the encoder reads it in row tiles)
        padded = (F.pad(video, (0, 0, 0, t_pad - t_valid)) if t_pad > t_valid else video)[None].to(self.dtype)
        vmask = (torch.arange(t_pad, device=video.device) < t_valid)[None]
        _, _, levels, level_masks = self.encode_video(padded, vmask)
        if trim:
            kept = [int(m[0].sum()) for m in level_masks]
            levels = [x[:, :k] for x, k in zip(levels, kept)]
            level_masks = [m[:, :k] for m, k in zip(level_masks, kept)]
        return levels, level_masks

    def encode_text(self, text_features: torch.Tensor, text_mask: torch.Tensor):
        """``(N, L, Dt)`` → ``(N, L+1, D)`` and its mask."""
        return self.text_encoder(text_features, text_mask)

    def _fuse_level(self, x, m, text, text_mask, query_video_index, level: int):
        f, fm = self.fusion(x, m, text, text_mask, query_video_index)
        return f, fm, self.cls_head(f, fm, level)[..., 0], self.reg_head(f, fm, level)

    def fuse_and_predict(self, levels, level_masks, text, text_mask, query_video_index):
        """Fusion + heads on every level; returns per-level fused features, logits, offsets, masks.

        With activation checkpointing on (training only), each level's fusion + heads keep only their
        inputs for the backward pass and are recomputed there: the per-query activations of the fusion
        FFNs and the head convs (N queries × all pyramid points × several C) are then never all alive.
        """
        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        fused, logits, offsets, masks = [], [], [], []
        for level, (x, m) in enumerate(zip(levels, level_masks)):
            if checkpointed:
                f, fm, logit, offset = self._gradient_checkpointing_func(
                    self._fuse_level, x, m, text, text_mask, query_video_index, level
                )
            else:
                f, fm, logit, offset = self._fuse_level(x, m, text, text_mask, query_video_index, level)
            fused.append(f)
            masks.append(fm)
            logits.append(logit)
            offsets.append(offset)
        return fused, logits, offsets, masks

    # ----------------------------------------------------------------------------------------
    def forward(
        self,
        video_features: torch.Tensor,
        video_mask: Optional[torch.Tensor] = None,
        text_features: Optional[torch.Tensor] = None,
        text_mask: Optional[torch.Tensor] = None,
        query_video_index: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        contrastive_query_index: Optional[torch.Tensor] = None,
        contrastive_seeds: Optional[torch.Tensor] = None,
        contrastive_normalizer: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[MSCLOutput, Tuple[torch.Tensor, ...]]:
        r"""
        Args:
            video_features: ``(B, T_in, Dv)`` clip features, zero-padded.
            video_mask: ``(B, T_in)`` bool, True at valid steps (default: all valid).
            text_features: ``(N, L, Dt)`` token features of the N queries.
            text_mask: ``(N, L)`` bool (default: all valid).
            query_video_index: ``(N,)`` video of each query (default: ``arange(N)`` when ``N == B``).
            labels: ``(N, 2)`` each query's ``(start, end)`` on the model grid (input feature index
                divided by ``video_input_stride``). Enables the losses.
            contrastive_query_index: ``(B,)`` the query drawn for each video by query-centric
                sampling (Eq. 10). Default: drawn here, uniformly, from ``contrastive_seeds``.
            contrastive_seeds: ``(B,)`` int64 per-video seeds (from (seed, epoch, video id)) for
                the query draw and the negatives; default: the global torch RNG.
            contrastive_normalizer: ``(2,)`` divisors for the (within, cross) sums when the reduction
                is ``"mean"``. Default: ``max(pairs, 1)`` of this batch, with the pairs summed across
                processes and the divisor divided by the world size under ``torch.distributed`` in
                training mode (so DDP's gradient averaging yields the gradient of the global mean). A
                trainer accumulating gradients passes ``criterion.contrastive_normalizer`` of the counts
                summed over the micro-batches of the step.
            output_hidden_states: also return the encoders' and the fusion's hidden states.
            return_dict: ``False`` returns ``MSCLOutput.to_tuple()`` (default: ``config.return_dict``).
        """
        cfg = self.config
        if text_features is None:
            raise ValueError("text_features are required")
        b, n = video_features.shape[0], text_features.shape[0]
        if video_mask is None:
            video_mask = torch.ones(video_features.shape[:2], dtype=torch.bool, device=video_features.device)
        if text_mask is None:
            text_mask = torch.ones(text_features.shape[:2], dtype=torch.bool, device=text_features.device)
        if query_video_index is None:
            if n != b:
                raise ValueError(f"query_video_index is required when the batch has {n} queries for {b} videos")
            query_video_index = torch.arange(n, device=video_features.device)
        video_mask, text_mask = video_mask.bool(), text_mask.bool()
        query_video_index = query_video_index.long()
        validate_grounding_batch(cfg, video_features, video_mask, text_features, text_mask, query_video_index, labels)
        stride_all = cfg.pyramid_stride * cfg.video_input_stride
        if video_features.shape[1] % stride_all:
            raise ValueError(
                f"padded video length {video_features.shape[1]} must be a multiple of {stride_all} "
                "(top pyramid stride × input stride); pad the batch (the collator and `ground` do)"
            )

        text, tmask = self.encode_text(text_features, text_mask)
        embedding, embedding_mask, levels, level_masks = self.encode_video(video_features, video_mask)
        fused, logits, offsets, masks = self.fuse_and_predict(levels, level_masks, text, tmask, query_video_index)

        losses = {}
        if labels is not None:
            losses = self.criterion(
                labels=labels, query_video_index=query_video_index, logits=logits, offsets=offsets, masks=masks,
                embedding=embedding, embedding_mask=embedding_mask, levels=levels, level_masks=level_masks,
                loss_normalizer=self.loss_normalizer, contrastive_query_index=contrastive_query_index,
                contrastive_seeds=contrastive_seeds, contrastive_normalizer=contrastive_normalizer,
            )

        hidden = output_hidden_states if output_hidden_states is not None else cfg.output_hidden_states
        output = MSCLOutput(
            **losses,
            logits=tuple(logits),
            offsets=tuple(offsets),
            masks=tuple(masks),
            text_hidden_states=text if hidden else None,
            text_mask=tmask if hidden else None,
            video_hidden_states=tuple(levels) if hidden else None,
            video_embeddings=embedding if hidden else None,
            video_masks=tuple(level_masks) if hidden else None,
            fused_hidden_states=tuple(fused) if hidden else None,
        )
        return_dict = return_dict if return_dict is not None else cfg.return_dict
        return output if return_dict else output.to_tuple()

    # ----------------------------------------------------------------------------------------
    # loss helpers for trainers (the loss itself is self.criterion)
    # ----------------------------------------------------------------------------------------
    def update_loss_normalizer(self, num_positives: Union[int, float, torch.Tensor]) -> float:
        """EMA update of the positive-count normaliser, once per optimiser step, after backward.

        ``num_positives`` must be the count summed over the step's micro-batches and processes.
        """
        return self.criterion.update_normalizer(self.loss_normalizer, num_positives)

    def count_contrastive_pairs(self, labels, video_mask, contrastive_query_index) -> torch.Tensor:
        """(within, cross) pair counts of a batch without running the network (for trainers that
        normalise over several micro-batches)."""
        # the masks of Z^0 and of every level, as the video encoder downsamples them
        mask = downsample_mask(video_mask.bool(), self.config.video_input_stride)
        level_masks = [downsample_mask(mask, stride) for stride in self.config.level_strides]
        return self.criterion.count_contrastive_pairs(labels, contrastive_query_index, mask, level_masks)

    # ----------------------------------------------------------------------------------------
    # inference
    # ----------------------------------------------------------------------------------------
    def _prepare_queries(self, text_features, text_mask) -> List[torch.Tensor]:
        if isinstance(text_features, (list, tuple)):
            queries = [as_feature_tensor(t, f"text_features[{i}]", device=self.device) for i, t in enumerate(text_features)]
        else:
            t = as_feature_tensor(text_features, "text_features", device=self.device)
            if t.ndim == 2:
                queries = [t]
            elif t.ndim == 3:
                if text_mask is None:
                    queries = list(t)
                else:
                    text_mask = torch.as_tensor(text_mask, dtype=torch.bool, device=t.device)
                    queries = [q[m] for q, m in zip(t, text_mask)]
            else:
                raise ValueError(f"text_features must be (L, D), (N, L, D) or a list of (L, D); got {tuple(t.shape)}")
        if not queries:
            raise ValueError("no text query given")
        for i, q in enumerate(queries):
            validate_query_features(q, self.config, i)
        return queries

    def _inference_weights(self, dtype: torch.dtype, fused: bool = False) -> dict:
        """Eval-mode weights of fusion + heads for :func:`_fuse_and_predict_rows` (exact folds only;
        ``fused``: the FFNs' weights packed for oneDNN's fused linear as well, see :func:`_ffn_residual`)."""
        heads = [self.cls_head.inference_weights(dtype), self.reg_head.inference_weights(dtype)]
        norm = self.fusion.norm_out
        return {
            "layers": [layer.inference_weights(dtype, first=i == 0, fused=fused)
                       for i, layer in enumerate(self.fusion.layers)],
            "norm_out": (norm.weight.float(), norm.bias.float(), norm.eps),
            "heads": heads,
        }

    def _inference_tile_rows(self, dtype: torch.dtype, device: torch.device) -> int:
        """Rows (queries × points) per fast-path call. On CPUs the largest buffer, the FFN's hidden layer
        (rows × 4C), stays at 8 MB (2,048 rows at C = 256 in float32, 4,096 in bf16), well below glibc's
        mmap threshold (≤ 32 MB): the allocator reuses its heap instead of mapping and page-faulting
        fresh memory for every buffer, and one call still holds GFLOPs of GEMM work. On GPUs
        :func:`_tile_scale` times more, so that a chunk's queries share one call (fewer kernel launches)."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        return max(256, (8 << 20) * _tile_scale(device) // (4 * self.config.hidden_size * itemsize))

    def _use_compile(self, use_compile: Optional[bool], dtype: torch.dtype, device: torch.device) -> bool:
        if use_compile is not None:
            return bool(use_compile)
        # default: compile on GPUs, where eager runs one kernel launch per op; on CPUs the eager fast path
        # is within ~10% of the compiled one (docs/performance.md) and a compile costs minutes on few cores
        return device.type == "cuda"

    def _query_chunk_size(self, grid_length: int) -> int:
        cfg = self.config
        # bound the per-level fusion activations (Q × T_0 × 4C floats in the FFN) to ~256 MB
        budget = 2**24
        by_memory = max(1, budget // max(1, grid_length * cfg.hidden_size))
        return max(1, min(cfg.inference_query_chunk_size, by_memory))

    @torch.no_grad()
    def ground(
        self,
        video_features,
        text_features,
        *,
        text_mask=None,
        video_length: Optional[int] = None,
        query_chunk_size: Optional[int] = None,
        max_segments: Optional[int] = None,
        pre_nms_threshold: Optional[float] = None,
        time_mapping: Optional[TimeMapping] = None,
        use_compile: Optional[bool] = None,
        shape_buckets: Optional[bool] = None,
    ) -> List[torch.Tensor]:
        """Ground every query in one whole video.

        The video is encoded once, unpadded (at most to a multiple of the input stride; never to the
        training length); the queries are encoded and decoded in chunks, and fusion + heads run on the
        eval-mode fast path (exact algebra, video-only work shared by all queries, row tiles of a few
        MB on CPUs and larger on GPUs; see :func:`_fuse_and_predict_rows`). Computation follows the model's dtype: load it with
        ``from_pretrained(..., dtype=torch.bfloat16)`` for bf16 (fast on CPUs with AMX or
        AVX-512-BF16 and on GPUs; slower than float32 on AVX2-only CPUs).

        Args:
            video_features: ``(T_in, Dv)`` (or ``(1, T_in, Dv)``) features of the whole video.
            text_features: one query ``(L, Dt)``, a list of them, or ``(N, L, Dt)`` with ``text_mask``.
            video_length: valid input steps when ``video_features`` is already padded.
            query_chunk_size: queries encoded and decoded at once (default: config).
            max_segments / pre_nms_threshold: override the config's decoding settings.
            time_mapping: the video's :class:`~modeling_mscl.processing_mscl.TimeMapping`; when given,
                the moments are returned in seconds (see :func:`post_process_grounding`).
            use_compile: ``torch.compile`` the fast path (default: on GPUs only; on CPUs it gains ~10% in
                bf16 after a one-time compile of minutes). Where compiling fails, the eager function (same
                results) is used, with one warning.
            shape_buckets: round every matrix shape up to a small set of sizes (the video's length under its
                mask, the queries per call, the text length; padding whose outputs are dropped, so the
                moments are the same up to rounding). Default: on for bf16 / fp16 models on CPUs, where
                oneDNN compiles and caches kernels (and their scratch memory) per shape: without buckets
                each new video length costs a first call ~1.5× slower and ~100 MB that stays allocated.

        Returns:
            one ``(K, 3)`` tensor per query: ``(start, end, score)``, sorted by score, after Soft-NMS and
            voting; on the model grid (input feature index / ``video_input_stride``, float32) or, with
            ``time_mapping``, in seconds (float64, clamped to ``[0, duration]``).
        """
        cfg = self.config
        video = as_feature_tensor(video_features, "video_features", device=self.device)
        if video.ndim == 3:
            if video.shape[0] != 1:
                raise ValueError(f"ground takes one video at a time, got a batch of {video.shape[0]}")
            video = video[0]
        if video_length is not None and video.ndim == 2:
            t_valid = int(video_length)
            if t_valid < 1 or t_valid > video.shape[0]:
                raise ValueError(f"video has {t_valid} valid steps; it must have at least one (and at most {video.shape[0]})")
            video = video[:t_valid]
        validate_video_features(video, cfg)
        t_valid = video.shape[0]
        queries = self._prepare_queries(text_features, text_mask)

        was_training = self.training
        self.eval()
        try:
            # pad only to the input stride: every layer takes any length (strided convs and mask
            # downsampling both give ceil(T/2)), so padding to the top pyramid stride would only add
            # work (~8% on the TACoS test split) without changing any valid output
            unit = cfg.video_input_stride
            # the model's dtype (float32 unless loaded otherwise); inputs were checked in float32
            dtype = self.dtype
            if shape_buckets is None:
                shape_buckets = video.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16)
            t_pad = _shape_bucket(t_valid, 8, 16) if shape_buckets else t_valid
            t_pad = max(unit, -(-t_pad // unit) * unit)
            # with buckets the masked tail of every level goes: fusion needs no padding of its own
            levels, level_masks = self._encode_padded_video(video, t_pad, trim=shape_buckets)
            fast = None
            if _EvalFusion.applies(self, levels, level_masks):
                fast = _EvalFusion(self, levels, level_masks, self._use_compile(use_compile, dtype, video.device),
                                   self._inference_tile_rows(dtype, video.device), shape_buckets=shape_buckets)
            if query_chunk_size:
                chunk = query_chunk_size
            else:
                chunk = cfg.inference_query_chunk_size if fast else self._query_chunk_size(levels[0].shape[1])
            results: List[torch.Tensor] = []
            for start in range(0, len(queries), chunk):
                part = queries[start : start + chunk]
                lmax = max(q.shape[0] for q in part)
                batch = part
                if shape_buckets:  # copies of the last query (dropped after encoding), padded tokens
                    batch = part + [part[-1]] * (min(_shape_bucket(len(part), 2), chunk) - len(part))
                    extra = self.text_encoder.added_tokens  # the encoded length is the multiple of 8
                    bucket = _shape_bucket(lmax + extra, 8, 8) - extra
                    # ... but not beyond the position table where the queries fit it (a longer padded batch
                    # would take add_position_encoding's per-sequence branch: the same values, slower)
                    lmax = bucket if lmax > cfg.max_text_length else min(bucket, cfg.max_text_length)
                text = torch.stack([F.pad(q, (0, 0, 0, lmax - q.shape[0])) for q in batch]).to(dtype)
                tmask = torch.stack([torch.arange(lmax, device=text.device) < q.shape[0] for q in batch])
                enc, enc_mask = self.encode_text(text, tmask)
                enc, enc_mask = enc[: len(part)], enc_mask[: len(part)]
                if fast is not None:
                    logits, offsets, masks = fast(enc, enc_mask)
                else:
                    index = torch.zeros(len(part), dtype=torch.long, device=text.device)
                    _, logits, offsets, masks = self.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
                results.extend(post_process_grounding(
                    (logits, offsets, masks), cfg, max_segments=max_segments, pre_nms_threshold=pre_nms_threshold,
                    time_mappings=time_mapping,
                ))
            return results
        finally:
            self.train(was_training)


__all__ = ["MSCLForTemporalGrounding", "MSCLOutput", "MSCLPreTrainedModel"]
