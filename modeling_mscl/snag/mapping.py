# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Key-by-key mapping of SnAG's ``state_dict`` (channels-first, SnAG names) onto MSCL's modules.

Used by the parity tests and by ``python -m modeling_mscl.convert_snag``. The mapping is strict:
every SnAG key must map, every MSCL parameter must be filled (the loss normaliser buffer, which
SnAG keeps in its trainer, is set from the config), and shapes must agree; otherwise a
``ValueError`` lists the offending keys.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Tuple

import torch

# (SnAG regex, MSCL template, reshape) — reshape takes the SnAG tensor and returns MSCL's layout
_Squeeze = Callable[[torch.Tensor], torch.Tensor]


def _pointwise(t: torch.Tensor) -> torch.Tensor:  # conv1d k=1 weight (O, I, 1) -> linear (O, I)
    return t[..., 0] if t.ndim == 3 else t


def _channel(t: torch.Tensor) -> torch.Tensor:  # (C, 1) / (1, C, 1) -> (C,)
    return t.reshape(-1)


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


_PROJ = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "proj": "out_proj"}


def _block_rules(snag: str, ours: str) -> List[Tuple[str, str, _Squeeze]]:
    """Rules shared by video blocks, text blocks and fusion layers' FFN part."""
    return [
        (rf"{snag}\.(\d+)\.ln_attn\.(weight|bias)", rf"{ours}.\1.norm_attn.\2", _channel),
        (rf"{snag}\.(\d+)\.ln_ffn\.(weight|bias)", rf"{ours}.\1.norm_ffn.\2", _channel),
        (rf"{snag}\.(\d+)\.drop_path_attn\.scale", rf"{ours}.\1.layer_scale_attn.gamma", _channel),
        (rf"{snag}\.(\d+)\.drop_path_ffn\.scale", rf"{ours}.\1.layer_scale_ffn.gamma", _channel),
        (rf"{snag}\.(\d+)\.ffn\.fc\.(weight|bias)", rf"{ours}.\1.ffn.fc1.\2", _pointwise),
        (rf"{snag}\.(\d+)\.ffn\.proj\.(weight|bias)", rf"{ours}.\1.ffn.fc2.\2", _pointwise),
    ]


def _rules() -> List[Tuple[str, str, _Squeeze]]:
    rules: List[Tuple[str, str, _Squeeze]] = [
        # text encoder
        (r"text_net\.bkgd_token", "text_encoder.background_token", _channel),
        (r"text_net\.embd_fc\.conv\.(weight|bias)", r"text_encoder.embed_proj.\1", _pointwise),
        (r"text_net\.attn_pool\.attn\.(query|key|value|proj)\.(weight|bias)", "text_encoder.attention_pool.{proj}.\\2",
         _pointwise),
        (r"text_net\.transformer\.(\d+)\.attn\.attn\.(query|key|value|proj)\.(weight|bias)",
         "text_encoder.layers.\\1.attn.{proj}.\\3", _pointwise),
        # video encoder
        (r"vid_net\.embd_fc\.conv\.(weight|bias)", r"video_encoder.embed_proj.\1", _pointwise),
        (r"vid_net\.embd_convs\.(\d+)\.conv\.(weight|bias)", r"video_encoder.embed_convs.\1.conv.\2", _same),
        (r"vid_net\.embd_norms\.(\d+)\.(weight|bias)", r"video_encoder.embed_norms.\1.\2", _channel),
        # fusion
        (r"fusion\.layers\.(\d+)\.xattn\.q_conv\.conv\.weight", r"fusion.layers.\1.q_conv.weight", _same),
        (r"fusion\.layers\.(\d+)\.xattn\.q_norm\.(weight|bias)", r"fusion.layers.\1.q_norm.\2", _channel),
        (r"fusion\.layers\.(\d+)\.xattn\.xattn\.(query|key|value|proj)\.(weight|bias)", "fusion.layers.\\1.{proj}.\\3", _pointwise),
        (r"fusion\.layers\.(\d+)\.ln_xattn_q\.(weight|bias)", r"fusion.layers.\1.norm_video.\2", _channel),
        (r"fusion\.layers\.(\d+)\.ln_xattn_kv\.(weight|bias)", r"fusion.layers.\1.norm_text.\2", _channel),
        (r"fusion\.ln_out\.(weight|bias)", r"fusion.norm_out.\1", _channel),
        # heads
        (r"(cls_head|reg_head)\.convs\.(\d+)\.conv\.weight", r"\1.convs.\2.conv.weight", _same),
        (r"(cls_head|reg_head)\.norms\.(\d+)\.(weight|bias)", r"\1.norms.\2.\3", _channel),
        (r"cls_head\.cls_head\.conv\.(weight|bias)", r"cls_head.out.conv.\1", _same),
        (r"reg_head\.reg_head\.conv\.(weight|bias)", r"reg_head.out.conv.\1", _same),
    ]
    for part in ("stem", "branch"):
        rules += [
            (rf"vid_net\.{part}\.(\d+)\.attn\.(q|k|v)_conv\.conv\.weight", rf"video_encoder.{part}.\1.attn.\2_conv.weight", _same),
            (rf"vid_net\.{part}\.(\d+)\.attn\.(q|k|v)_norm\.(weight|bias)", rf"video_encoder.{part}.\1.attn.\2_norm.\3", _channel),
            (rf"vid_net\.{part}\.(\d+)\.attn\.attn\.(query|key|value|proj)\.(weight|bias)",
             f"video_encoder.{part}.\\1.attn.{{proj}}.\\3", _pointwise),
        ]
        rules += _block_rules(rf"vid_net\.{part}", f"video_encoder.{part}")
    rules += _block_rules(r"text_net\.transformer", "text_encoder.layers")
    rules += _block_rules(r"fusion\.layers", "fusion.layers")
    return rules


