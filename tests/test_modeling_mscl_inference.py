"""The eval-mode inference fast path of ``ground`` (issue 14): exactness against the reference
computation (``fuse_and_predict`` + ``post_process_grounding``, which training uses), chunking / tiling invariance,
bf16, dtype plumbing through ``from_pretrained`` / ``pipeline``, and the compile fallback."""

import math

import pytest
import torch
import torch.nn.functional as F

import modeling_mscl.modeling_mscl as M
from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding
from modeling_mscl.processing_mscl import post_process_grounding

from conftest import tiny_config as _tiny_config

ATOL = 2e-5  # float32 rounding of the re-associated sums (outputs are O(1))


def tiny_config(**overrides):
    values = dict(hidden_dropout=0.0, drop_path=0.0)
    values.update(overrides)
    return _tiny_config(**values)


def tiny_model(seed=0, **overrides):
    """A tiny model whose LayerNorm affines, LayerScales, biases and level scales are far from their
    initial values, so that every fold is exercised (at init many of them are 1 or 0)."""
    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(tiny_config(**overrides)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("reg_head.out."):  # a large negative bias would ReLU every offset to 0
                continue
            if any(k in name for k in ("norm", "gamma", "bias", "background_token")):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        scales = model.reg_head.level_scales  # positive, or ReLU would zero every offset of a level
        scales.mul_(torch.empty(scales.shape).uniform_(0.5, 2.0, generator=g))
    return model


VARIANTS = {
    "affine": {},
    "adaln": {"fusion_mode": "adaln"},
    "identity-text": {"text_encoder_type": "identity", "text_num_layers": 0, "text_hidden_size": 32,
                      "text_use_abs_pe": False},
    "3-fusion-1-head-layers": {"fusion_num_layers": 3, "head_num_layers": 1},
    "1-fusion-3-head-layers": {"fusion_num_layers": 1, "head_num_layers": 3},
    "input-stride-2": {"video_input_stride": 2, "max_video_length": 128},
}


def _pyramid_and_text(model, t, lengths, gen):
    cfg = model.config
    video = torch.randn(1, t, cfg.video_input_dim, generator=gen)
    text = torch.zeros(len(lengths), max(lengths), cfg.text_input_dim)
    tmask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for i, n in enumerate(lengths):
        text[i, :n] = torch.randn(n, cfg.text_input_dim, generator=gen)
        tmask[i, :n] = True
    with torch.no_grad():
        _, _, levels, level_masks = model.encode_video(video, torch.ones(1, t, dtype=torch.bool))
        enc, enc_mask = model.encode_text(text, tmask)
    return levels, level_masks, enc, enc_mask


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("t", [1, 2, 7, 97, 150])
def test_fast_path_equals_fuse_and_predict(variant, t):
    """Per-level logits and offsets of the fast path == the reference, to float32 rounding, for odd /
    even / very short lengths (levels of length 1), text padding, several row-tile sizes (one
    call; many tiles whose halos cross level boundaries; the smallest tile the halo allows), with and
    without shape buckets (padded rows, queries and keys)."""
    model = tiny_model(**VARIANTS[variant])
    t = t * model.config.video_input_stride
    gen = torch.Generator().manual_seed(t)
    levels, level_masks, enc, enc_mask = _pyramid_and_text(model, t, [5, 12, 1, 7, 3], gen)
    with torch.no_grad():
        _, ref_logits, ref_offsets, ref_masks = model.fuse_and_predict(
            levels, level_masks, enc, enc_mask, torch.zeros(enc.shape[0], dtype=torch.long))
        assert M._EvalFusion.applies(model, levels, level_masks)
        for tile_rows, buckets in [(r, b) for r in (10_000, 37, 1) for b in (False, True)]:
            fast = M._EvalFusion(model, levels, level_masks, use_compile=False, tile_rows=tile_rows,
                                 shape_buckets=buckets)
            logits, offsets, masks = fast(enc, enc_mask)
            for level in range(len(levels)):
                assert logits[level].shape == ref_logits[level].shape
                assert offsets[level].shape == ref_offsets[level].shape
                assert torch.equal(masks[level], ref_masks[level])
                torch.testing.assert_close(logits[level], ref_logits[level], rtol=0, atol=ATOL)
                torch.testing.assert_close(offsets[level], ref_offsets[level], rtol=0, atol=ATOL)


def test_folded_cross_attention_equals_the_layer():
    """fold_text's exact algebra on one layer: logits from the folded keys and out_proj applied to the
    values give the same scale/shift as q_proj → SDPA → out_proj on the video points."""
    model = tiny_model(fusion_mode="adaln")
    layer = model.fusion.layers[1]
    c, heads = model.config.hidden_size, layer.heads
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 40, c, generator=gen)  # q_conv outputs of two queries' rows
    text = torch.randn(2, 9, model.config.text_hidden_size, generator=gen)
    tmask = torch.ones(2, 9, dtype=torch.bool)
    tmask[1, 6:] = False
    with torch.no_grad():
        q = M._split_heads(layer.q_proj(layer.q_norm(z)), heads)
        kv = layer.norm_text(text)
        k, v = M._split_heads(layer.k_proj(kv), heads), M._split_heads(layer.v_proj(kv), heads)
        ref = layer.out_proj(M._merge_heads(M.global_attention(q, k, v, tmask)))
        folded = layer.fold_text(text, tmask, fold_query=True)
        y = F.layer_norm(z, (c,))
        logits = torch.einsum("nrc,nhlc->nhlr", y, folded["keys"]) + folded["key_bias"][..., None]
        attn = torch.softmax(logits, dim=2)
        out = torch.einsum("nhlr,nhlo->nro", attn, folded["values"])
    torch.testing.assert_close(out, ref, rtol=0, atol=ATOL)


