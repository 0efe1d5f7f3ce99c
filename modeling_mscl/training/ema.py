# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Exponential moving average of the model's parameters (SnAG §4.2).

``ema ← β·ema + (1−β)·param`` after every optimiser step, β = the recipe's ``ema_decay`` (0.999). Only
parameters are averaged: buffers (position tables, the loss normaliser) are taken from the live model
whenever an EMA model is materialised. The EMA starts as a copy of the initial model and is what
evaluation and the final exported model use.
"""

from __future__ import annotations

import copy
import os
from typing import Dict, Iterator

import torch
from torch import nn

#: File name of the EMA weights inside a checkpoint folder.
EMA_WEIGHTS_NAME = "ema.safetensors"


class ModelEMA:
    """Shadow copy of a model's parameters, updated with :meth:`update`.

    Args:
        model: the (unwrapped) model whose parameters are averaged.
        decay: β; ``ema = β·ema + (1−β)·param``.

    Example::

        ema = ModelEMA(model, decay=0.999)
        ...; optimizer.step(); ema.update(model)
        eval_model = ema.averaged_model(model)   # a copy of `model` with the EMA weights
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        decay = float(decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow: Dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters()
        }

    # ------------------------------------------------------------------------------------------
    def _pairs(self, model: nn.Module) -> Iterator:
        params = dict(model.named_parameters())
        missing = sorted(set(self.shadow) - set(params))
        if missing:
            raise ValueError(f"model has no parameter(s) {missing[:5]} tracked by the EMA")
        for name, shadow in self.shadow.items():
            yield shadow, params[name]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards the current parameters of ``model`` (call after ``optimizer.step()``)."""
        shadows, params = zip(*self._pairs(model))
        params = [p.detach().to(s.dtype) for s, p in zip(shadows, params)]
        # ema + (1-β)(p - ema) = β·ema + (1-β)·p
        torch._foreach_lerp_(list(shadows), params, 1.0 - self.decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Write the EMA weights into ``model``'s parameters (in place); returns ``model``."""
        for shadow, param in self._pairs(model):
            param.copy_(shadow.to(device=param.device, dtype=param.dtype))
        return model

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` (buffers included) carrying the EMA weights, in eval mode."""
        clone = copy.deepcopy(model)
        self.copy_to(clone)
        return clone.eval()

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {name: t.detach().cpu().contiguous() for name, t in self.shadow.items()}

    @torch.no_grad()
    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        unexpected = sorted(set(state) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, t in state.items():
            if tuple(t.shape) != tuple(self.shadow[name].shape):
                raise ValueError(f"EMA state for {name!r} has shape {tuple(t.shape)}, expected {tuple(self.shadow[name].shape)}")
            self.shadow[name].copy_(t.to(device=self.shadow[name].device, dtype=self.shadow[name].dtype))

    def save(self, path: str) -> None:
        """Write the EMA weights as safetensors (atomically: a temporary file is renamed into place)."""
        from safetensors.torch import save_file

        tmp = f"{path}.tmp-{os.getpid()}"
        save_file(self.state_dict(), tmp, metadata={"decay": repr(self.decay), "num_updates": str(self.num_updates)})
        os.replace(tmp, path)

    def load(self, path: str) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        self.load_state_dict(load_file(path))
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        self.num_updates = int(meta.get("num_updates", self.num_updates))


__all__ = ["EMA_WEIGHTS_NAME", "ModelEMA"]
