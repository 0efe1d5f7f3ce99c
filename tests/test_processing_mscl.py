"""Time mapping (SnAG §7.3 / §5.9) and fixed-length resampling."""

import numpy as np
import pytest
import torch

from modeling_mscl.processing_mscl import TimeMapping, fixed_length_clip_size, resample_to_fixed_length

from conftest import tiny_config


def test_feature_index_formulas_of_the_snag_notes():
    t = np.array([0.5, 3.0, 12.25])
    tacos = TimeMapping(fps=29.4, clip_size=16, clip_stride=4, downsample_rate=4, duration=100.0)
    assert np.allclose(tacos.seconds_to_feature_index(t), t * 29.4 / 16 - 0.5)
    mad = TimeMapping(fps=5, clip_size=1, clip_stride=1, input_stride=2, duration=7200.0)
    assert np.allclose(mad.seconds_to_feature_index(t), 5 * t - 0.5)
    assert np.allclose(mad.seconds_to_grid(t), (5 * t - 0.5) / 2)
    ego = TimeMapping(fps=30, clip_size=32, clip_stride=16, duration=500.0)
    assert np.allclose(ego.seconds_to_feature_index(t), 30 * t / 16 - 1)


@pytest.mark.parametrize(
    "mapping",
    [
        TimeMapping(fps=29.4, clip_size=16, clip_stride=4, downsample_rate=4, duration=300.0),
        TimeMapping(fps=5, clip_size=1, clip_stride=1, input_stride=2, duration=300.0),
        TimeMapping(fps=24, clip_size=16, clip_stride=4, duration=300.0).with_fixed_length(700, 256),
    ],
)
def test_round_trip_is_exact(mapping):
    t = torch.linspace(1.0, 290.0, 57, dtype=torch.float64)
    back = mapping.grid_to_seconds(mapping.seconds_to_grid(t))
    assert torch.allclose(back, t, atol=1e-5)


def test_grid_to_seconds_clamps_to_video():
    m = TimeMapping(fps=1, clip_size=1, clip_stride=1, duration=10.0)
    assert m.grid_to_seconds(-3.0) == 0.0
    assert m.grid_to_seconds(50.0) == 10.0


def test_fixed_length_stride():
    m = TimeMapping(fps=24, clip_size=16, clip_stride=4, duration=30.0)
    fixed = m.with_fixed_length(num_features=177, fixed_length=256)
    size = ((177 - 1) * 4 + 16) / 256
    assert fixed.clip_size == fixed.clip_stride == pytest.approx(size)
    assert fixed_length_clip_size(177, 256, 4, 16) == pytest.approx(size)
    # step i is centred on frame i*size + size/2
    assert fixed.feature_index_to_seconds(10.0) == pytest.approx((10 * size + size / 2) / 24)


def test_resample_to_fixed_length():
    x = torch.arange(700, dtype=torch.float32)[:, None].repeat(1, 3)
    y = resample_to_fixed_length(x, 256)
    assert y.shape == (256, 3)
    assert torch.all(y[1:, 0] > y[:-1, 0])  # order preserved
    const = resample_to_fixed_length(torch.full((90, 2), 4.0), 256)  # short video: stretched
    assert const.shape == (256, 2) and torch.allclose(const, torch.full_like(const, 4.0))
    with pytest.raises(ValueError, match="empty"):
        resample_to_fixed_length(torch.zeros(0, 3), 256)


def test_invalid_mapping_values():
    with pytest.raises(ValueError, match="fps"):
        TimeMapping(fps=0, clip_size=1, clip_stride=1)
    with pytest.raises(ValueError, match="downsample_rate"):
        TimeMapping(fps=1, clip_size=1, clip_stride=1, downsample_rate=0)
    with pytest.raises(ValueError, match="duration"):
        TimeMapping(fps=1, clip_size=1, clip_stride=1, duration=-1.0)


# ----------------------------------------------------------------------------------------------------
# post_process_grounding: the one decoder
# ----------------------------------------------------------------------------------------------------
def _head_outputs():
    """Two levels (strides 1 and 2) of two queries, with every candidate placed by hand."""
    low = -20.0  # sigmoid(-20) ≈ 2e-9: below pre_nms_threshold, never a candidate
    logits = [torch.full((2, 8), low), torch.full((2, 4), low)]
    offsets = [torch.zeros(2, 8, 2), torch.zeros(2, 4, 2)]
    masks = [torch.ones(2, 8, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)]
    # query 0: level 1, point 2 (p = 4, stride 2): (4 - 0.5·2, 4 + 1.25·2) = (3, 6.5), score sigmoid(2)
    logits[1][0, 2], offsets[1][0, 2] = 2.0, torch.tensor([0.5, 1.25])
    # query 0: a masked point never counts, whatever its logit
    logits[0][0, 7], masks[0][0, 7] = 5.0, False
    # query 1: level 0, point 5: (5 - 1, 5 + 2) = (4, 7), score 0.5; point 1 is too short (0.02 <= 0.1)
    logits[0][1, 5], offsets[0][1, 5] = 0.0, torch.tensor([1.0, 2.0])
    logits[0][1, 1], offsets[0][1, 1] = 3.0, torch.tensor([0.01, 0.01])
    return logits, offsets, masks