def _reference_ground(model, video, queries):
    """``ground`` without the fast path: encode once, reference fusion + heads per query, decode."""
    with torch.no_grad():
        t = video.shape[0]
        _, _, levels, level_masks = model.encode_video(video[None], torch.ones(1, t, dtype=torch.bool))
        out = []
        for q in queries:
            enc, enc_mask = model.encode_text(q[None], torch.ones(1, q.shape[0], dtype=torch.bool))
            _, logits, offsets, masks = model.fuse_and_predict(levels, level_masks, enc, enc_mask,
                                                               torch.zeros(1, dtype=torch.long))
            out.extend(post_process_grounding((logits, offsets, masks), model.config))
    return out


def test_ground_moments_equal_the_reference_path():
    model = tiny_model()
    gen = torch.Generator().manual_seed(5)
    video = torch.randn(173, model.config.video_input_dim, generator=gen)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in (4, 9, 2, 15, 6)]
    for got, want in zip(model.ground(video, queries), _reference_ground(model, video, queries)):
        assert got.shape == want.shape and got.shape[0] > 0
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_ground_does_not_depend_on_chunking_or_tiling(monkeypatch):
    model = tiny_model(seed=4)
    gen = torch.Generator().manual_seed(6)
    video = torch.randn(211, model.config.video_input_dim, generator=gen)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in (3, 8, 5, 1, 16, 7, 2)]
    base = model.ground(video, queries)
    for chunk, tile_rows in ((1, 10_000), (3, 10_000), (16, 50), (2, 2_000), (7, 1)):
        monkeypatch.setattr(model, "_inference_tile_rows", lambda dtype, device, rows=tile_rows: rows)
        for a, b in zip(model.ground(video, queries, query_chunk_size=chunk), base):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)  # segments: float32 ulps of values ~200


