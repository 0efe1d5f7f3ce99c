"""Losses and label assignment against brute-force references and SnAG's worked examples."""

import math

import pytest
import torch

from modeling_mscl import MSCLConfig
from modeling_mscl.losses_mscl import (
    assign_labels,
    contrastive_positive_mask,
    cross_scale_contrastive_loss,
    draw_negatives,
    iou_loss_1d,
    sigmoid_focal_loss,
    within_scale_contrastive_loss,
)

# --------------------------------------------------------------------------------------------
# brute-force references: literal loops over Eq. 11 / Eq. 12
# --------------------------------------------------------------------------------------------


def _sim(a, b, temperature, normalize):
    if normalize:
        a = a / a.norm().clamp(min=1e-12)
        b = b / b.norm().clamp(min=1e-12)
    return float((a.double() * b.double()).sum()) / temperature


def _nce(s_pos, s_negs):
    # -log(e^s / (e^s + sum e^n)) computed stably in float64
    m = max([s_pos] + s_negs)
    return -(s_pos - m) + math.log(math.exp(s_pos - m) + sum(math.exp(n - m) for n in s_negs))


def brute_within(levels, positives, negatives, temperature, normalize):
    total, pairs = 0.0, 0
    for z, pos, neg in zip(levels, positives, negatives):
        for b in range(z.shape[0]):
            P = pos[b].nonzero().flatten().tolist()
            N = neg[b].nonzero().flatten().tolist()
            for i in P:
                for j in P:
                    if i == j:
                        continue
                    s = _sim(z[b, i], z[b, j], temperature, normalize)
                    negs = [_sim(z[b, i], z[b, n], temperature, normalize) for n in N]
                    total += _nce(s, negs)
                    pairs += 1
    return total, pairs


def brute_cross(anchor, anchor_pos, levels, positives, negatives, temperature, normalize):
    total, pairs = 0.0, 0
    for b in range(anchor.shape[0]):
        A = anchor_pos[b].nonzero().flatten().tolist()
        for i in A:
            for z, pos, neg in zip(levels, positives, negatives):
                P = pos[b].nonzero().flatten().tolist()
                N = neg[b].nonzero().flatten().tolist()
                for j in P:
                    s = _sim(anchor[b, i], z[b, j], temperature, normalize)
                    negs = [_sim(anchor[b, i], z[b, n], temperature, normalize) for n in N]
                    total += _nce(s, negs)
                    pairs += 1
    return total, pairs


def _random_sets(gen, b, lengths, p_pos=0.15, p_neg=0.3, empty_level=None):
    pos, neg = [], []
    for l, t in enumerate(lengths):
        p = torch.rand(b, t, generator=gen) < p_pos
        n = (torch.rand(b, t, generator=gen) < p_neg) & ~p
        if empty_level is not None and l == empty_level:
            p[:] = False
        pos.append(p)
        neg.append(n)
    # uneven sets: one video without negatives at level 0, one with a single positive at the last level
    neg[0][0] = False
    pos[-1][-1] = False
    pos[-1][-1, 0] = True
    return pos, neg


@pytest.mark.parametrize("normalize,temperature,scale", [(False, 1.0, None), (True, 0.1, 1.0), (True, 1.0, 1.0)])
def test_within_scale_matches_brute_force(normalize, temperature, scale):
    gen = torch.Generator().manual_seed(0)
    b, c, lengths = 3, 64, [40, 20, 10, 5]
    # unnormalised features of norm ≈ √C: raw dot products up to ~C, exp would overflow without LSE
    levels = [torch.randn(b, t, c, generator=gen) for t in lengths]
    pos, neg = _random_sets(gen, b, lengths, empty_level=2)
    ref, ref_pairs = brute_within(levels, pos, neg, temperature, normalize)
    got_sum, pairs = within_scale_contrastive_loss(
        levels, pos, neg, temperature=temperature, normalize=normalize, reduction="sum", return_pairs=True
    )
    assert int(pairs) == ref_pairs > 0
    assert torch.isfinite(got_sum)
    assert float(got_sum) == pytest.approx(ref, rel=1e-5)
    got_mean = within_scale_contrastive_loss(levels, pos, neg, temperature=temperature, normalize=normalize)
    assert float(got_mean) == pytest.approx(ref / ref_pairs, rel=1e-5)


