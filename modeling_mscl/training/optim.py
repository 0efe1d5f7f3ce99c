# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""SnAG's optimiser and schedule (reference §4.2).

* AdamW, betas (0.9, 0.999), eps 1e-8.
* Weight decay only on the *weights* of linear and convolution layers (depthwise ones included); no decay
  on biases, LayerNorm affine parameters, LayerScale gammas, the per-level regression scales or the text
  background token.
* Optional per-module learning rates keyed by the model's top-level modules (``text_encoder``,
  ``video_encoder``, ``fusion``, ``cls_head``, ``reg_head``) — the recipe's ``module_learning_rates``.
* Linear warmup from 0 over ``warmup_epochs × iters_per_epoch`` steps, then constant (SnAG's "multistep"
  schedule with ``steps: [-1]`` never decays). This is ``transformers``' ``constant_with_warmup``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

from ..modeling_mscl import DepthwiseConv
from .recipe import MODULE_NAMES

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# Modules whose `weight` is decayed (SnAG's whitelist: linear and conv layers).
_DECAY_MODULES = (nn.Linear, nn.Conv1d, DepthwiseConv)


def decay_parameter_names(model: nn.Module) -> List[str]:
    """Names of the parameters that get weight decay: ``weight`` of linear/conv (incl. depthwise) layers."""
    names = []
    for module_name, module in model.named_modules():
        if isinstance(module, _DECAY_MODULES):
            for pname, _ in module.named_parameters(recurse=False):
                if pname == "weight":
                    names.append(f"{module_name}.{pname}" if module_name else pname)
    return names


def check_module_learning_rates(module_learning_rates: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """Validate ``module_learning_rates`` (keys must be top-level module names, values > 0)."""
    rates = dict(module_learning_rates or {})
    unknown = sorted(k for k in rates if k not in MODULE_NAMES)
    if unknown:
        raise ValueError(
            f"module_learning_rates has unknown module(s) {unknown}; valid keys: {', '.join(MODULE_NAMES)}"
        )
    for key, value in rates.items():
        if not float(value) > 0:
            raise ValueError(f"module_learning_rates[{key!r}] must be > 0, got {value}")
    return {k: float(v) for k, v in rates.items()}


def build_param_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    module_learning_rates: Optional[Mapping[str, float]] = None,
) -> List[Dict[str, Any]]:
    """AdamW parameter groups: one per (top-level module, decay or not), each with its ``lr``.

    Every trainable parameter lands in exactly one group; groups are named (``"fusion/decay"``...) so a
    checkpointed optimiser state maps back onto the same groups. Parameters outside the known modules
    (none in the current model) use the base ``learning_rate``.
    """
    rates = check_module_learning_rates(module_learning_rates)
    decay = set(decay_parameter_names(model))
    groups: Dict[str, Dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        top = name.split(".", 1)[0]
        module = top if top in MODULE_NAMES else "other"
        decayed = name in decay
        key = f"{module}/{'decay' if decayed else 'no_decay'}"
        if key not in groups:
            groups[key] = {
                "params": [],
                "param_names": [],
                "weight_decay": float(weight_decay) if decayed else 0.0,
                "lr": rates.get(module, float(learning_rate)),
                "name": key,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def create_adamw(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    module_learning_rates: Optional[Mapping[str, float]] = None,
) -> torch.optim.AdamW:
    """SnAG's AdamW (betas 0.9/0.999, eps 1e-8) over :func:`build_param_groups`."""
    groups = build_param_groups(model, learning_rate, weight_decay, module_learning_rates)
    for g in groups:
        g.pop("param_names")
    return torch.optim.AdamW(groups, lr=float(learning_rate), betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=0.0)


def warmup_constant_lambda(warmup_steps: int):
    """lr factor of step ``s``: ``s / warmup_steps`` during warmup (0 at the first step), then 1."""
    warmup_steps = int(warmup_steps)

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return float(step) / float(warmup_steps)
        return 1.0

    return factor


__all__ = [
    "ADAM_BETAS",
    "ADAM_EPS",
    "MODULE_NAMES",
    "build_param_groups",
    "check_module_learning_rates",
    "create_adamw",
    "decay_parameter_names",
    "warmup_constant_lambda",
]