def test_row_tiles_stay_within_the_budget(monkeypatch):
    """No fast-path call sees more than the row budget (queries × rows), so no buffer outgrows it."""
    model = tiny_model()
    seen = []
    real = M._fuse_and_predict_rows

    def spy(video_query, *args):
        seen.append(video_query.shape[0] * args[3][0]["values"].shape[0])
        return real(video_query, *args)

    monkeypatch.setattr(M, "_fuse_and_predict_rows", spy)
    monkeypatch.setattr(model, "_inference_tile_rows", lambda dtype, device: 120)
    video = torch.randn(400, model.config.video_input_dim)
    model.ground(video, [torch.randn(5, model.config.text_input_dim) for _ in range(3)], use_compile=False)
    assert seen and max(seen) <= 120
    # the real budget keeps the FFN's hidden layer (rows × 4C) at a few MB on CPUs; on GPUs (any non-CPU
    # device) 64× that, so a chunk of 16 queries of TACoS's longest test video (1,431 steps: fewer than
    # 2 × 1,431 rows over all pyramid levels) shares one call
    tacos = MSCLForTemporalGrounding(MSCLConfig.from_preset("tacos_c3d"))
    for dtype in (torch.float32, torch.bfloat16):
        cpu = tacos._inference_tile_rows(dtype, torch.device("cpu"))
        assert cpu * 4 * 256 * torch.empty((), dtype=dtype).element_size() <= 8 << 20
        for device in ("cuda", "mps"):
            gpu = tacos._inference_tile_rows(dtype, torch.device(device))
            assert gpu == 64 * cpu and gpu >= 16 * 2 * 1431


def test_video_encoder_tiles_follow_the_device(monkeypatch):
    """The video encoder's inference tiles use the CPU budget on CPUs and 64× it elsewhere."""
    model = tiny_model()
    budgets = []
    real = M._tile_rows
    monkeypatch.setattr(M, "_tile_rows", lambda width, budget=1 << 20: budgets.append(budget) or real(width, budget))
    video = torch.randn(300, model.config.video_input_dim)
    model.ground(video, [torch.randn(4, model.config.text_input_dim)])
    assert budgets and set(budgets) == {1 << 20}
    assert M._tile_scale(torch.device("cpu")) == 1
    assert M._tile_scale(torch.device("cuda")) == M._tile_scale("mps") == 64
    budgets.clear()
    monkeypatch.setattr(M, "_tile_scale", lambda device: 64)
    model.ground(video, [torch.randn(4, model.config.text_input_dim)])
    assert budgets and set(budgets) == {64 << 20}


# --------------------------------------------------------------------------------------------
# shape buckets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_octave, min_step", [(8, 16), (8, 8), (2, 1)])
def test_shape_bucket_is_the_smallest_bucket_at_least_the_size(per_octave, min_step):
    octaves = {}
    for size in range(1, 5000):
        b = M._shape_bucket(size, per_octave, min_step)
        step = max(min_step, 2 ** int(math.log2(size)) // per_octave)
        assert b % step == 0 and size <= b < size + step, (size, b)
        if size >= per_octave * min_step:
            assert b <= size * (1 + 1 / per_octave)
        octaves.setdefault(int(math.log2(size)), set()).add(b)
    assert all(len(v) <= per_octave + 1 for v in octaves.values())
    assert [M._shape_bucket(n, 2) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]


@pytest.mark.parametrize("variant", ["affine", "adaln", "input-stride-2"])
def test_ground_with_shape_buckets_equals_the_exact_shapes(variant, monkeypatch):
    """Buckets pad the video under its mask, the queries with copies and the text with masked tokens, and
    drop what the padding produced: the moments are those of the exact shapes (float32, to rounding),
    in whole-video calls and in row tiles, for any chunking."""
    model = tiny_model(seed=16, **VARIANTS[variant])
    gen = torch.Generator().manual_seed(17)
    dv, dt = model.config.video_input_dim, model.config.text_input_dim
    queries = [torch.randn(n, dt, generator=gen) for n in (3, 8, 5, 1, 16, 7, 2, 11, 4)]
    for t in (2, 37, 173, 402):
        video = torch.randn(t * model.config.video_input_stride, dv, generator=gen)
        for chunk, tile_rows in ((None, None), (3, None), (None, 60)):
            if tile_rows:
                monkeypatch.setattr(model, "_inference_tile_rows", lambda dtype, device, r=tile_rows: r)
            exact = model.ground(video, queries, query_chunk_size=chunk, shape_buckets=False)
            bucketed = model.ground(video, queries, query_chunk_size=chunk, shape_buckets=True)
            for a, b in zip(bucketed, exact):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)
            monkeypatch.undo()