def test_post_process_grounding_decodes_hand_placed_candidates():
    from modeling_mscl import post_process_grounding

    config = tiny_config()
    assert config.level_strides[:2] == [1, 2]
    moments = post_process_grounding(_head_outputs(), config)
    assert len(moments) == 2 and all(m.dtype == torch.float32 and m.device.type == "cpu" for m in moments)
    torch.testing.assert_close(moments[0], torch.tensor([[3.0, 6.5, float(torch.sigmoid(torch.tensor(2.0)))]]))
    torch.testing.assert_close(moments[1], torch.tensor([[4.0, 7.0, 0.5]]))
    # an MSCLOutput-like object works the same as the triple
    logits, offsets, masks = _head_outputs()

    class Out:
        pass

    out = Out()
    out.logits, out.offsets, out.masks = logits, offsets, masks
    for a, b in zip(post_process_grounding(out, config), moments):
        assert torch.equal(a, b)
    # overrides: a threshold above both scores leaves nothing
    assert [m.shape for m in post_process_grounding(out, config, pre_nms_threshold=0.95)] == [(0, 3), (0, 3)]


def test_post_process_grounding_in_seconds():
    from modeling_mscl import post_process_grounding

    config = tiny_config()
    grid = post_process_grounding(_head_outputs(), config)
    one = TimeMapping(fps=2.0, clip_size=1, clip_stride=1, duration=3.0)  # (g + 0.5) / 2, clamped to [0, 3]
    other = TimeMapping(fps=1.0, clip_size=2, clip_stride=1, input_stride=2, duration=60.0)  # 2g + 1
    for mappings in (one, [one, other]):
        seconds = post_process_grounding(_head_outputs(), config, time_mappings=mappings)
        for q, (s, g) in enumerate(zip(seconds, grid)):
            m = mappings if isinstance(mappings, TimeMapping) else mappings[q]
            assert s.dtype == torch.float64
            assert torch.equal(s[:, :2], m.grid_to_seconds(g[:, :2].double()))
            assert torch.equal(s[:, 2], g[:, 2].double())
    assert post_process_grounding(_head_outputs(), config, time_mappings=one)[0][0, :2].tolist() == [1.75, 3.0]
    assert post_process_grounding(_head_outputs(), config, time_mappings=[one, other])[1][0, :2].tolist() == [9.0, 15.0]
    with pytest.raises(ValueError, match="one mapping per query"):
        post_process_grounding(_head_outputs(), config, time_mappings=[one])


def _decode_one_query(logits, offsets, masks, config):
    """The decoding of one query, step by step as SnAG's (§5 steps 4–8), with the one-query Soft-NMS."""
    from modeling_mscl.nms_mscl import soft_nms_with_voting

    scores = torch.cat([torch.sigmoid(x.float()) * m.float() for x, m in zip(logits, masks)])
    offs = torch.cat([o.float() for o in offsets])
    points = torch.cat([torch.arange(len(x), dtype=torch.float64) * s for x, s in zip(logits, config.level_strides)])
    strides = torch.cat([torch.full((len(x),), float(s), dtype=torch.float64) for x, s in zip(logits, config.level_strides)])
    ranked = scores.masked_fill(scores <= config.pre_nms_threshold, -1.0)
    top, idx = ranked.topk(min(config.pre_nms_topk, len(scores)))
    idx, top = idx[top > config.pre_nms_threshold], top[top > config.pre_nms_threshold]
    o = offs[idx].double()
    seg = torch.stack((points[idx] - o[:, 0] * strides[idx], points[idx] + o[:, 1] * strides[idx]), dim=1)
    long_enough = (seg[:, 1] - seg[:, 0]) > config.min_segment_length
    seg, sc = soft_nms_with_voting(seg[long_enough], top[long_enough], sigma=config.nms_sigma,
                                   min_score=config.nms_min_score, max_segments=config.max_segments,
                                   voting_threshold=config.voting_threshold)
    return torch.cat((seg, sc[:, None]), dim=1)


