"""MSCLForTemporalGrounding: attention, masking, gradients, presets, save/load, inference, bad input."""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding, post_process_grounding
from modeling_mscl.losses_mscl import draw_contrastive_queries
from modeling_mscl.modeling_mscl import LayerScale, MaskedConv, _TapSum, apply_mask, local_attention

from conftest import tiny_config as base_tiny_config

SNAG_PARAMS_M = {
    "tacos_c3d": 11.20,
    "mad_clip": 42.1,
    "ego4d_slowfast_bert": 37.6,
    "ego4d_egovlp": 24.4,
    "charades_c3d": 10.4,
    "charades_i3d": 9.9,
    "anet_c3d": 3.2,
}


def tiny_config(**overrides):
    values = dict(hidden_dropout=0.0, drop_path=0.0)
    values.update(overrides)
    return base_tiny_config(**values)


def make_batch(cfg, gen, t_valid=(256, 180), queries=(2, 1), text_len=(7, 4, 11), t_pad=None):
    b = len(t_valid)
    t_pad = t_pad or cfg.max_video_length * cfg.video_input_stride
    video = torch.randn(b, t_pad, cfg.video_input_dim, generator=gen)
    vmask = torch.zeros(b, t_pad, dtype=torch.bool)
    for i, n in enumerate(t_valid):
        vmask[i, :n] = True
        video[i, n:] = 0
    n = sum(queries)
    lmax = max(text_len)
    text = torch.randn(n, lmax, cfg.text_input_dim, generator=gen)
    tmask = torch.zeros(n, lmax, dtype=torch.bool)
    for i, l in enumerate(text_len):
        tmask[i, :l] = True
        text[i, l:] = 0
    qvi = torch.repeat_interleave(torch.arange(b), torch.tensor(queries))
    grid = [tv // cfg.video_input_stride for tv in t_valid]
    labels = []
    for q in range(n):
        g = grid[int(qvi[q])]
        s = float(torch.rand((), generator=gen)) * g * 0.4
        labels.append([s, s + g * (0.2 + 0.35 * float(torch.rand((), generator=gen)))])
    return dict(
        video_features=video, video_mask=vmask, text_features=text, text_mask=tmask,
        query_video_index=qvi, labels=torch.tensor(labels),
    )


# --------------------------------------------------------------------------------------------
# local attention
# --------------------------------------------------------------------------------------------


def dense_banded_attention(q, k, v, key_mask, window):
    t = q.shape[2]
    i = torch.arange(t)
    band = (i[:, None] - i[None, :]).abs() <= window // 2
    logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    logits = logits.masked_fill(~band, float("-inf"))
    logits = logits + torch.where(key_mask, 0.0, -1e4)[:, None, None, :]
    return torch.softmax(logits, dim=-1) @ v


def test_layer_scale_with_drop_path_drops_whole_samples_and_rescales_the_rest():
    layer = LayerScale(5, 0.5, drop_path=0.25)
    with torch.no_grad():
        layer.gamma.copy_(torch.linspace(-1.0, 2.0, 5))
    x = torch.randn(400, 3, 5)
    layer.eval()
    assert torch.equal(layer(x), x * layer.gamma)
    layer.train()
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)  # the same per-sample draw, written out as SnAG's drop path
    keep = torch.empty(400, 1, 1).bernoulli_(0.75)
    torch.testing.assert_close(out, x * layer.gamma * keep / 0.75, rtol=1e-6, atol=0)
    dropped = (out == 0).flatten(1).all(1)
    assert bool((dropped == (keep.flatten() == 0)).all()) and 60 < int(dropped.sum()) < 140  # 100 expected
    out.sum().backward()
    torch.testing.assert_close(layer.gamma.grad, (x * keep / 0.75).sum((0, 1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 9])
@pytest.mark.parametrize("bias", [False, True])
def test_masked_conv_k3_forward_and_gradients_equal_conv1d(length, bias):
    torch.manual_seed(0)
    conv = MaskedConv(6, 4, 3, bias=bias).double()
    x = torch.randn(3, length, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, length, dtype=torch.bool)
    mask[1, length // 2 :] = False
    out, _ = conv(x, mask)
    ref = F.conv1d((x * mask[..., None]).transpose(1, 2), conv.conv.weight, conv.conv.bias, padding=1).transpose(1, 2)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, conv.conv.weight], grad)
    want = torch.autograd.grad(ref, [x, conv.conv.weight], grad)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert bool((got[0][1, length // 2 :] == 0).all())  # masked input gets no gradient


def test_tap_sum_backward_is_autograd_through_padded_slices_bit_for_bit():
    def padded_slices(taps):
        o = taps.shape[-1] // 3
        p = F.pad(taps, (0, 0, 1, 1))
        return p[:, :-2, :o] + p[:, 1:-1, o : 2 * o] + p[:, 2:, 2 * o :]

    gen = torch.Generator().manual_seed(1)
    for length in (1, 2, 7):
        taps = torch.randn(2, length, 15, generator=gen, requires_grad=True)
        grad = torch.randn(2, length, 5, generator=gen)
        out = _TapSum.apply(taps)
        assert torch.equal(out, padded_slices(taps))
        (got,) = torch.autograd.grad(out, taps, grad)
        (want,) = torch.autograd.grad(padded_slices(taps), taps, grad)
        assert torch.equal(got, want)


def test_apply_mask_zeroes_padded_steps_and_never_reads_a_device_mask():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, generator=gen)
    mask = torch.tensor([[True, True, False, True, False], [True] * 5])
    torch.testing.assert_close(apply_mask(x, mask), torch.where(mask[..., None], x, 0.0), rtol=0, atol=0)
    assert apply_mask(x, torch.ones(2, 5, dtype=torch.bool)) is x  # CPU: all valid, no copy
    # elsewhere no data-dependent shortcut (a host sync per call on a GPU): a meta tensor, whose values
    # cannot be read, goes through
    out = apply_mask(x.to("meta"), mask.to("meta"))
    assert out.device.type == "meta" and out.shape == x.shape


@pytest.mark.parametrize("window", [1, 5, 19])
def test_local_attention_equals_dense_banded_reference(window):
    gen = torch.Generator().manual_seed(window)
    b, h, t, d = 2, 4, 37, 8
    q, k, v = (torch.randn(b, h, t, d, generator=gen) for _ in range(3))
    key_mask = torch.ones(b, t, dtype=torch.bool)
    key_mask[1, 23:] = False  # padded keys (and, for the caller, padded queries)
    got = local_attention(q, k, v, key_mask, window)
    ref = dense_banded_attention(q, k, v, key_mask, window)
    assert got.shape == (b, h, t, d)
    assert torch.allclose(got, ref, atol=1e-5)


def test_local_attention_memory_is_linear_in_length():
    # no (T, T) tensor: a 40k-step sequence fits easily (dense would need 40k² floats per head)
    q = k = v = torch.randn(1, 1, 40_000, 4)
    out = local_attention(q, k, v, torch.ones(1, 40_000, dtype=torch.bool), 17)
    assert out.shape == q.shape and torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------
# presets and shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(SNAG_PARAMS_M))
def test_parameter_counts_match_snag(preset):
    with torch.device("meta"):
        model = MSCLForTemporalGrounding(MSCLConfig.from_preset(preset))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - SNAG_PARAMS_M[preset]) / SNAG_PARAMS_M[preset] < 0.01


def test_pyramid_lengths_tacos():
    cfg = MSCLConfig.from_preset("tacos_c3d", hidden_size=16, text_hidden_size=16, video_input_dim=8, text_input_dim=8)
    model = MSCLForTemporalGrounding(cfg).eval()
    video = torch.randn(1, 2304, 8)
    with torch.no_grad():
        _, _, levels, masks = model.encode_video(video, torch.ones(1, 2304, dtype=torch.bool))
    assert [x.shape[1] for x in levels] == [2304, 1152, 576, 288, 144, 72, 36, 18]
    assert [int(m.sum()) for m in masks] == [2304, 1152, 576, 288, 144, 72, 36, 18]


def test_level_masks_are_ceil_of_valid_length():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    mask = torch.zeros(1, 256, dtype=torch.bool)
    mask[0, :83] = True
    with torch.no_grad():
        _, _, _, masks = model.encode_video(torch.randn(1, 256, cfg.video_input_dim), mask)
    assert [int(m.sum()) for m in masks] == [83, 42, 21, 11, 6]


def test_level_strides_define_the_pyramid():
    cfg = tiny_config()
    assert cfg.level_strides == [1, 2, 4, 8, 16] and cfg.pyramid_stride == 16
    assert MSCLConfig.from_preset("tacos_c3d").level_strides == [2**l for l in range(8)]
    model = MSCLForTemporalGrounding(cfg).eval()
    assert [block.stride for block in model.video_encoder.branch] == [1, 2, 2, 2, 2]
    with torch.no_grad():
        _, _, levels, masks = model.encode_video(torch.randn(1, 100, cfg.video_input_dim), torch.ones(1, 100, dtype=torch.bool))
    assert [x.shape[1] for x in levels] == [math.ceil(100 / s) for s in cfg.level_strides]


def test_initialisation_follows_snag():
    model = MSCLForTemporalGrounding(base_tiny_config())
    block = model.video_encoder.branch[1]
    assert torch.all(block.layer_scale_attn.gamma == 1e-4)
    assert torch.all(block.attn.q_proj.bias == 0)
    assert torch.all(model.reg_head.level_scales == 1.0)
    assert torch.all(model.cls_head.out.conv.bias == 0)
    assert float(model.loss_normalizer) == model.config.loss_normalizer_init
    bg = model.text_encoder.background_token
    assert bg.abs().max() < 0.2 and bg.std() > 0.005


# --------------------------------------------------------------------------------------------
# masking and padding
# --------------------------------------------------------------------------------------------


def _valid_outputs(out, n_valid_levels):
    return [(lg[:, :n], of[:, :n]) for lg, of, n in zip(out.logits, out.offsets, n_valid_levels)]


@pytest.mark.slow
def test_outputs_at_valid_positions_do_not_depend_on_padding():
    cfg = tiny_config(max_video_length=512)
    model = MSCLForTemporalGrounding(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    batch = make_batch(cfg, gen, t_valid=(200,), queries=(2,), text_len=(6, 9))
    short = {k: v for k, v in batch.items() if k != "labels"}
    short["video_features"] = short["video_features"][:, :256]
    short["video_mask"] = short["video_mask"][:, :256]
    long = dict(short)
    long["video_features"] = F.pad(short["video_features"], (0, 0, 0, 256))
    long["video_mask"] = F.pad(short["video_mask"], (0, 256))
    # more text padding too
    long["text_features"] = F.pad(short["text_features"], (0, 0, 0, 5))
    long["text_mask"] = F.pad(short["text_mask"], (0, 5))
    with torch.no_grad():
        a = model(**short, output_hidden_states=True)
        b = model(**long, output_hidden_states=True)
    valid = [int(m[0].sum()) for m in a.video_masks]
    for (la, oa), (lb, ob) in zip(_valid_outputs(a, valid), _valid_outputs(b, valid)):
        assert torch.allclose(la, lb, atol=1e-5)
        assert torch.allclose(oa, ob, atol=1e-5)


@pytest.mark.slow
def test_ground_matches_forward_and_does_not_depend_on_padding():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(150, cfg.video_input_dim, generator=gen)
    queries = [torch.randn(5, cfg.text_input_dim, generator=gen), torch.randn(12, cfg.text_input_dim, generator=gen)]
    moments = model.ground(video, queries)
    # reference: the batched forward on the video padded to the training length, decoded the same way
    padded = F.pad(video, (0, 0, 0, 256 - 150))[None]
    vmask = (torch.arange(256) < 150)[None]
    for q, moment in zip(queries, moments):
        with torch.no_grad():
            out = model(padded, vmask, q[None], torch.ones(1, q.shape[0], dtype=torch.bool), torch.tensor([0]))
        ref = post_process_grounding(out, model.config)[0]
        assert moment.shape == ref.shape and moment.shape[0] > 0
        assert torch.allclose(moment, ref, atol=1e-4)
        assert torch.all(moment[:-1, 2] >= moment[1:, 2])  # sorted by score


@pytest.mark.slow
def test_ground_batched_queries_equal_one_at_a_time():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(97, cfg.video_input_dim, generator=gen)
    queries = [torch.randn(n, cfg.text_input_dim, generator=gen) for n in (3, 8, 5, 1, 16)]
    together = model.ground(video, queries, query_chunk_size=2)
    for q, res in zip(queries, together):
        alone = model.ground(video, [q])[0]
        assert torch.allclose(alone, res, atol=1e-5)


def test_ground_longer_than_position_table_stretches_over_valid_length(monkeypatch):
    import modeling_mscl.modeling_mscl as modeling

    cfg = tiny_config(max_video_length=64, num_pyramid_levels=3)
    model = MSCLForTemporalGrounding(cfg).eval()
    gen = torch.Generator().manual_seed(12)
    video = torch.randn(150, cfg.video_input_dim, generator=gen)
    q = [torch.randn(4, cfg.text_input_dim, generator=gen)]
    a = model.ground(video, q)[0]
    b = model.ground(F.pad(video, (0, 0, 0, 30)), q, video_length=150)[0]
    assert torch.allclose(a, b, atol=1e-5)
    # `ground` slices to the valid length first, so the above cannot tell valid-length from padded-length
    # stretching. A padded batch through `forward` can: the 64-row table must be stretched over the 150
    # valid steps (as `ground` sees them), not over the padded 192.
    t_pad = 192
    padded = F.pad(video, (0, 0, 0, t_pad - 150))[None]
    vmask = (torch.arange(t_pad) < 150)[None]

    def padded_forward():
        with torch.no_grad():
            out = model(padded, vmask, q[0][None], torch.ones(1, 4, dtype=torch.bool), torch.tensor([0]),
                        output_hidden_states=True)
        return out, post_process_grounding(out, cfg)[0]

    with torch.no_grad():
        _, _, unpadded_levels, _ = model.encode_video(video[None], torch.ones(1, 150, dtype=torch.bool))
    out, moments = padded_forward()
    for level, (x, m) in enumerate(zip(out.video_hidden_states, out.video_masks)):
        n = int(m.sum())
        assert torch.allclose(x[0, :n], unpadded_levels[level][0, :n], atol=1e-5), level
    assert moments.shape == a.shape and torch.allclose(moments, a, atol=1e-4)

    # the same check fails for SnAG's rule (stretch over the padded length), computed here by hand
    def stretch_over_padded_length(x, mask, table, rows=None):  # untiled, whatever the rows
        pe = modeling.stretch_table(table, x.shape[1]) if x.shape[1] > table.shape[0] else table[: x.shape[1]]
        return x + pe[None].to(x.dtype) * mask[..., None].to(x.dtype)

    monkeypatch.setattr(modeling, "add_position_encoding", stretch_over_padded_length)
    out, moments = padded_forward()
    assert not torch.allclose(out.video_hidden_states[0][0, :150], unpadded_levels[0][0, :150], atol=1e-3)
    assert moments.shape != a.shape or not torch.allclose(moments, a, atol=1e-4)


@pytest.mark.slow
def test_mad_movie_length_runs_through_encoder():
    # a 2-hour MAD movie: 36,000 CLIP features at 5 fps, real preset widths
    cfg = MSCLConfig.from_preset("mad_clip")
    model = MSCLForTemporalGrounding(cfg).eval()
    t = 36_000
    unit = cfg.pyramid_stride * cfg.video_input_stride
    t_pad = -(-t // unit) * unit
    video = torch.zeros(1, t_pad, cfg.video_input_dim)
    video[0, :t] = torch.randn(t, cfg.video_input_dim)
    mask = (torch.arange(t_pad) < t)[None]
    with torch.no_grad():
        _, _, levels, masks = model.encode_video(video, mask)
    assert levels[0].shape == (1, t_pad // 2, 512)
    assert int(masks[0].sum()) == t // 2
    assert all(torch.isfinite(x).all() for x in levels)


# --------------------------------------------------------------------------------------------
# losses in the model, gradients
# --------------------------------------------------------------------------------------------


def test_forward_returns_named_loss_terms_and_eq13():
    cfg = tiny_config(regression_loss_weight=2.0, within_loss_weight=0.5, cross_loss_weight=0.25)
    model = MSCLForTemporalGrounding(cfg).train()
    batch = make_batch(cfg, torch.Generator().manual_seed(3))
    out = model(**batch, contrastive_seeds=torch.tensor([11, 12]))
    expected = out.loss_cls + 2.0 * out.loss_reg + 0.5 * out.loss_within + 0.25 * out.loss_cross
    assert torch.allclose(out.loss, expected)
    for term in (out.loss_cls, out.loss_reg, out.loss_within, out.loss_cross):
        assert term.ndim == 0 and torch.isfinite(term) and float(term) > 0
    assert int(out.num_positives) > 0
    pairs = model.count_contrastive_pairs(batch["labels"], batch["video_mask"], _drawn(model, batch, [11, 12]))
    assert torch.equal(pairs, out.num_contrastive_pairs)


def _drawn(model, batch, seeds):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return draw_contrastive_queries(batch["query_video_index"], len(seeds), gens)


def test_contrastive_only_gradients_stay_in_video_encoder():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).train()
    batch = make_batch(cfg, torch.Generator().manual_seed(4))
    out = model(**batch, contrastive_seeds=torch.tensor([1, 2]))
    (out.loss_within + out.loss_cross).backward()
    for name, p in model.named_parameters():
        g = p.grad
        if name.startswith("video_encoder."):
            assert g is not None and g.abs().sum() > 0, name
        else:
            assert g is None or float(g.abs().sum()) == 0.0, name


@pytest.mark.slow
def test_all_terms_give_finite_gradients_everywhere():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).train()
    batch = make_batch(cfg, torch.Generator().manual_seed(5))
    out = model(**batch, contrastive_seeds=torch.tensor([1, 2]))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


@pytest.mark.slow
def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    # with dropout and drop-path on: the recompute must replay the same random masks
    cfg = tiny_config(hidden_dropout=0.1, drop_path=0.1)
    torch.manual_seed(0)
    model = MSCLForTemporalGrounding(cfg).train()
    batch = make_batch(cfg, torch.Generator().manual_seed(5))

    def run():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        out = model(**batch, contrastive_seeds=torch.tensor([1, 2]))
        out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, plain_grads = run()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing and model.gradient_checkpointing
    calls = []
    func = model._gradient_checkpointing_func
    model._gradient_checkpointing_func = lambda *a, **k: calls.append(a[-1]) or func(*a, **k)
    ckpt, ckpt_grads = run()
    assert calls == list(range(cfg.num_pyramid_levels))  # every level went through the checkpoint
    for term in ("loss", "loss_cls", "loss_reg", "loss_within", "loss_cross"):
        torch.testing.assert_close(getattr(ckpt, term), getattr(plain, term), rtol=1e-6, atol=0)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # no effect outside training: inference takes the plain path
    calls.clear()
    with torch.no_grad():
        model.eval()(**batch)
    assert calls == []


def test_contrastive_draws_are_keyed_per_video_not_per_batch():
    # with reduction "sum", the batch's contrastive sums equal the sums of each video on its own
    cfg = tiny_config(contrastive_reduction="sum")
    model = MSCLForTemporalGrounding(cfg).eval()
    batch = make_batch(cfg, torch.Generator().manual_seed(6))
    seeds = torch.tensor([101, 202])
    with torch.no_grad():
        both = model(**batch, contrastive_seeds=seeds)
        parts = []
        for v, qs in ((0, [0, 1]), (1, [2])):
            single = {
                "video_features": batch["video_features"][v : v + 1], "video_mask": batch["video_mask"][v : v + 1],
                "text_features": batch["text_features"][qs], "text_mask": batch["text_mask"][qs],
                "query_video_index": torch.zeros(len(qs), dtype=torch.long), "labels": batch["labels"][qs],
            }
            parts.append(model(**single, contrastive_seeds=seeds[v : v + 1]))
    assert float(both.loss_within) == pytest.approx(sum(float(p.loss_within) for p in parts), rel=1e-5)
    assert float(both.loss_cross) == pytest.approx(sum(float(p.loss_cross) for p in parts), rel=1e-5)
    assert float(both.loss_within) > 0


def test_forward_loss_is_the_criterion_on_the_models_outputs():
    from modeling_mscl import MSCLLoss

    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).train()
    assert isinstance(model.criterion, MSCLLoss) and not list(model.criterion.state_dict())
    batch = make_batch(cfg, torch.Generator().manual_seed(14))
    seeds = torch.tensor([5, 6])
    with torch.no_grad():
        out = model(**batch, contrastive_seeds=seeds, output_hidden_states=True)
        # a standalone loss module from the same config, on the outputs the forward returned
        terms = MSCLLoss(cfg).train()(
            labels=batch["labels"], query_video_index=batch["query_video_index"], logits=out.logits,
            offsets=out.offsets, masks=out.masks, embedding=out.video_embeddings,
            embedding_mask=batch["video_mask"], levels=out.video_hidden_states, level_masks=out.video_masks,
            loss_normalizer=model.loss_normalizer, contrastive_seeds=seeds,
        )
    for name in ("loss", "loss_cls", "loss_reg", "loss_within", "loss_cross", "num_positives", "num_contrastive_pairs"):
        assert torch.equal(terms[name], getattr(out, name)), name


def test_contrastive_mean_divides_by_at_least_one_pair():
    from modeling_mscl import MSCLLoss

    criterion = MSCLLoss(tiny_config())
    torch.testing.assert_close(criterion.contrastive_normalizer(torch.tensor([0, 7])), torch.tensor([1.0, 7.0]))


def test_loss_normalizer_is_read_only_in_forward_and_updated_by_method():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).train()
    batch = make_batch(cfg, torch.Generator().manual_seed(7))
    before = float(model.loss_normalizer)
    out = model(**batch)
    assert float(model.loss_normalizer) == before
    new = model.update_loss_normalizer(out.num_positives)
    assert new == pytest.approx(0.9 * before + 0.1 * max(int(out.num_positives), 1))
    assert "loss_normalizer" in model.state_dict()
    assert model.update_loss_normalizer(0) == pytest.approx(0.9 * new + 0.1)