def _call_shapes(model, monkeypatch, videos, **kwargs):
    """Every matrix-shaping size ``ground`` uses: the video encoder's input, the text encoder's input,
    and each fusion call's (rows, queries, keys)."""
    shapes = {"video": set(), "text": set(), "rows": set()}
    encode_video, encode_text, rows_fn = model.encode_video, model.encode_text, M._fuse_and_predict_rows

    def spy_video(video, mask):
        shapes["video"].add(video.shape[1])
        return encode_video(video, mask)

    def spy_text(text, mask):
        shapes["text"].add(tuple(text.shape[:2]))
        return encode_text(text, mask)

    def spy_rows(video_query, video_mod, row_mask, level_scale, text, *args):
        shapes["rows"].add((video_query.shape[0], text[0]["values"].shape[0], text[0]["values"].shape[1]))
        return rows_fn(video_query, video_mod, row_mask, level_scale, text, *args)

    monkeypatch.setattr(model, "encode_video", spy_video)
    monkeypatch.setattr(model, "encode_text", spy_text)
    monkeypatch.setattr(M, "_fuse_and_predict_rows", spy_rows)
    for video, queries in videos:
        model.ground(video, queries, use_compile=False, **kwargs)
    monkeypatch.undo()
    return shapes


def test_shape_buckets_bound_the_set_of_shapes(monkeypatch):
    """A dataset of many video lengths, query counts and query lengths: with buckets, ground uses a few
    shapes (each at most one bucket step above the exact one), without them about one per video; bf16
    models on CPUs use buckets by default, float32 models do not."""
    model = tiny_model(seed=18)
    gen = torch.Generator().manual_seed(19)
    dv, dt = model.config.video_input_dim, model.config.text_input_dim
    lengths = list(range(300, 600, 7))  # 43 videos
    videos = [(torch.randn(t, dv, generator=gen),
               [torch.randn(3 + (i * 5 + j) % 17, dt, generator=gen) for j in range(1 + i % 9)])
              for i, t in enumerate(lengths)]
    exact = _call_shapes(model, monkeypatch, videos, shape_buckets=False)
    bucketed = _call_shapes(model, monkeypatch, videos, shape_buckets=True)
    assert exact["video"] == set(lengths) and len(exact["rows"]) >= len(lengths)
    # 300..599 steps: one octave and a bit, at 8 sizes per octave
    assert bucketed["video"] == {M._shape_bucket(t, 8, 16) for t in lengths} and len(bucketed["video"]) <= 10
    # (queries 1..9 → 1, 2, 3, 4, 6, 8, 12) × (tokens 3..19 → encoded 8, 16, 24, or the position table's 16
    # raw tokens where every query of the batch fits the table)
    assert len(bucketed["text"]) <= 7 * 4
    extra, table = model.text_encoder.added_tokens, model.config.max_text_length
    assert all(n in (1, 2, 3, 4, 6, 8, 12, 16) and ((length + extra) % 8 == 0 or length == table)
               for n, length in bucketed["text"])
    rows = {r for r, _, _ in bucketed["rows"]}
    assert len(rows) <= 10 and len({r for r, _, _ in exact["rows"]}) >= len(lengths)
    heads = model.fusion.layers[0].heads
    # keys per query: a multiple of 8, or all of a batch padded to the position table
    assert all(keys % (8 * heads) == 0 or keys == heads * (table + extra) for _, _, keys in bucketed["rows"])
    # queries per call: a bucket, or the most that fit the row budget (a function of the bucketed rows)
    budget = model._inference_tile_rows(torch.float32, torch.device("cpu"))
    assert all(n in (1, 2, 3, 4, 6, 8, 12, 16) or n == budget // r for r, n, _ in bucketed["rows"])
    # bucket padding is at most one step (1/8 of the size) beyond the exact rows of each length
    exact_rows = sorted({r for r, _, _ in exact["rows"]})
    assert all(any(r <= b <= r * 1.125 + 16 for b in rows) for r in exact_rows)

    model = model.to(torch.bfloat16)
    default16 = _call_shapes(model, monkeypatch, videos[:5])
    assert default16["video"] == {M._shape_bucket(t, 8, 16) for t in lengths[:5]}
    model = model.float()
    default32 = _call_shapes(model, monkeypatch, videos[:5])
    assert default32["video"] == set(lengths[:5])


def test_training_mode_and_padded_levels_use_the_reference():
    model = tiny_model()
    levels, level_masks, _, _ = _pyramid_and_text(model, 50, [3], torch.Generator().manual_seed(0))
    assert M._EvalFusion.applies(model, levels, level_masks)
    assert not M._EvalFusion.applies(model, levels, [m.clone().fill_(False) for m in level_masks])
    model.train()
    assert not M._EvalFusion.applies(model, levels, level_masks)


# --------------------------------------------------------------------------------------------
# bf16 and dtype plumbing
# --------------------------------------------------------------------------------------------


def _top1_iou(a, b):
    assert a.shape[0] > 0 and b.shape[0] > 0
    (s1, e1), (s2, e2) = a[0, :2].tolist(), b[0, :2].tolist()
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    return inter / ((e1 - s1) + (e2 - s2) - inter)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-ffn", "eager-ffn"])
def test_bf16_ground_is_close_to_float32(monkeypatch, fused):
    """bf16 model (weights and activations; float32 residual stream and LayerNorm statistics): the head
    outputs stay within 0.05 of float32 and the top-1 moments overlap (tIoU ≥ 0.9), with the FFNs on
    oneDNN's fused linear (the default on CPUs where it is available) and eager."""
    if fused and not M._fused_linear_available():
        pytest.skip("oneDNN's fused linear is not available in this torch build")
    monkeypatch.setattr(M, "_FUSED_LINEAR", fused)
    packed = []
    real = M.MSCLForTemporalGrounding._inference_weights
    monkeypatch.setattr(M.MSCLForTemporalGrounding, "_inference_weights",
                        lambda self, dtype, fused=False: packed.append(fused) or real(self, dtype, fused=fused))
    model = tiny_model(seed=7)
    gen = torch.Generator().manual_seed(8)
    video = torch.randn(150, model.config.video_input_dim, generator=gen)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in (5, 11, 3)]
    levels, level_masks, enc, enc_mask = _pyramid_and_text(model, 150, [5, 11, 3], gen)
    with torch.no_grad():
        ref = M._EvalFusion(model, levels, level_masks, False, 10_000)(enc, enc_mask)
    fp32 = model.ground(video, queries)
    model = model.to(torch.bfloat16)
    assert model.dtype == torch.bfloat16
    with torch.no_grad():
        levels16 = [x.bfloat16() for x in levels]
        out = M._EvalFusion(model, levels16, level_masks, False, 10_000)(enc.bfloat16(), enc_mask)
    for a, b in zip(out[0] + out[1], ref[0] + ref[1]):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=0, atol=0.05)
    bf16 = model.ground(video, queries, use_compile=False)
    for a, b in zip(bf16, fp32):
        assert a.dtype == torch.float32 and a.shape[1] == 3
        assert _top1_iou(a, b) >= 0.9
    assert packed == [False, False, fused, fused]  # float32: never packed; bf16: packed where fused


