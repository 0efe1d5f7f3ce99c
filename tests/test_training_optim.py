# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""SnAG's optimiser: decay groups, per-module learning rates, warmup-then-constant schedule."""

import pytest
import torch

from modeling_mscl import MSCLForTemporalGrounding
from modeling_mscl.training.optim import (
    MODULE_NAMES,
    build_param_groups,
    create_adamw,
    decay_parameter_names,
    warmup_constant_lambda,
)

from conftest import tiny_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MSCLForTemporalGrounding(tiny_config())


def test_decay_only_on_linear_and_conv_weights(model):
    decay = set(decay_parameter_names(model))
    names = dict(model.named_parameters())
    assert decay <= set(names)
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        no_decay = (
            leaf == "bias"
            or ".norm" in name or "_norm" in name or "norms." in name
            or leaf == "gamma"  # LayerScale
            or name.endswith("level_scales")
            or name.endswith("background_token")
        )
        assert (name in decay) != no_decay, name
    # depthwise q/k/v convs are convolutions: decayed, as in SnAG
    assert any(n.endswith("q_conv.weight") for n in decay)


def test_param_groups_partition_and_module_lrs(model):
    groups = build_param_groups(model, 1e-3, 0.05, {"text_encoder": 2e-4, "reg_head": 5e-4})
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))
    for g in groups:
        module, kind = g["name"].split("/")
        assert module in MODULE_NAMES
        assert g["lr"] == {"text_encoder": 2e-4, "reg_head": 5e-4}.get(module, 1e-3)
        assert g["weight_decay"] == (0.05 if kind == "decay" else 0.0)
        assert all(n.startswith(module + ".") for n in g["param_names"])


def test_unknown_module_lr_is_an_error(model):
    with pytest.raises(ValueError, match="unknown module"):
        build_param_groups(model, 1e-3, 0.05, {"text_net": 1e-4})


def test_adamw_hyperparameters(model):
    opt = create_adamw(model, 1e-3, 0.05)
    assert isinstance(opt, torch.optim.AdamW)
    for g in opt.param_groups:
        assert g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8


def test_warmup_then_constant_matches_transformers_schedule(model):
    from transformers import get_scheduler

    opt = create_adamw(model, 1e-3, 0.05, {"fusion": 1e-4})
    sched = get_scheduler("constant_with_warmup", optimizer=opt, num_warmup_steps=10, num_training_steps=100)
    factor = warmup_constant_lambda(10)
    lrs = []
    for _ in range(30):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    base = [1e-4 if g["name"].startswith("fusion") else 1e-3 for g in opt.param_groups]
    for step, row in enumerate(lrs):
        assert row == pytest.approx([b * factor(step) for b in base])
    assert lrs[0] == [0.0] * len(base)  # SnAG: the first step has lr 0
    assert lrs[25] == pytest.approx(base)  # constant after warmup