@pytest.mark.parametrize("normalize,temperature", [(False, 1.0), (True, 0.1)])
def test_cross_scale_matches_brute_force(normalize, temperature):
    gen = torch.Generator().manual_seed(1)
    b, c, lengths = 3, 64, [32, 16, 8, 4]
    anchor = torch.randn(b, 64, c, generator=gen)
    anchor_pos = torch.rand(b, 64, generator=gen) < 0.08
    anchor_pos[1] = False  # a video without anchors
    levels = [torch.randn(b, t, c, generator=gen) for t in lengths]
    pos, neg = _random_sets(gen, b, lengths, empty_level=1)
    ref, ref_pairs = brute_cross(anchor, anchor_pos, levels, pos, neg, temperature, normalize)
    got, pairs = cross_scale_contrastive_loss(
        anchor, anchor_pos, levels, pos, neg, temperature=temperature, normalize=normalize, reduction="sum",
        return_pairs=True,
    )
    assert int(pairs) == ref_pairs > 0
    assert float(got) == pytest.approx(ref, rel=1e-5)
    mean = cross_scale_contrastive_loss(anchor, anchor_pos, levels, pos, neg, temperature=temperature, normalize=normalize)
    assert float(mean) == pytest.approx(ref / ref_pairs, rel=1e-5)


def test_contrastive_empty_sets_give_zero_without_nan():
    b, c = 2, 8
    levels = [torch.randn(b, 6, c, requires_grad=True)]
    none = [torch.zeros(b, 6, dtype=torch.bool)]
    loss = within_scale_contrastive_loss(levels, none, none)
    assert float(loss) == 0.0
    loss.backward()
    assert torch.isfinite(levels[0].grad).all()
    # positives without negatives: every term is -log(1) = 0, gradients finite
    pos = [torch.tensor([[True, True, False, False, False, False]] * b)]
    loss = within_scale_contrastive_loss(levels, pos, none, reduction="sum")
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    anchor = torch.randn(b, 6, c, requires_grad=True)
    loss = cross_scale_contrastive_loss(anchor, pos[0], levels, pos, none, reduction="sum")
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(anchor.grad).all()


def test_contrastive_large_unnormalised_features_do_not_overflow():
    gen = torch.Generator().manual_seed(3)
    levels = [torch.randn(1, 16, 512, generator=gen) * 3.0]  # dot products ~ ±1000: exp overflows in fp32
    pos = [torch.zeros(1, 16, dtype=torch.bool)]
    pos[0][0, :3] = True
    neg = [torch.zeros(1, 16, dtype=torch.bool)]
    neg[0][0, 8:11] = True
    loss = within_scale_contrastive_loss(levels, pos, neg, reduction="sum")
    ref, _ = brute_within(levels, pos, neg, 1.0, False)
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_mean_reduction_uses_given_normalizer():
    gen = torch.Generator().manual_seed(4)
    levels = [torch.randn(2, 12, 16, generator=gen)]
    pos = [torch.zeros(2, 12, dtype=torch.bool)]
    pos[0][:, 2:5] = True
    neg = [torch.zeros(2, 12, dtype=torch.bool)]
    neg[0][:, 8:11] = True
    total = within_scale_contrastive_loss(levels, pos, neg, reduction="sum")
    got = within_scale_contrastive_loss(levels, pos, neg, normalizer=torch.tensor(30.0))
    assert float(got) == pytest.approx(float(total) / 30.0, rel=1e-6)


# --------------------------------------------------------------------------------------------
# positive / negative sets
# --------------------------------------------------------------------------------------------


def test_contrastive_positive_mask_is_centre_window_without_range_filter():
    seg = torch.tensor([[10.0, 40.0]])  # c = 25
    for stride, expected in [(1.0, [24, 25, 26]), (4.0, [20, 24, 28]), (16.0, [16, 32])]:
        length = int(64 / stride)
        mask = contrastive_positive_mask(seg, length, stride, 1.5)
        points = (mask[0].nonzero().flatten().float() * stride).tolist()
        assert points == expected
    # strict inequalities: a point exactly on the window edge is out
    seg = torch.tensor([[0.0, 2.0]])  # c = 1, window (max(0, -0.5), min(2, 2.5)) = (0, 2)
    assert contrastive_positive_mask(seg, 4, 1.0, 1.5)[0].nonzero().flatten().tolist() == [1]


def test_draw_negatives_uniform_without_replacement():
    cand = torch.tensor([[True] * 6 + [False] * 4, [True, False] * 5])
    counts = torch.tensor([3, 10])
    gen = torch.Generator().manual_seed(0)
    hits = torch.zeros(10)
    for _ in range(3000):
        drawn = draw_negatives(cand, counts, torch.rand(2, 10, generator=gen))
        assert (drawn <= cand).all()
        assert int(drawn[0].sum()) == 3 and int(drawn[1].sum()) == 5  # all 5 when fewer exist
        hits += drawn[0].float()
    freq = hits[:6] / 3000
    assert torch.allclose(freq, torch.full((6,), 0.5), atol=0.05)
    assert hits[6:].sum() == 0


