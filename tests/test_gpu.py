# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The package on a CUDA GPU gives the CPU's results: encoder and heads, the inference fast path (eager and
compiled), ``ground``, a training forward + backward, and a bf16 model.

Skipped where no CUDA GPU is present — so far every development machine (docs/performance.md, "GPUs"): these
tests are written for the first session that has one. ``MSCL_TEST_DEVICE=cpu python -m pytest tests/test_gpu.py``
runs them with the CPU standing in for the GPU (both sides on the CPU), which checks the tests themselves.
"""

import copy
import itertools
import os

import pytest
import torch
from test_modeling_mscl_inference import _pyramid_and_text, tiny_model

import modeling_mscl.modeling_mscl as M
from modeling_mscl.data.synthetic import synthetic_rows
from modeling_mscl.training import TrainingCollator, TrainingSampleDataset

from conftest import tiny_recipe

DEVICE = os.environ.get("MSCL_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA GPU here (torch.cuda.is_available() is False); MSCL_TEST_DEVICE=cpu dry-runs these tests",
)
# float32 on both sides; the GPU's sums are ordered differently, so agreement is to float32 rounding
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture(autouse=True)
def full_float32():
    """PyTorch lets cuDNN convolutions use TF32 by default on Ampere and later: compare in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _on_device(model):
    return copy.deepcopy(model).to(DEVICE)


def _to(tensors, device):
    return [t.to(device) for t in tensors]


def test_encoders_and_heads_match_the_cpu():
    model = tiny_model()
    gpu = _on_device(model)
    levels, level_masks, enc, enc_mask = _pyramid_and_text(model, 150, [5, 12, 1, 7], torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(1, 150, model.config.video_input_dim, generator=gen)
    with torch.no_grad():
        _, _, cpu_levels, _ = model.encode_video(video, torch.ones(1, 150, dtype=torch.bool))
        _, _, gpu_levels, _ = gpu.encode_video(video.to(DEVICE), torch.ones(1, 150, dtype=torch.bool, device=DEVICE))
        for a, b in zip(cpu_levels, gpu_levels):
            assert b.device.type == DEVICE
            torch.testing.assert_close(b.cpu(), a, rtol=RTOL, atol=ATOL)
        index = torch.zeros(enc.shape[0], dtype=torch.long)
        _, logits, offsets, _ = model.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
        _, g_logits, g_offsets, _ = gpu.fuse_and_predict(_to(levels, DEVICE), _to(level_masks, DEVICE), enc.to(DEVICE),
                                                         enc_mask.to(DEVICE), index.to(DEVICE))
    for a, b in zip(logits + offsets, g_logits + g_offsets):
        torch.testing.assert_close(b.cpu(), a, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("use_compile", [False, True])
def test_fast_path_matches_the_cpu_reference(use_compile):
    """The eval-mode fast path on the GPU, with the GPU's tile size (and compiled, as ``ground`` does by
    default there), against ``fuse_and_predict`` on the CPU."""
    model = tiny_model()
    gpu = _on_device(model)
    levels, level_masks, enc, enc_mask = _pyramid_and_text(model, 97, [5, 12, 1, 7, 3], torch.Generator().manual_seed(1))
    with torch.no_grad():
        index = torch.zeros(enc.shape[0], dtype=torch.long)
        _, ref_logits, ref_offsets, _ = model.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
        device = torch.device(DEVICE)
        fast = M._EvalFusion(gpu, _to(levels, DEVICE), _to(level_masks, DEVICE), use_compile=use_compile,
                             tile_rows=gpu._inference_tile_rows(torch.float32, device))
        logits, offsets, _ = fast(enc.to(DEVICE), enc_mask.to(DEVICE))
    for a, b in zip(ref_logits + ref_offsets, logits + offsets):
        torch.testing.assert_close(b.cpu(), a, rtol=RTOL, atol=ATOL)


def test_ground_gives_the_cpus_moments():
    """``ground`` end to end: moments come back on the CPU, and each query's best score is the CPU's (the
    best score does not depend on how ties among candidates are ordered)."""
    model = tiny_model(seed=2)
    gpu = _on_device(model)
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(400, model.config.video_input_dim, generator=gen)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in (3, 9, 1, 14, 6)]
    want = model.ground(video, queries)
    got = gpu.ground(video.to(DEVICE), [q.to(DEVICE) for q in queries])
    assert len(got) == len(want)
    for a, b in zip(want, got):
        assert b.device.type == "cpu" and b.shape[1] == 3 and len(b) > 0 and torch.isfinite(b).all()
        assert abs(float(b[0, 2]) - float(a[0, 2])) < ATOL


def _training_batch(config, videos=2):
    rows = list(synthetic_rows("train", num_train_videos=4, num_test_videos=0, min_steps=40, max_steps=120))
    data = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=videos, num_epochs=1,
                                 sample_shuffle_buffer=0)
    batch = TrainingCollator(config)(list(itertools.islice(iter(data), videos)))
    batch.pop("meta", None)
    return batch


def test_training_forward_and_backward_match_the_cpu():
    """Loss terms and gradients of one training batch (dropout off; the contrastive draws come from the
    batch's per-video CPU generators, so both devices draw the same sets)."""
    model = tiny_model(seed=3, attention_dropout=0.0, hidden_dropout=0.0, drop_path=0.0).train()
    gpu = _on_device(model).train()
    batch = _training_batch(model.config)
    out = model(**batch)
    g_out = gpu(**{k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    for name in ("loss", "loss_cls", "loss_reg", "loss_within", "loss_cross"):
        torch.testing.assert_close(getattr(g_out, name).cpu(), getattr(out, name), rtol=RTOL, atol=1e-6, msg=name)
    assert int(g_out.num_positives) == int(out.num_positives) > 0
    out.loss.backward()
    g_out.loss.backward()
    for (name, p), (_, q) in zip(model.named_parameters(), gpu.named_parameters()):
        if p.grad is None:
            assert q.grad is None, name
            continue
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_bf16_model_grounds_on_the_gpu():
    """A bf16 model (``from_pretrained(..., dtype=torch.bfloat16)``) runs ``ground`` on the GPU, with the
    float32 model's best moment for most queries (bf16 rounds the scores; random weights make near ties)."""
    model = tiny_model(seed=4, hidden_size=64)
    gpu32, gpu16 = _on_device(model), _on_device(model).to(torch.bfloat16)
    assert gpu16.dtype == torch.bfloat16
    gen = torch.Generator().manual_seed(4)
    video = torch.randn(300, model.config.video_input_dim, generator=gen).to(DEVICE)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen).to(DEVICE) for n in range(1, 13)]
    full, half = gpu32.ground(video, queries), gpu16.ground(video, queries)
    for a, b in zip(full, half):
        assert torch.isfinite(b).all() and len(b) > 0
        assert abs(float(b[0, 2]) - float(a[0, 2])) < 0.05  # sigmoid scores in bf16: ~3 significant digits