def test_explicit_contrastive_normalizer_is_used():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    batch = make_batch(cfg, torch.Generator().manual_seed(8))
    seeds = torch.tensor([3, 4])
    with torch.no_grad():
        a = model(**batch, contrastive_seeds=seeds)
        b = model(**batch, contrastive_seeds=seeds, contrastive_normalizer=a.num_contrastive_pairs.float() * 2)
    assert float(b.loss_within) == pytest.approx(float(a.loss_within) / 2, rel=1e-5)
    assert float(b.loss_cross) == pytest.approx(float(a.loss_cross) / 2, rel=1e-5)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda b: b.update(video_features=b["video_features"][..., :-1]), "video feature dimension"),
        (lambda b: b.update(text_features=b["text_features"][..., :-1]), "text feature dimension"),
        (lambda b: b["video_features"].__setitem__((0, 3, 0), float("nan")), "NaN or inf"),
        (lambda b: b["text_features"].__setitem__((1, 0, 0), float("inf")), "NaN or inf"),
        (lambda b: b["text_mask"].__setitem__(2, False), "empty"),
        (lambda b: b["query_video_index"].__setitem__(2, 5), "points at video 5"),
        (lambda b: b["labels"].__setitem__(0, torch.tensor([10.0, 10.0])), "start >= end"),
        (lambda b: b["labels"].__setitem__(1, torch.tensor([30.0, 5.0])), "start >= end"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(mutate, match):
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg)
    batch = make_batch(cfg, torch.Generator().manual_seed(9))
    mutate(batch)
    with pytest.raises(ValueError, match=match):
        model(**batch)


