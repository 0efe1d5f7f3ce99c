# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Tests for modeling_mscl.nms_mscl: SnAG parity fixture, tie-breaking, hand-made cases."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

import modeling_mscl.nms_mscl as nms_module
from modeling_mscl.nms_mscl import batched_soft_nms_with_voting, segment_iou, soft_nms_with_voting

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "reference" / "fixtures" / "snag_softnms_voting.json"


def _load_fixture() -> dict:
    if not FIXTURE.exists():
        pytest.skip("../shared not found: the SnAG parity fixtures are only in the development checkout")
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


def _fixture_params():
    # Parametrise lazily: 20 cases x 2 max_num_segs settings (ids stay stable without the file).
    return [(case, which) for case in range(20) for which in range(2)]


@pytest.mark.parametrize("case_index,result_index", _fixture_params())
def test_matches_snag_fixture(case_index: int, result_index: int) -> None:
    fixture = _load_fixture()
    settings = fixture["settings"]
    assert len(fixture["cases"]) == 20
    case = fixture["cases"][case_index]
    result = case["results"][result_index]
    segments = torch.tensor(case["segments"], dtype=torch.float32).reshape(-1, 2)
    scores = torch.tensor(case["scores"], dtype=torch.float32)
    out_segments, out_scores = soft_nms_with_voting(
        segments,
        scores,
        sigma=settings["sigma"],
        min_score=settings["min_score"],
        max_segments=result["max_num_segs"],
        voting_threshold=settings["voting_thresh"],
    )
    expected_segments = torch.tensor(result["out_segments"], dtype=torch.float32).reshape(-1, 2)
    expected_scores = torch.tensor(result["out_scores"], dtype=torch.float32)
    assert out_segments.dtype == torch.float32 and out_scores.dtype == torch.float32
    assert out_segments.shape == expected_segments.shape
    assert out_scores.shape == expected_scores.shape
    # The reference works in float32, the package in float64 (rounded once at the end): boundaries
    # may differ by the reference's own rounding, at most 2 float32 ulps (2.4e-7 relative).
    torch.testing.assert_close(out_segments, expected_segments, atol=1e-5, rtol=2.4e-7)
    torch.testing.assert_close(out_scores, expected_scores, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# A slow, literal re-statement of the reference algorithm (one slot at a time, float32 scalars),
# used to check the vectorised version on inputs full of ties, which the fixture does not contain.
# ---------------------------------------------------------------------------------------------


def _slow_reference(
    segments: np.ndarray, scores: np.ndarray, sigma: float, min_score: float, max_segments: int, vote: float
) -> Tuple[np.ndarray, np.ndarray]:
    f32 = np.float32
    x1 = [f32(s) for s in segments[:, 0]]
    x2 = [f32(s) for s in segments[:, 1]]
    sc = [f32(s) for s in scores]
    length = [f32(b - a + f32(1e-6)) for a, b in zip(x1, x2)]
    n = len(sc)
    picks: List[Tuple[float, float, float]] = []
    i = 0
    while i < n:
        best = i
        for p in range(i + 1, n):
            if sc[best] < sc[p]:
                best = p
        for arr in (x1, x2, sc, length):
            arr[i], arr[best] = arr[best], arr[i]
        picks.append((x1[i], x2[i], sc[i]))
        p = i + 1
        while p < n:
            inter = max(f32(0), f32(min(x2[i], x2[p]) - max(x1[i], x1[p])))
            iou = f32(inter / f32(f32(length[i] + length[p]) - inter))
            sc[p] = f32(sc[p] * f32(np.exp(-(iou * iou) / f32(sigma))))
            if sc[p] < min_score:
                for arr in (x1, x2, sc, length):
                    arr[p] = arr[n - 1]
                n -= 1
                continue  # re-examine the slot, which now holds the former last candidate
            p += 1
        i += 1
    picks = picks[:max_segments]
    out = []
    for s, e, score in picks:
        num = [0.0, 0.0]
        den = 0.0
        for (a, b), w in zip(segments.tolist(), scores.tolist()):
            inter = max(0.0, min(e, b) - max(s, a))
            union = (e - s) + (b - a) - inter
            if union > 0 and inter / union >= vote:
                num[0] += w * a
                num[1] += w * b
                den += w
        out.append((num[0] / den, num[1] / den, score) if den > 0 else (s, e, score))
    out.sort(key=lambda t: -t[2])  # stable: keeps pick order on ties
    arr = np.asarray(out, dtype=np.float64).reshape(-1, 3)
    return arr[:, :2], arr[:, 2]


def _tied_candidates(seed: int, disjoint: bool) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = int(rng.integers(1, 60))
    if disjoint:
        # No decay between candidates: the pick order is decided by the reference's slot swaps alone.
        starts = (np.arange(num) * 20 + rng.integers(0, 5, size=num)).astype(np.float32)
    else:
        starts = rng.integers(0, 40, size=num).astype(np.float32)
    lengths = rng.integers(1, 12, size=num).astype(np.float32)
    segments = np.stack([starts, starts + lengths], axis=1)
    # Few distinct score values (one just above min_score): many exact ties at every step.
    scores = rng.choice(np.array([0.9, 0.5, 0.2, 0.05, 0.0011], dtype=np.float32), size=num)
    if not disjoint:
        duplicate = rng.integers(0, num, size=num // 3)
        segments[: len(duplicate)] = segments[duplicate]
    return segments, scores


@pytest.mark.parametrize("disjoint", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_matches_slow_reference_with_ties(seed: int, disjoint: bool) -> None:
    segments, scores = _tied_candidates(seed, disjoint)
    for max_segments in (3, 50):
        expected_segments, expected_scores = _slow_reference(segments, scores, 0.9, 1e-3, max_segments, 0.95)
        out_segments, out_scores = soft_nms_with_voting(
            torch.from_numpy(segments), torch.from_numpy(scores), max_segments=max_segments
        )
        assert out_scores.shape[0] == expected_scores.shape[0]
        np.testing.assert_allclose(out_scores.numpy(), expected_scores, atol=1e-6, rtol=0)
        np.testing.assert_allclose(out_segments.numpy(), expected_segments, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Many queries at once: every row as if alone.
# ---------------------------------------------------------------------------------------------


def _padded_rows(seeds, disjoint: bool):
    """Tied candidate lists of different lengths, padded to one (N, K) batch with NaN / huge values, which
    must never be read as candidates."""
    rows = [_tied_candidates(seed, disjoint) for seed in seeds]
    k = max(len(sc) for _, sc in rows) + 3
    segments = torch.full((len(rows), k, 2), float("nan"))
    scores = torch.full((len(rows), k), 1e9)
    for q, (seg, sc) in enumerate(rows):
        segments[q, : len(sc)] = torch.from_numpy(seg)
        scores[q, : len(sc)] = torch.from_numpy(sc)
    return rows, segments, scores, torch.tensor([len(sc) for _, sc in rows])


@pytest.mark.parametrize("disjoint", [False, True])
@pytest.mark.parametrize("max_segments", [1, 3, 50])
def test_batched_rows_equal_each_row_alone(disjoint: bool, max_segments: int, monkeypatch) -> None:
    rows, segments, scores, counts = _padded_rows(range(20, 36), disjoint)
    # an empty row and a one-candidate row among the others
    counts[3], counts[7] = 0, 1
    # voting in several chunks of rows
    monkeypatch.setattr(nms_module, "_VOTING_CHUNK_ELEMENTS", 3 * max_segments * segments.shape[1])
    out = batched_soft_nms_with_voting(segments, scores, counts, max_segments=max_segments)
    assert len(out) == len(rows)
    for q, (seg, sc) in enumerate(out):
        n = int(counts[q])
        want_seg, want_sc = soft_nms_with_voting(segments[q, :n], scores[q, :n], max_segments=max_segments)
        assert torch.equal(seg, want_seg) and torch.equal(sc, want_sc), q
        slow_seg, slow_sc = _slow_reference(segments[q, :n].numpy(), scores[q, :n].numpy(), 0.9, 1e-3, max_segments, 0.95)
        np.testing.assert_allclose(sc.numpy(), slow_sc, atol=1e-6, rtol=0)
        np.testing.assert_allclose(seg.numpy(), slow_seg, atol=1e-4, rtol=0)
    assert out[3][0].shape == (0, 2) and out[7][0].shape == (1, 2)
    # the GPU's way (no host reads: every step runs, every refill runs) picks the same moments, bit for bit
    monkeypatch.setattr(nms_module, "_host_reads_are_cheap", lambda device: False)
    for (seg, sc), (seg2, sc2) in zip(out, batched_soft_nms_with_voting(segments, scores, counts, max_segments=max_segments)):
        assert torch.equal(seg, seg2) and torch.equal(sc, sc2)


def test_fill_holes_moves_the_last_donors_into_the_first_holes() -> None:
    """Against a loop: each row's j-th hole from the left takes its j-th donor from the right."""
    g = torch.Generator().manual_seed(0)
    n, w = 7, 13
    keep = torch.rand(n, w, generator=g) < 0.5
    keep[0] = False  # a row with nothing kept
    keep[1] = True  # a row with everything kept: no hole, no donor
    num_keep = keep.sum(dim=1)
    head = torch.arange(w) < num_keep[:, None]
    holes, donors = head & ~keep, ~head & keep
    order = torch.randperm(n * w, generator=g).view(n, w)
    current = torch.rand(n, w, generator=g, dtype=torch.float64)
    got_order, got_current = nms_module._fill_holes(order, current, holes, donors)
    want_order, want_current = order.clone(), current.clone()
    for q in range(n):
        hole_pos = [p for p in range(w) if holes[q, p]]
        donor_pos = [p for p in reversed(range(w)) if donors[q, p]]
        assert len(hole_pos) == len(donor_pos)
        for h, d in zip(hole_pos, donor_pos):
            want_order[q, h], want_current[q, h] = order[q, d], current[q, d]
    assert int(holes.sum()) > 3  # the draw exercises the refill
    assert torch.equal(got_order, want_order) and torch.equal(got_current, want_current)


def test_batched_default_counts_and_errors() -> None:
    _, segments, scores, counts = _padded_rows(range(4), False)
    k = int(counts.min())
    full = batched_soft_nms_with_voting(segments[:, :k], scores[:, :k])  # every entry a candidate
    for q, (seg, sc) in enumerate(full):
        want = soft_nms_with_voting(segments[q, :k], scores[q, :k])
        assert torch.equal(seg, want[0]) and torch.equal(sc, want[1])
    with pytest.raises(ValueError, match="num_candidates"):
        batched_soft_nms_with_voting(segments, scores, counts + segments.shape[1])
    with pytest.raises(ValueError, match="num_candidates"):
        batched_soft_nms_with_voting(segments, scores, counts[:2])
    with pytest.raises(ValueError, match=r"expected segments \(N, K, 2\)"):
        batched_soft_nms_with_voting(segments[0], scores[0])
    bad = segments.clone()
    bad[1, 0, 1] = float("nan")  # inside row 1's candidates
    with pytest.raises(ValueError, match="finite"):
        batched_soft_nms_with_voting(bad, scores, counts)


# ---------------------------------------------------------------------------------------------
# Hand-made cases.
# ---------------------------------------------------------------------------------------------


def test_empty_input() -> None:
    segments, scores = soft_nms_with_voting(torch.zeros(0, 2), torch.zeros(0))
    assert segments.shape == (0, 2) and scores.shape == (0,)
    assert segments.dtype == torch.float32 and scores.dtype == torch.float32


def test_single_segment_is_returned_unchanged() -> None:
    segments, scores = soft_nms_with_voting(torch.tensor([[2.0, 7.5]]), torch.tensor([0.4]))
    torch.testing.assert_close(segments, torch.tensor([[2.0, 7.5]]))
    torch.testing.assert_close(scores, torch.tensor([0.4]))


def test_disjoint_segments_keep_their_scores_and_boundaries() -> None:
    segments = torch.tensor([[0.0, 1.0], [5.0, 6.0], [10.0, 12.0]])
    scores = torch.tensor([0.3, 0.9, 0.6])
    out_segments, out_scores = soft_nms_with_voting(segments, scores)
    torch.testing.assert_close(out_scores, torch.tensor([0.9, 0.6, 0.3]))
    torch.testing.assert_close(out_segments, segments[[1, 2, 0]])


def test_identical_duplicates_decay_and_vote() -> None:
    # Two identical segments: IoU = 1 - tiny (the 1e-6 length eps), so the second decays by exp(-1/0.9).
    segments = torch.tensor([[3.0, 8.0], [3.0, 8.0]])
    scores = torch.tensor([0.8, 0.6])
    out_segments, out_scores = soft_nms_with_voting(segments, scores)
    expected_second = 0.6 * math.exp(-1.0 / 0.9)
    torch.testing.assert_close(out_scores, torch.tensor([0.8, expected_second]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out_segments, segments)  # the weighted mean of identical segments


def test_voting_uses_original_scores_as_weights() -> None:
    # [0, 100] and [0, 101] have IoU 100/101 >= 0.95: both kept segments vote with weights 0.75 / 0.25.
    segments = torch.tensor([[0.0, 100.0], [0.0, 101.0]])
    scores = torch.tensor([0.75, 0.25])
    out_segments, out_scores = soft_nms_with_voting(segments, scores)
    expected_end = 0.75 * 100.0 + 0.25 * 101.0
    torch.testing.assert_close(out_segments[:, 1], torch.tensor([expected_end, expected_end]))
    iou = 100.0 / (101.0 + 2e-6)
    torch.testing.assert_close(out_scores, torch.tensor([0.75, 0.25 * math.exp(-iou * iou / 0.9)]))
    # Disabled voting keeps the raw boundaries.
    raw_segments, _ = soft_nms_with_voting(segments, scores, voting_threshold=0.0)
    torch.testing.assert_close(raw_segments, segments)


def test_min_score_drops_and_max_segments_truncates() -> None:
    segments = torch.tensor([[0.0, 10.0], [0.0, 10.0], [20.0, 21.0], [30.0, 31.0], [40.0, 41.0]])
    scores = torch.tensor([0.9, 0.0015, 0.5, 0.4, 0.3])
    out_segments, out_scores = soft_nms_with_voting(segments, scores, max_segments=5)
    # The duplicate decays to 0.0015 * exp(-1/0.9) < 1e-3 and is dropped.
    assert out_scores.shape == (4,)
    out_segments, out_scores = soft_nms_with_voting(segments, scores, max_segments=2)
    torch.testing.assert_close(out_scores, torch.tensor([0.9, 0.5]))


def test_zero_length_segment_keeps_boundaries() -> None:
    # Voting IoU of a zero-length segment is 0/0 in the reference; we keep the segment itself.
    segments, scores = soft_nms_with_voting(torch.tensor([[4.0, 4.0]]), torch.tensor([0.5]))
    torch.testing.assert_close(segments, torch.tensor([[4.0, 4.0]]))
    assert torch.isfinite(segments).all()


def test_segment_iou_shapes_and_values() -> None:
    ref = torch.tensor([0.0, 10.0])
    cand = torch.tensor([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0]])
    torch.testing.assert_close(segment_iou(ref, cand), torch.tensor([1.0, 5.0 / 15.0, 0.0]))
    assert segment_iou(ref[None], cand).shape == (1, 3)
    # a batch of queries, each with its own references and candidates: every query as if alone
    refs = torch.tensor([[[0.0, 10.0], [2.0, 4.0]], [[5.0, 6.0], [1.0, 9.0]]])
    cands = torch.stack([cand, cand.flip(0) + 1.0])
    batched = segment_iou(refs, cands, length_eps=1e-6)
    assert batched.shape == (2, 2, 3)
    for q in range(2):
        assert torch.equal(batched[q], segment_iou(refs[q], cands[q], length_eps=1e-6))


@pytest.mark.parametrize(
    "segments,scores,kwargs",
    [
        (torch.zeros(3), torch.zeros(3), {}),
        (torch.zeros(3, 2), torch.zeros(2), {}),
        (torch.tensor([[0.0, float("nan")]]), torch.ones(1), {}),
        (torch.zeros(1, 2), torch.ones(1), {"sigma": 0.0}),
        (torch.zeros(1, 2), torch.ones(1), {"max_segments": 0}),
    ],
)
def test_bad_input_raises(segments, scores, kwargs) -> None:
    with pytest.raises(ValueError):
        soft_nms_with_voting(segments, scores, **kwargs)
