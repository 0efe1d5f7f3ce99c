# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Weight EMA: starts as a copy, β-update of parameters only, save/load, averaged model."""

import pytest
import torch

from modeling_mscl import MSCLForTemporalGrounding
from modeling_mscl.training.ema import ModelEMA

from conftest import tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MSCLForTemporalGrounding(tiny_config())


def test_ema_update_rule_and_copy(model, tmp_path):
    ema = ModelEMA(model, decay=0.9)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert all(torch.equal(ema.shadow[n], start[n]) for n in start)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for n, p in model.named_parameters():
        torch.testing.assert_close(ema.shadow[n], 0.9 * start[n] + 0.1 * p.detach(), rtol=1e-6, atol=1e-6)
    # parameters only: buffers (the loss normaliser) come from the live model
    assert "loss_normalizer" not in ema.shadow
    model.loss_normalizer.fill_(42.0)
    averaged = ema.averaged_model(model)
    assert float(averaged.loss_normalizer) == 42.0 and not averaged.training
    for n, p in averaged.named_parameters():
        assert torch.equal(p, ema.shadow[n])
    # the live model is untouched
    assert torch.equal(dict(model.named_parameters())["cls_head.out.conv.weight"], start["cls_head.out.conv.weight"] + 1.0)

    path = tmp_path / "ema.safetensors"
    ema.save(str(path))
    other = ModelEMA(model, decay=0.9)
    other.load(str(path))
    assert other.num_updates == 1
    assert all(torch.equal(other.shadow[n], ema.shadow[n]) for n in ema.shadow)


def test_ema_rejects_a_different_model(model, tmp_path):
    ema = ModelEMA(model)
    path = tmp_path / "ema.safetensors"
    ema.save(str(path))
    small = MSCLForTemporalGrounding(tiny_config(hidden_size=32))
    with pytest.raises(ValueError, match="shape"):
        ModelEMA(small).load(str(path))