def test_ground_bad_input():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    video = torch.randn(50, cfg.video_input_dim)
    q = torch.randn(4, cfg.text_input_dim)
    with pytest.raises(ValueError, match="video feature dimension"):
        model.ground(video[:, :-2], [q])
    with pytest.raises(ValueError, match="must be"):
        model.ground(video[0], [q])
    with pytest.raises(ValueError, match="empty"):
        model.ground(video, [q[:0]])
    with pytest.raises(ValueError, match="text feature dimension"):
        model.ground(video, [q[:, :3]])
    with pytest.raises(ValueError, match="no text query"):
        model.ground(video, [])
    bad = video.clone()
    bad[3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.ground(bad, [q])


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_save_load_round_trip_with_position_encoding(tmp_path):
    cfg = base_tiny_config()
    assert cfg.video_use_abs_pe and cfg.text_use_abs_pe
    model = MSCLForTemporalGrounding(cfg).eval()
    model.update_loss_normalizer(7)  # a buffer value that differs from the init must survive
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = MSCLForTemporalGrounding.from_pretrained(tmp_path).eval()
    sd_a, sd_b = model.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k
    batch = make_batch(cfg, torch.Generator().manual_seed(10))
    batch.pop("labels")
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    for x, y in zip(a.logits + a.offsets, b.logits + b.offsets):
        assert torch.allclose(x, y, atol=1e-6)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "mscl"
    assert config["auto_map"]["AutoModel"].endswith("MSCLForTemporalGrounding")


@pytest.mark.slow
def test_fresh_process_loads_with_trust_remote_code(tmp_path):
    cfg = base_tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    folder = tmp_path / "ckpt"
    model.save_pretrained(folder)
    batch = make_batch(cfg, torch.Generator().manual_seed(11))
    batch.pop("labels")
    torch.save(batch, tmp_path / "batch.pt")
    with torch.no_grad():
        ref = torch.cat([x.flatten() for x in model(**batch).logits])
    torch.save(ref, tmp_path / "ref.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert "modeling_mscl" not in sys.modules, "the package was imported"
        batch = torch.load({str(tmp_path / 'batch.pt')!r})
        with torch.no_grad():
            got = torch.cat([x.flatten() for x in model(**batch).logits])
        ref = torch.load({str(tmp_path / 'ref.pt')!r})
        assert torch.allclose(got, ref, atol=1e-6), (got - ref).abs().max()
        print("OK", type(model).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK MSCLForTemporalGrounding" in res.stdout


def test_base_model_prefix_names_the_base_model_and_loading_matches_every_key(tmp_path):
    # transformers strips / adds `base_model_prefix + "."` to checkpoint keys when they do not match and
    # `model.base_model` is `getattr(model, base_model_prefix, model)`: the prefix must name a submodule,
    # or be "" for a model that is its own base model (MSCL has no separate base model)
    model = MSCLForTemporalGrounding(tiny_config()).eval()
    prefix = type(model).base_model_prefix
    assert prefix == "" or isinstance(getattr(model, prefix, None), torch.nn.Module), prefix
    assert model.base_model is model
    model.update_loss_normalizer(3)
    model.save_pretrained(tmp_path)
    loaded, info = MSCLForTemporalGrounding.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert "loss_normalizer" in loaded.state_dict() and float(loaded.loss_normalizer) == float(model.loss_normalizer)


def test_output_docstring_documents_every_field():
    import dataclasses
    import re

    from modeling_mscl import MSCLOutput

    doc = MSCLOutput.__doc__
    undocumented = [f.name for f in dataclasses.fields(MSCLOutput) if not re.search(rf"^\s+{f.name}: ", doc, re.M)]
    assert not undocumented, undocumented


def test_forward_honours_return_dict():
    cfg = tiny_config()
    model = MSCLForTemporalGrounding(cfg).eval()
    batch = make_batch(cfg, torch.Generator().manual_seed(13))
    with torch.no_grad():
        out = model(**batch, contrastive_seeds=torch.tensor([1, 2]))
        as_tuple = model(**batch, contrastive_seeds=torch.tensor([1, 2]), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(out.to_tuple())
    assert torch.equal(as_tuple[0], out.loss)


def test_auto_classes_resolve():
    from transformers import AutoConfig, AutoModel

    values = base_tiny_config().to_dict()
    values.pop("model_type")
    cfg = AutoConfig.for_model("mscl", **values)
    assert isinstance(cfg, MSCLConfig)
    assert isinstance(AutoModel.from_config(cfg), MSCLForTemporalGrounding)
