# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Tests for modeling_mscl.metrics: recall vs a brute-force reference, known answers, evaluate module,
moment-length breakdown, prediction files, table formatting and input validation."""

from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from modeling_mscl.metrics import (
    format_metrics_table,
    load_metric,
    read_predictions_jsonl,
    recall_at_tiou,
    recall_by_moment_length,
    temporal_iou,
    write_predictions_jsonl,
)

# The evaluate module is local: make sure nothing tries the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------
# Brute-force reference: plain Python, one query and one prediction at a time.
# ---------------------------------------------------------------------------------------------


def _slow_tiou(p: Sequence[float], g: Sequence[float]) -> float:
    overlap = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    union = (p[1] - p[0]) + (g[1] - g[0]) - overlap
    return overlap / union if union > 0 else 0.0


def _slow_recall(preds, gts, ranks, thresholds) -> Dict[str, float]:
    out: Dict[str, float] = {}
    ranked = [sorted(p, key=lambda t: -t[2]) for p in preds]  # sorted() is stable: ties keep input order
    for k in ranks:
        per_theta = []
        for theta in thresholds:
            hits = 0
            for r, g in zip(ranked, gts):
                if r and max(_slow_tiou(p, g) for p in r[:k]) >= theta:
                    hits += 1
            out[f"R{k}@{theta:g}"] = hits / len(gts) * 100.0
            per_theta.append(out[f"R{k}@{theta:g}"])
        out[f"R{k}@mean"] = sum(per_theta) / len(per_theta)
    out["mIoU"] = sum(_slow_tiou(r[0], g) if r else 0.0 for r, g in zip(ranked, gts)) / len(gts) * 100.0
    out["num_queries"] = len(gts)
    return out


Queries = Tuple[List[List[Tuple[float, float, float]]], List[Tuple[float, float]]]


def _random_queries(seed: int, num_queries: int = 200) -> Queries:
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(num_queries):
        # Coarse grids make exact ties in score, identical segments and tIoU values at thresholds likely.
        s = float(rng.integers(0, 20))
        gts.append((s, s + float(rng.integers(0, 10))))  # includes zero-length moments
        n = int(rng.integers(0, 9))  # includes empty lists and fewer than K predictions
        p = []
        for _ in range(n):
            ps = float(rng.integers(0, 25)) * 0.5
            p.append((ps, ps + float(rng.integers(0, 12)) * 0.5, float(rng.integers(0, 4)) / 4))
        preds.append(p)
    return preds, gts


def _assert_same(actual: Dict[str, float], expected: Dict[str, float]) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "ranks,thresholds",
    [((1, 5), (0.3, 0.5)), ((1, 5, 10, 50), (0.1, 0.3, 0.5)), ((1, 5), (0.3, 0.5, 0.7)), ((2,), (0.0, 1.0))],
)
def test_matches_brute_force(seed: int, ranks, thresholds) -> None:
    preds, gts = _random_queries(seed)
    _assert_same(recall_at_tiou(preds, gts, ranks, thresholds), _slow_recall(preds, gts, ranks, thresholds))


def test_accepts_arrays_and_tensors() -> None:
    preds, gts = _random_queries(7, 50)
    as_arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in preds]
    as_tensors = [torch.tensor(p, dtype=torch.float64).reshape(-1, 3) for p in preds]
    expected = recall_at_tiou(preds, gts)
    assert recall_at_tiou(as_arrays, np.asarray(gts)) == expected
    assert recall_at_tiou(as_tensors, torch.tensor(gts, dtype=torch.float64)) == expected


# ---------------------------------------------------------------------------------------------
# Known answers.
# ---------------------------------------------------------------------------------------------


def test_exact_match_and_disjoint() -> None:
    assert recall_at_tiou([[(2.0, 7.0, 0.5)]], [(2.0, 7.0)]) == {
        "R1@0.3": 100.0, "R1@0.5": 100.0, "R1@mean": 100.0,
        "R5@0.3": 100.0, "R5@0.5": 100.0, "R5@mean": 100.0,
        "mIoU": 100.0, "num_queries": 1,
    }  # fmt: skip
    disjoint = recall_at_tiou([[(10.0, 12.0, 0.9)]], [(0.0, 5.0)])
    assert all(value == 0.0 for key, value in disjoint.items() if key != "num_queries")


def test_tiou_exactly_at_threshold_counts() -> None:
    # tIoU = 5/10 = 0.5 and 3/10 = 0.3 exactly.
    metrics = recall_at_tiou([[(0.0, 5.0, 1.0)], [(0.0, 3.0, 1.0)]], [(0.0, 10.0), (0.0, 10.0)], (1,), (0.3, 0.5))
    assert metrics["R1@0.3"] == 100.0
    assert metrics["R1@0.5"] == 50.0
    assert metrics["R1@mean"] == 75.0
    assert metrics["mIoU"] == pytest.approx(40.0)


def test_rank_uses_score_order_and_stable_ties() -> None:
    gt = [(0.0, 10.0)]
    # The good prediction has the lower score: a hit only at R5.
    metrics = recall_at_tiou([[(50.0, 60.0, 0.9), (0.0, 10.0, 0.1)]], gt, (1, 5), (0.5,))
    assert (metrics["R1@0.5"], metrics["R5@0.5"]) == (0.0, 100.0)
    # Equal scores: the first in input order is the top-1.
    assert recall_at_tiou([[(0.0, 10.0, 0.5), (50.0, 60.0, 0.5)]], gt, (1,), (0.5,))["R1@0.5"] == 100.0
    assert recall_at_tiou([[(50.0, 60.0, 0.5), (0.0, 10.0, 0.5)]], gt, (1,), (0.5,))["R1@0.5"] == 0.0


def test_empty_predictions_are_misses_even_at_threshold_zero() -> None:
    metrics = recall_at_tiou([[], [(20.0, 30.0, 0.1)]], [(0.0, 1.0), (0.0, 1.0)], (1, 5), (0.0,))
    assert metrics["R1@0"] == 50.0  # the disjoint prediction has tIoU 0 >= 0; the empty list does not count
    assert metrics["mIoU"] == 0.0
    all_empty = recall_at_tiou([[], []], [(0.0, 1.0), (2.0, 3.0)])
    assert all_empty["R5@0.3"] == 0.0 and all_empty["num_queries"] == 2


def test_zero_length_segments_have_zero_tiou() -> None:
    np.testing.assert_array_equal(temporal_iou([[3.0, 3.0], [0.0, 10.0]], [3.0, 3.0]), [0.0, 0.0])
    np.testing.assert_allclose(temporal_iou([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0]], [0.0, 10.0]), [1.0, 1 / 3, 0.0])
    assert temporal_iou(np.zeros((0, 2)), [0.0, 1.0]).shape == (0,)


# ---------------------------------------------------------------------------------------------
# evaluate module.
# ---------------------------------------------------------------------------------------------


def test_evaluate_module_matches_function() -> None:
    metric = load_metric()
    preds, gts = _random_queries(3, 60)
    as_lists = [[list(p) for p in q] for q in preds]
    for ranks, thresholds in [((1, 5), (0.3, 0.5)), ((1, 5, 10), (0.1, 0.3, 0.5, 0.7))]:
        result = metric.compute(
            predictions=as_lists, references=[list(g) for g in gts], ranks=ranks, thresholds=thresholds
        )
        assert result == recall_at_tiou(preds, gts, ranks, thresholds)
    # Incremental use, as in an evaluation loop.
    for q, g in zip(as_lists, gts):
        metric.add(predictions=q, references=list(g))
    assert metric.compute() == recall_at_tiou(preds, gts)


# ---------------------------------------------------------------------------------------------
# Moment-length breakdown.
# ---------------------------------------------------------------------------------------------


def test_recall_by_moment_length_relative() -> None:
    preds, gts = _random_queries(5, 300)
    durations = [40.0] * len(gts)
    result = recall_by_moment_length(preds, gts, durations)
    assert list(result) == ["[0, 0.1)", "[0.1, 0.2)", "[0.2, 0.3)", "[0.3, 0.5)", "[0.5, 1]"]
    total = 0
    for entry in result.values():
        members = [i for i, g in enumerate(gts) if entry["lo"] <= (g[1] - g[0]) / 40.0 < entry["hi"]
                   or (entry["hi"] == 1.0 and (g[1] - g[0]) / 40.0 == 1.0)]  # fmt: skip
        assert entry["num_queries"] == len(members)
        total += len(members)
        if members:
            expected = recall_at_tiou([preds[i] for i in members], [gts[i] for i in members])
            assert {k: entry[k] for k in expected} == expected
        else:
            assert math.isnan(entry["R1@0.3"])
    assert total == len(gts)


def test_recall_by_moment_length_edges_and_absolute() -> None:
    preds = [[(0.0, 1.0, 1.0)], [(0.0, 1.0, 1.0)], [(0.0, 10.0, 1.0)], [(0.0, 12.0, 1.0)]]
    gts = [(0.0, 1.0), (0.0, 1.0), (0.0, 10.0), (0.0, 12.0)]
    durations = [10.0, 2.0, 10.0, 10.0]  # relative lengths 0.1 (second bucket), 0.5, 1.0, 1.2 (clipped to 1)
    rel = recall_by_moment_length(preds, gts, durations)
    assert [e["num_queries"] for e in rel.values()] == [0, 1, 0, 0, 3]
    absolute = recall_by_moment_length(preds, gts, durations, relative=False, buckets=[(0, 5), (5, 10), (10, 20)])
    assert [e["num_queries"] for e in absolute.values()] == [2, 0, 2]
    assert list(absolute) == ["[0, 5)", "[5, 10)", "[10, 20]"]
    default_abs = recall_by_moment_length(preds, gts, None, relative=False)
    assert sum(e["num_queries"] for e in default_abs.values()) == 4
    with pytest.raises(ValueError, match="duration"):
        recall_by_moment_length(preds, gts, [10.0, 0.0, 10.0, 10.0])
    with pytest.raises(ValueError, match="buckets"):
        recall_by_moment_length(preds, gts, durations, buckets=[(0.5, 0.1)])


# ---------------------------------------------------------------------------------------------
# Prediction files and table.
# ---------------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    records = []
    for i in range(5):
        raw = rng.random((i, 3)) * 100.0
        records.append(
            {
                "query_id": f"q{i}",
                "video_id": i,
                "predictions": raw.tolist(),
                "ground_truth": [float(rng.random()), 1.0 / 3.0],
                "duration": 123.456789012345,
                "sentence": "a person opens the fridge é",
            }
        )
    path = tmp_path / "preds.jsonl"
    assert write_predictions_jsonl(path, records) == 5
    assert read_predictions_jsonl(path) == records  # exact float equality
    # numpy float32 and torch values are written as the same Python floats.
    special = {
        "query_id": 0,
        "video_id": "v",
        "predictions": torch.tensor([[1.5, 2.25, 0.1]], dtype=torch.float32),
        "ground_truth": np.array([1.0, 2.0], dtype=np.float32),
        "duration": np.float32(3.3),
    }
    write_predictions_jsonl(path, [special])
    (back,) = read_predictions_jsonl(path)
    assert back["predictions"] == [[1.5, 2.25, float(np.float32(0.1))]]
    assert back["duration"] == float(np.float32(3.3))
    with pytest.raises(ValueError, match="missing"):
        write_predictions_jsonl(path, [{"query_id": 0}])
    with pytest.raises(ValueError, match="record 0"):
        write_predictions_jsonl(path, [dict(special, duration=float("nan"))])


def test_format_metrics_table() -> None:
    metrics = recall_at_tiou([[(0.0, 5.0, 1.0)], [(0.0, 3.0, 1.0)]], [(0.0, 10.0), (0.0, 10.0)])
    table = format_metrics_table(metrics, (1, 5), (0.3, 0.5))
    lines = table.splitlines()
    assert len(lines) == 5  # header, rule, R@1, R@5, mIoU
    assert "tIoU=0.3" in lines[0] and "mean" in lines[0]
    assert lines[2].split("|")[1].strip() == "R@1"
    assert [c.strip() for c in lines[2].split("|")[2:5]] == ["100.00", "50.00", "75.00"]
    assert lines[4].split("|")[2].strip() == "40.00"
    assert "-" in format_metrics_table({}, (1,), (0.5,)).splitlines()[2]


# ---------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preds,gts,match",
    [
        ([[]], [(0.0, 1.0), (0.0, 2.0)], "one entry per query"),
        ([], [], "no queries"),
        ([[], [], [(0.0, float("nan"), 1.0)]], [(0.0, 1.0)] * 3, "query 2"),
        ([[], [], []], [(0.0, 1.0), (0.0, 1.0), (float("nan"), 1.0)], "query 2"),
        ([[], [], []], [(0.0, 1.0), (0.0, 1.0), (5.0, 1.0)], "query 2: ground truth start > end"),
        ([[], [(0.0, 1.0)]], [(0.0, 1.0)] * 2, "query 1"),
        ([[(3.0, 1.0, 0.5)]], [(0.0, 1.0)], "query 0"),
        ([[]], [(0.0, 1.0, 2.0)], "shape"),
    ],
)
def test_bad_input_raises(preds, gts, match) -> None:
    with pytest.raises(ValueError, match=match):
        recall_at_tiou(preds, gts)


@pytest.mark.parametrize("ranks,thresholds", [((0,), (0.5,)), ((), (0.5,)), ((1,), (1.5,)), ((1,), ())])
def test_bad_settings_raise(ranks, thresholds) -> None:
    with pytest.raises(ValueError):
        recall_at_tiou([[]], [(0.0, 1.0)], ranks, thresholds)