# --------------------------------------------------------------------------------------------
# SnAG assignment: worked examples of the reference notes §2.3
# --------------------------------------------------------------------------------------------

TACOS_EXAMPLES = [
    ((100.0, 101.0), {}, None),
    ((100.0, 103.0), {0: 2, 1: 1}, [(1, 2), (2, 1)]),
    ((100.0, 110.0), {1: 2, 2: 2}, [(2, 3), (3, 2)]),
    ((100.0, 151.0), {3: 2, 4: 3}, [(2.5, 3.875), (3.5, 2.875)]),
    ((100.3, 400.7), {6: 3, 7: 3}, [(1.43281, 3.26094), (2.43281, 2.26094)]),
    ((0.0, 2303.0), {7: 3}, [(8, 9.99219), (9, 8.99219)]),
]


@pytest.mark.parametrize("segment,per_level,first_targets", TACOS_EXAMPLES)
def test_label_assignment_worked_examples(segment, per_level, first_targets):
    cfg = MSCLConfig.from_preset("tacos_c3d")
    lengths = [2304 // 2**l for l in range(8)]
    positives, targets = assign_labels(torch.tensor([segment]), lengths, cfg.regression_ranges, 1.5)
    counts = {l: int(p.sum()) for l, p in enumerate(positives) if int(p.sum())}
    assert counts == per_level
    if first_targets:
        flat = torch.cat([t[p] for p, t in zip(positives, targets)])
        assert torch.allclose(flat[:2], torch.tensor(first_targets, dtype=torch.float32), atol=1e-4)


def test_label_assignment_takes_the_level_strides():
    cfg = MSCLConfig.from_preset("tacos_c3d")
    lengths = [2304 // s for s in cfg.level_strides]
    segment = torch.tensor([[100.3, 400.7]])
    default_pos, default_tgt = assign_labels(segment, lengths, cfg.regression_ranges, 1.5)
    pos, tgt = assign_labels(segment, lengths, cfg.regression_ranges, 1.5, strides=cfg.level_strides)
    assert all(torch.equal(a, b) for a, b in zip(default_pos + default_tgt, pos + tgt))
    # the strides place the points: halving them moves the positives and rescales the targets
    half_pos, half_tgt = assign_labels(segment, lengths, cfg.regression_ranges, 1.5, strides=[s / 2 for s in cfg.level_strides])
    assert not all(torch.equal(a, b) for a, b in zip(half_pos, pos))
    p = torch.arange(lengths[6])[half_pos[6][0]].float() * 32.0  # level 6 points at stride 32
    assert p.numel() and torch.allclose(half_tgt[6][0][half_pos[6][0]], torch.stack((p - 100.3, 400.7 - p), 1) / 32.0)
    with pytest.raises(ValueError, match="strides"):
        assign_labels(segment, lengths, cfg.regression_ranges, 1.5, strides=[1, 2])


def test_regression_ranges_match_snag():
    cfg = MSCLConfig.from_preset("tacos_c3d")
    assert cfg.regression_ranges == [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 128], [64, 256], [128, 2305]]
    assert MSCLConfig.from_preset("mad_clip").regression_ranges[-2:] == [[128, 512], [256, 4097]]


# --------------------------------------------------------------------------------------------
# grounding losses
# --------------------------------------------------------------------------------------------


def test_focal_loss_matches_hand_formula():
    x = torch.tensor([-2.0, 0.0, 1.5, 3.0])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    got = sigmoid_focal_loss(x, y, alpha=0.5, gamma=2.0, label_smoothing=0.2)
    ys = y * 0.8 + 0.1
    p = torch.sigmoid(x)
    ce = -(ys * torch.log(p) + (1 - ys) * torch.log(1 - p))
    pt = p * ys + (1 - p) * (1 - ys)
    assert torch.allclose(got, 0.5 * ce * (1 - pt) ** 2, atol=1e-6)


def test_diou_and_iou_losses():
    pred = torch.tensor([[1.0, 2.0], [2.0, 2.0], [0.0, 1.0]])
    tgt = torch.tensor([[1.0, 2.0], [1.0, 1.0], [1.0, 0.0]])
    iou = iou_loss_1d(pred, tgt, kind="iou")
    assert torch.allclose(iou, torch.tensor([0.0, 0.5, 1.0]))
    diou = iou_loss_1d(pred, tgt, kind="diou")
    # second: same centre → no distance term; third: disjoint, centre gap 0.5·((1-0)-(0-1)) = 1, c = 2
    assert torch.allclose(diou, torch.tensor([0.0, 0.5, 1.25]))
    with pytest.raises(ValueError, match="unknown regression loss"):
        iou_loss_1d(pred, tgt, kind="giou")