@pytest.mark.parametrize("max_segments", [5, 50])
def test_post_process_grounding_batches_queries_exactly(max_segments):
    """All queries decoded at once equal each query decoded alone, on head outputs with many tied scores
    (quantised logits), short segments (below min_segment_length) and queries with few candidates."""
    from modeling_mscl import post_process_grounding

    config = tiny_config(max_segments=max_segments, pre_nms_topk=80, min_segment_length=0.5)
    g = torch.Generator().manual_seed(max_segments)
    lengths = [64 // 2**i for i in range(len(config.level_strides))]
    n = 9
    logits = [(torch.randint(-6, 4, (n, t), generator=g).float() / 2) for t in lengths]
    logits[0][2] = -20.0  # query 2: candidates on the coarser levels only
    offsets = [torch.rand(n, t, 2, generator=g) * 3 for t in lengths]
    masks = [torch.ones(n, t, dtype=torch.bool) for t in lengths]
    masks[1][:, -3:] = False
    moments = post_process_grounding((logits, offsets, masks), config)
    assert len(moments) == n
    for q in range(n):
        want = _decode_one_query([x[q] for x in logits], [o[q] for o in offsets], [m[q] for m in masks], config)
        assert torch.equal(moments[q], want), q
    assert max(len(m) for m in moments) == max_segments


def test_post_process_grounding_copies_to_the_host_once_per_chunk(monkeypatch):
    """A chunk's moments come to the CPU in one copy each for segments and scores, not one per query (on a
    GPU every copy is a host sync); queries without a moment keep their place."""
    from modeling_mscl import post_process_grounding

    config = tiny_config()
    g = torch.Generator().manual_seed(3)
    lengths = [32 // 2**i for i in range(len(config.level_strides))]
    n = 6
    logits = [torch.randn(n, t, generator=g) for t in lengths]
    for x in logits:
        x[4] = -50.0  # query 4: every score below the pre-NMS threshold, no moment
    offsets = [torch.rand(n, t, 2, generator=g) * 3 for t in lengths]
    masks = [torch.ones(n, t, dtype=torch.bool) for t in lengths]
    copies = []
    real = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(self.shape) or real(self, *a, **k))
    got = post_process_grounding((logits, offsets, masks), config)
    assert len(copies) == 2 and len(got) == n
    assert got[4].shape == (0, 3) and all(len(m) > 0 for i, m in enumerate(got) if i != 4)
    for q in range(n):  # each query's own moments, as decoding it alone gives them
        assert torch.equal(got[q], _decode_one_query([x[q] for x in logits], [o[q] for o in offsets],
                                                     [m[q] for m in masks], config)), q
    assert post_process_grounding(([x[:0] for x in logits], [o[:0] for o in offsets], [m[:0] for m in masks]), config) == []


# ----------------------------------------------------------------------------------------------------
# input checks shared by forward, ground, the pipeline and the collator
# ----------------------------------------------------------------------------------------------------
def test_shared_input_checks_name_the_problem():
    from modeling_mscl.processing_mscl import as_feature_tensor, validate_query_features, validate_video_features

    config = tiny_config()  # video_input_dim = text_input_dim = 32
    validate_video_features(torch.zeros(5, 32), config)
    validate_query_features(torch.zeros(3, 32), config, 0)
    cases = [
        (lambda: validate_video_features(torch.zeros(0, 32), config, source=" (from 'v.npy')"), r"empty.*from 'v\.npy'"),
        (lambda: validate_video_features(torch.zeros(32), config), r"2-D \(T, 32\)"),
        (lambda: validate_video_features(torch.zeros(5, 31), config),
         "video feature dimension is 31 but the model expects video_input_dim=32"),
        (lambda: validate_video_features(torch.tensor([[float("nan")] * 32]), config), "NaN or inf"),
        (lambda: validate_query_features(torch.zeros(3), config, 2), r"query 2: token features must be a 2-D \(L, 32\)"),
        (lambda: validate_query_features(torch.zeros(0, 32), config, 1), r"query 1 is empty \(zero tokens\)"),
        (lambda: validate_query_features(torch.zeros(3, 8), config, 0),
         "text feature dimension is 8 but the model expects text_input_dim=32"),
        (lambda: validate_query_features(torch.full((3, 32), float("inf")), config, 4), "query 4: token features contain NaN or inf"),
        (lambda: as_feature_tensor(np.array(["a", "b"]), "video features"), "must be numeric"),
        (lambda: as_feature_tensor([[1.0, 2.0], [3.0]], "query 0: token features"), "numeric array"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    t = as_feature_tensor(np.arange(6, dtype=np.float64).reshape(2, 3), "x")
    assert t.dtype == torch.float32 and t.tolist() == [[0, 1, 2], [3, 4, 5]]