@pytest.mark.skipif(not M._fused_linear_available(), reason="oneDNN's fused linear is not available in this torch build")
def test_fused_ffn_computes_the_ffn_with_fewer_roundings():
    """The bf16 FFN on oneDNN's fused linear (bias and GELU on the float32 accumulator, packed weights)
    computes the eager bf16 FFN's function: both within bf16 rounding of the float64 computation on the
    same bf16 weights and normalised input, the fused one (one rounding per GEMM instead of three) no
    further from it on average."""
    model = tiny_model(seed=19).to(torch.bfloat16)
    layer = model.fusion.layers[1]
    eager = layer.ffn.inference_weights(layer.norm_ffn, layer.layer_scale_ffn, torch.bfloat16)
    fused = layer.ffn.inference_weights(layer.norm_ffn, layer.layer_scale_ffn, torch.bfloat16, fused=True)
    assert "w1_packed" in fused and "w1_packed" not in eager
    x = torch.randn(3, 41, model.config.hidden_size, generator=torch.Generator().manual_seed(20))
    h = F.layer_norm(x, x.shape[-1:], eager["norm_w"], eager["norm_b"], eager["norm_eps"]).bfloat16().double()
    w = {k: v.double() for k, v in eager.items() if k in ("w1", "b1", "w2", "b2")}
    ref = x.double() + F.linear(F.gelu(F.linear(h, w["w1"], w["b1"])), w["w2"], w["b2"])
    with torch.no_grad():
        err_fused = (M._ffn_residual(x, fused).double() - ref).abs()
        err_eager = (M._ffn_residual(x, eager).double() - ref).abs()
    update = (ref - x.double()).abs().max()
    assert err_fused.max() <= 0.02 * update and err_eager.max() <= 0.02 * update
    assert err_fused.mean() <= err_eager.mean()