_RULES = [(re.compile(p + r"$"), t, f) for p, t, f in _rules()]
_SCALE = re.compile(r"reg_head\.scales\.(\d+)\.scale$")


def map_snag_key(key: str) -> Tuple[str, _Squeeze]:
    """MSCL parameter name and layout change for one SnAG key; ``KeyError`` if unknown."""
    for pattern, template, fn in _RULES:
        m = pattern.match(key)
        if m:
            name = m.expand(template)
            proj = next((v for k, v in _PROJ.items() if f".{k}." in key), None)
            return name.replace("{proj}", proj or ""), fn
    raise KeyError(key)


def snag_to_mscl_state_dict(
    snag_state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> Dict[str, torch.Tensor]:
    """Map a SnAG state dict onto ``model_state``'s keys, strictly.

    Raises ``ValueError`` naming unmapped SnAG keys, MSCL keys left empty, and shape mismatches.
    """
    out: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}  # MSCL key -> SnAG key, for the error messages
    unknown: List[str] = []
    scales: Dict[int, torch.Tensor] = {}
    for key, value in snag_state.items():
        m = _SCALE.match(key)
        if m:
            if value.numel() != 1:
                unknown.append(f"{key} (a scalar is expected, got shape {tuple(value.shape)})")
                continue
            scales[int(m.group(1))] = value.reshape(())
            continue
        try:
            name, fn = map_snag_key(key)
        except KeyError:
            unknown.append(key)
            continue
        out[name] = fn(value)
        origin[name] = key
    problems: List[str] = []
    if scales:
        if sorted(scales) != list(range(len(scales))):
            problems.append("SnAG per-level scales are not numbered 0..L-1: "
                            + ", ".join(f"reg_head.scales.{i}.scale" for i in sorted(scales)))
        out["reg_head.level_scales"] = torch.stack([scales[i] for i in sorted(scales)])
        origin["reg_head.level_scales"] = "reg_head.scales.<l>.scale"
    if unknown:
        problems.append("SnAG keys with no MSCL counterpart: " + ", ".join(sorted(unknown)))
    extra = sorted(k for k in out if k not in model_state)
    if extra:
        problems.append("SnAG keys whose MSCL counterpart the model does not have (check the config): "
                        + ", ".join(f"{origin[k]} -> {k}" for k in extra))
    missing = sorted(k for k in model_state if k not in out and k != "loss_normalizer")
    if missing:
        problems.append("MSCL parameters missing from the SnAG checkpoint: " + ", ".join(missing))
    mismatched = [
        f"{origin[k]} -> {k}: SnAG gives {tuple(v.shape)}, model has {tuple(model_state[k].shape)}"
        for k, v in out.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if problems:
        raise ValueError("cannot map the SnAG checkpoint onto the MSCL model:\n  " + "\n  ".join(problems))
    if "loss_normalizer" in model_state:
        out["loss_normalizer"] = model_state["loss_normalizer"].clone()
    return {k: v.detach().clone().to(model_state[k].dtype).contiguous() for k, v in out.items()}


__all__ = ["map_snag_key", "snag_to_mscl_state_dict"]