def test_fused_linear_check_falls_back_when_the_op_disagrees(monkeypatch):
    """The once-per-process check compares oneDNN's op with the unfused ops: where they disagree (here:
    a GELU that is not one), the check says no and the fast path keeps the eager FFN."""
    monkeypatch.setattr(M, "_FUSED_LINEAR", None)
    with monkeypatch.context() as m:
        m.setattr(F, "gelu", lambda t, approximate="none": -t)
        assert M._fused_linear_available() is False
    assert M._FUSED_LINEAR is False  # cached: no second check
    model = tiny_model(seed=21)
    levels, level_masks, enc, enc_mask = _pyramid_and_text(model, 60, [4, 9], torch.Generator().manual_seed(22))
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        fast = M._EvalFusion(model, [x.bfloat16() for x in levels], level_masks, False, 10_000)
        assert all("w1_packed" not in layer["ffn"] for layer in fast.weights["layers"])
        logits, offsets, _ = fast(enc.bfloat16(), enc_mask)
    assert all(bool(torch.isfinite(x).all()) for x in logits + offsets)


def test_from_pretrained_and_pipeline_follow_the_dtype(tmp_path):
    from transformers import AutoModel, pipeline

    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path)
    video = torch.randn(120, model.config.video_input_dim)
    query = torch.randn(6, model.config.text_input_dim)
    fp32 = AutoModel.from_pretrained(tmp_path)
    assert fp32.dtype == torch.float32  # the default for users who do nothing
    bf16 = AutoModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    a, b = fp32.ground(video, [query])[0], bf16.ground(video, [query], use_compile=False)[0]
    assert b.dtype == torch.float32 and _top1_iou(a, b) >= 0.9

    pipe = pipeline("video-temporal-grounding", model=str(tmp_path), dtype=torch.bfloat16)
    assert pipe.model.dtype == torch.bfloat16
    pipe32 = pipeline("video-temporal-grounding", model=str(tmp_path))
    assert pipe32.model.dtype == torch.float32
    # a model instance with an explicit dtype is converted, as a loaded one would be
    inst = pipeline("video-temporal-grounding", model=AutoModel.from_pretrained(tmp_path), dtype=torch.bfloat16)
    assert inst.model.dtype == torch.bfloat16
    r16 = pipe(video.numpy(), query.numpy(), fps=1.0, query_chunk_size=1)
    r32 = pipe32(video.numpy(), query.numpy(), fps=1.0)
    m16, m32 = r16["moments"][0], r32["moments"][0]
    inter = max(0.0, min(m16["end"], m32["end"]) - max(m16["start"], m32["start"]))
    assert inter / (m16["end"] - m16["start"] + m32["end"] - m32["start"] - inter) >= 0.9


# --------------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------------


def test_compile_failure_falls_back_to_eager_with_the_same_results(monkeypatch, caplog):
    model = tiny_model(seed=10)
    video = torch.randn(90, model.config.video_input_dim)
    queries = [torch.randn(n, model.config.text_input_dim) for n in (4, 7)]
    eager = model.ground(video, queries, use_compile=False)

    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            calls.append(1)
            raise RuntimeError("no working C++ compiler (simulated)")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(M, "_COMPILED_ROWS", None)
    monkeypatch.setattr(M, "_COMPILE_ERROR", None)
    with caplog.at_level("WARNING"):
        got = model.ground(video, queries, use_compile=True)
        again = model.ground(video, queries, use_compile=True)
    assert len(calls) == 1  # tried once, then eager for the rest of the process
    assert M._COMPILE_ERROR and "simulated" in M._COMPILE_ERROR
    assert sum("running it eagerly" in r.getMessage() for r in caplog.records) == 1
    for a, b, c in zip(got, again, eager):
        assert torch.equal(a, c) and torch.equal(b, c)


def test_default_compile_policy():
    model = tiny_model()
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not model._use_compile(None, torch.float32, cpu) and not model._use_compile(None, torch.bfloat16, cpu)
    assert model._use_compile(None, torch.float32, cuda) and model._use_compile(None, torch.bfloat16, cuda)
    assert not model._use_compile(False, torch.bfloat16, cpu) and model._use_compile(True, torch.float32, cpu)


@pytest.mark.slow
def test_compiled_fast_path_equals_eager(monkeypatch):
    """torch.compile (inductor) of the fast path gives the eager results (float32: to rounding)."""
    monkeypatch.setattr(M, "_COMPILED_ROWS", None)
    monkeypatch.setattr(M, "_COMPILE_ERROR", None)
    model = tiny_model(seed=11)
    gen = torch.Generator().manual_seed(12)
    video = torch.randn(130, model.config.video_input_dim, generator=gen)
    queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in (4, 9, 6)]
    eager = model.ground(video, queries, use_compile=False)
    compiled = model.ground(video, queries, use_compile=True)
    assert M._COMPILE_ERROR is None, M._COMPILE_ERROR
    for a, b in zip(compiled, eager):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------
# video encoder: row tiles at inference
# --------------------------------------------------------------------------------------------


def test_encoder_row_tiles_at_inference_equal_the_untiled_encoder(monkeypatch):
    """Without grad (and in eval mode), long sequences run each video block in row tiles with the
    context its convs and attention window need; the pyramid equals the untiled computation (the
    training path, used with grad) to float32 rounding, padded steps included."""
    model = tiny_model(seed=13)
    gen = torch.Generator().manual_seed(14)
    t = 300
    video = torch.randn(1, t, model.config.video_input_dim, generator=gen)
    mask = torch.ones(1, t, dtype=torch.bool)
    mask[0, 251:] = False
    with torch.enable_grad():
        _, _, ref, ref_masks = model.encode_video(video, mask)
    monkeypatch.setattr(M, "_tile_rows", lambda width, budget=1 << 20: 23)
    tiled = []
    real = M.VideoBlock._forward_tiles
    monkeypatch.setattr(M.VideoBlock, "_forward_tiles", lambda self, *a: tiled.append(self.stride) or real(self, *a))
    with torch.no_grad():
        _, _, got, got_masks = model.encode_video(video, mask)
    assert 1 in tiled and 2 in tiled  # stride-1 and stride-2 blocks ran in tiles
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=ATOL)
    assert all(torch.equal(a, b) for a, b in zip(got_masks, ref_masks))


def test_text_length_bucket_stays_within_the_position_table(monkeypatch):
    """With shape buckets, the padded text batch is a multiple of 8 once encoded, but no longer than the
    position table (``max_text_length``) where every query fits it, so the text encoder takes the table's
    one-slice branch; a longer query still pads beyond it. Moments equal those without buckets."""
    model = tiny_model(seed=23)  # max_text_length 16, one added (background) token
    assert model.config.max_text_length == 16 and model.text_encoder.added_tokens == 1
    gen = torch.Generator().manual_seed(24)
    video = torch.randn(90, model.config.video_input_dim, generator=gen)
    widths = []
    real = M.add_position_encoding
    monkeypatch.setattr(M, "add_position_encoding",
                        lambda x, m, t, rows=None: widths.append((x.shape[1], t.shape[0])) or real(x, m, t, rows))
    for lengths, expected in (((16, 3), 16), ((15, 2), 15), ((9,), 15), ((17, 4), 23)):
        queries = [torch.randn(n, model.config.text_input_dim, generator=gen) for n in lengths]
        widths.clear()
        bucketed = model.ground(video, queries, shape_buckets=True)
        assert [w for w, _ in widths if _ == 16] == [expected]  # the text encoder's one call (table of 16)
        exact = model.ground(video, queries, shape_buckets=False)
        for a, b in zip(bucketed, exact):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("overrides", [{}, {"video_input_stride": 2, "max_video_length": 128},
                                       {"video_use_abs_pe": False, "num_embedding_convs": 3}],
                         ids=["k3-convs", "strided-k5-conv", "no-pe-3-convs"])
@pytest.mark.parametrize("lengths", [(300,), (300, 251), (700, 530)], ids=["one", "batch-masked", "beyond-table"])
def test_embedding_row_tiles_at_inference_equal_the_untiled_stage(monkeypatch, overrides, lengths):
    """Without grad (and in eval mode), long inputs run the embedding stage (projection, embedding
    convs, position encoding) in row tiles that read their own context rows; the embedding, its mask and
    the pyramid equal the untiled stage (the training path) to float32 rounding: strided first conv, a
    batch with a masked tail, and sequences longer than the position table (stretched over the valid
    length) included."""
    model = tiny_model(seed=16, **overrides)
    gen = torch.Generator().manual_seed(17)
    t = max(lengths)
    video = torch.randn(len(lengths), t, model.config.video_input_dim, generator=gen)
    mask = torch.stack([torch.arange(t) < n for n in lengths])
    with torch.enable_grad():
        ref = model.encode_video(video, mask)
    monkeypatch.setattr(M, "_tile_rows", lambda width, budget=1 << 20: 23)
    calls = []
    real = M.MSCLVideoEncoder._embed_tiles
    monkeypatch.setattr(M.MSCLVideoEncoder, "_embed_tiles", lambda self, *a: calls.append(1) or real(self, *a))
    with torch.no_grad():
        got = model.encode_video(video, mask)
    assert calls  # the tiled stage ran
    torch.testing.assert_close(got[0], ref[0].detach(), rtol=0, atol=ATOL)  # embedding Z^0 (before the PE)
    assert torch.equal(got[1], ref[1])
    for a, b in zip(got[2], ref[2]):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=ATOL)
    assert all(torch.equal(a, b) for a, b in zip(got[3], ref[3]))


def test_tiled_position_encoding_equals_the_untiled_function():
    """The tiled position encoding (``rows``) adds exactly what the untiled one adds (same sums): a
    sequence within the table, and a batch longer than the table with one sequence stretched over its
    valid length and one that fits the table."""
    gen = torch.Generator().manual_seed(18)
    table = M.sinusoid_table(64, 16)
    for t, lengths in ((50, (50, 31)), (150, (150, 40)), (150, (120, 90))):
        x = torch.randn(len(lengths), t, 16, generator=gen)
        mask = torch.stack([torch.arange(t) < n for n in lengths])
        for rows in (7, 64, 500):
            assert torch.equal(M.add_position_encoding(x, mask, table, rows), M.add_position_encoding(x, mask, table))


def test_autocast_keeps_the_reference_path():
    """Under torch.autocast, ground runs the reference fusion + heads (autocast's semantics, as before)."""
    model = tiny_model(seed=15)
    levels, level_masks, _, _ = _pyramid_and_text(model, 60, [3], torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not M._EvalFusion.applies(model, levels, level_masks)
        out = model.ground(torch.randn(60, model.config.video_input_dim), [torch.randn(4, model.config.text_input_dim)])
    assert out[0].dtype == torch.float32 and out[0].shape[1] == 3
