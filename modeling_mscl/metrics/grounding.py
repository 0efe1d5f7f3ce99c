# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Temporal-grounding metrics: Recall@K at tIoU >= theta (SnAG protocol, reference §6), mIoU,
a breakdown by moment length (the paper's Fig. 2), prediction files and a markdown table.

Protocol, per query (each query has exactly one ground-truth moment, in seconds):

* sort the predictions by score, descending (stable: ties keep their input order), keep the top
  ``max(ranks)``;
* ``tIoU = max(0, min(e_p, e_g) - max(s_p, s_g)) / ((e_p - s_p) + (e_g - s_g) - overlap)``, and 0
  when that union is not positive;
* a hit for ``(K, theta)`` when the best tIoU among the first ``K`` predictions is ``>= theta``
  (all predictions when there are fewer than ``K``; a query without predictions is a miss);
* ``R{K}@{theta} = 100 * hits / num_queries``; ``R{K}@mean`` averages over the thresholds;
* ``mIoU`` = 100 * mean over queries of the top-1 prediction's tIoU (0 without predictions).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "DEFAULT_ABSOLUTE_BUCKETS",
    "DEFAULT_RELATIVE_BUCKETS",
    "format_metrics_table",
    "metric_key",
    "read_predictions_jsonl",
    "recall_at_tiou",
    "recall_by_moment_length",
    "temporal_iou",
    "write_predictions_jsonl",
]

PredictionsLike = Sequence[Union[Sequence[Sequence[float]], np.ndarray, Any]]
GroundTruthLike = Union[Sequence[Sequence[float]], np.ndarray]

#: Moment length as a fraction of the video: short (<10 %) to very long (>=50 %) moments.
DEFAULT_RELATIVE_BUCKETS: Tuple[Tuple[float, float], ...] = (
    (0.0, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.5),
    (0.5, 1.0),
)
#: Moment length in seconds, for ``relative=False``.
DEFAULT_ABSOLUTE_BUCKETS: Tuple[Tuple[float, float], ...] = (
    (0.0, 5.0),
    (5.0, 10.0),
    (10.0, 20.0),
    (20.0, 40.0),
    (40.0, math.inf),
)


def metric_key(rank: int, threshold: Union[float, str]) -> str:
    """Name of a recall entry, e.g. ``metric_key(1, 0.3) == "R1@0.3"``, ``metric_key(5, "mean")``."""
    return f"R{rank}@{threshold}" if isinstance(threshold, str) else f"R{rank}@{threshold:g}"


def temporal_iou(
    pred: Union[np.ndarray, Sequence[Sequence[float]]], gt: Union[np.ndarray, Sequence[float]]
) -> np.ndarray:
    """tIoU of ``P`` predicted segments with one ground-truth segment.

    Args:
        pred: ``(P, 2)`` (or ``(P, >=2)``: extra columns such as the score are ignored) ``(start, end)``.
        gt: ``(2,)`` ground truth ``(start, end)``.

    Returns:
        ``(P,)`` float64 tIoU; 0 where the union is not positive.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.size == 0:
        return np.zeros((0,))
    if pred.ndim != 2 or pred.shape[1] < 2:
        raise ValueError(f"pred must have shape (P, 2), got {pred.shape}")
    gt = np.asarray(gt, dtype=np.float64)
    if gt.shape != (2,):
        raise ValueError(f"gt must have shape (2,), got {gt.shape}")
    return _tiou(pred[:, 0], pred[:, 1], gt[0], gt[1])


def _tiou(s_p: np.ndarray, e_p: np.ndarray, s_g: Any, e_g: Any) -> np.ndarray:
    # Broadcasting version shared by everything here, in the reference's order of operations.
    overlap = np.maximum(0.0, np.minimum(e_p, e_g) - np.maximum(s_p, s_g))
    union = (e_p - s_p) + (e_g - s_g) - overlap
    safe = np.where(union > 0, union, 1.0)
    return np.where(union > 0, overlap / safe, 0.0)


def _validate_settings(ranks: Sequence[int], thresholds: Sequence[float]) -> Tuple[List[int], List[float]]:
    ranks = list(ranks)
    thresholds = list(thresholds)
    if not ranks or any(int(k) != k or k < 1 for k in ranks):
        raise ValueError(f"ranks must be a non-empty sequence of positive integers, got {ranks!r}")
    if not thresholds or any(not (0.0 <= float(t) <= 1.0) for t in thresholds):
        raise ValueError(f"thresholds must be a non-empty sequence of numbers in [0, 1], got {thresholds!r}")
    return [int(k) for k in ranks], [float(t) for t in thresholds]


def _as_prediction_array(item: Any, index: int) -> np.ndarray:
    if hasattr(item, "detach"):  # a torch tensor, without importing torch here
        item = item.detach().cpu().numpy()
    try:
        array = np.asarray(item, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"query {index}: predictions must be (start, end, score) triples ({error})") from None
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"query {index}: predictions must have shape (P, 3) = (start, end, score), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"query {index}: predictions contain nan or inf")
    if (array[:, 0] > array[:, 1]).any():
        raise ValueError(f"query {index}: a predicted segment has start > end")
    return array


def _prepare(predictions: PredictionsLike, ground_truth: GroundTruthLike) -> Tuple[List[np.ndarray], np.ndarray]:
    if len(predictions) != len(ground_truth):
        raise ValueError(
            "predictions and ground_truth must have one entry per query, "
            f"got {len(predictions)} and {len(ground_truth)}"
        )
    if len(ground_truth) == 0:
        raise ValueError("no queries to evaluate (empty predictions and ground_truth)")
    try:
        gt = np.asarray(ground_truth, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"ground_truth must be (start, end) pairs ({error})") from None
    if gt.ndim != 2 or gt.shape[1] != 2:
        raise ValueError(f"ground_truth must have shape (num_queries, 2), got {gt.shape}")
    bad = np.flatnonzero(~np.isfinite(gt).all(axis=1))
    if bad.size:
        raise ValueError(f"query {bad[0]}: ground truth contains nan or inf: {gt[bad[0]].tolist()}")
    bad = np.flatnonzero(gt[:, 0] > gt[:, 1])
    if bad.size:
        raise ValueError(f"query {bad[0]}: ground truth start > end: {gt[bad[0]].tolist()}")
    preds = [_as_prediction_array(item, index) for index, item in enumerate(predictions)]
    return preds, gt


def _top_tiou(preds: List[np.ndarray], gt: np.ndarray, max_rank: int) -> np.ndarray:
    """``(Q, R)`` tIoU of each query's top-``R`` predictions by score; ``-inf`` where there is none."""
    width = min(max_rank, max((len(p) for p in preds), default=0))
    table = np.full((len(preds), max(width, 1)), -np.inf)
    if width == 0:
        return table
    segments = np.zeros((len(preds), width, 2))
    valid = np.zeros((len(preds), width), dtype=bool)
    for q, p in enumerate(preds):
        if len(p):
            # Stable sort on the negated score: ties keep their input order.
            top = p[np.argsort(-p[:, 2], kind="stable")[:width]]
            segments[q, : len(top)] = top[:, :2]
            valid[q, : len(top)] = True
    tiou = _tiou(segments[..., 0], segments[..., 1], gt[:, None, 0], gt[:, None, 1])
    table[valid] = tiou[valid]
    return table


def recall_at_tiou(
    predictions: PredictionsLike,
    ground_truth: GroundTruthLike,
    ranks: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.3, 0.5),
) -> Dict[str, float]:
    """Recall@K at tIoU >= theta for single-moment queries (SnAG protocol), in percent.

    Args:
        predictions: one entry per query: a ``(P, 3)`` array-like of ``(start, end, score)`` in
            seconds (any order; ``P`` may be 0).
        ground_truth: one ``(start, end)`` per query, in seconds.
        ranks: the ``K`` of R@K.
        thresholds: the tIoU thresholds ``theta`` (a tIoU exactly equal to ``theta`` counts).

    Returns:
        ``{"R1@0.3": ..., "R1@0.5": ..., "R1@mean": ..., "R5@0.3": ..., ..., "mIoU": ..., "num_queries": Q}``:
        recalls and mIoU in percent (floats), ``num_queries`` an int.

    Raises:
        ValueError: different numbers of predictions and ground truths, no queries, nan/inf values,
            a start after its end (the message names the query index), or invalid ranks/thresholds.
    """
    ranks, thresholds = _validate_settings(ranks, thresholds)
    preds, gt = _prepare(predictions, ground_truth)
    table = _top_tiou(preds, gt, max(ranks))
    # Best tIoU among the first k predictions, for every k (fewer predictions: all of them).
    best = np.maximum.accumulate(table, axis=1)
    metrics: Dict[str, float] = {}
    for k in ranks:
        best_k = best[:, min(k, best.shape[1]) - 1]
        recalls = []
        for theta in thresholds:
            recall = float(np.mean(best_k >= theta) * 100.0)
            metrics[metric_key(k, theta)] = recall
            recalls.append(recall)
        metrics[metric_key(k, "mean")] = float(np.mean(recalls))
    top1 = np.where(np.isfinite(table[:, 0]), table[:, 0], 0.0)
    metrics["mIoU"] = float(np.mean(top1) * 100.0)
    metrics["num_queries"] = int(len(preds))
    return metrics


def _bucket_label(lo: float, hi: float, last: bool) -> str:
    return f"[{lo:g}, {hi:g}{']' if last and math.isfinite(hi) else ')'}"


def recall_by_moment_length(
    predictions: PredictionsLike,
    ground_truth: GroundTruthLike,
    durations: Sequence[float],
    buckets: Optional[Sequence[Tuple[float, float]]] = None,
    ranks: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.3, 0.5),
    relative: bool = True,
) -> Dict[str, Dict[str, float]]:
    """Recall and mIoU per ground-truth moment length (the paper's Fig. 2 breakdown).

    Args:
        predictions, ground_truth, ranks, thresholds: as in :func:`recall_at_tiou`.
        durations: each query's video duration in seconds (used when ``relative``).
        buckets: ``(lo, hi)`` length bins, each ``[lo, hi)`` except the last, which is ``[lo, hi]``.
            Defaults to :data:`DEFAULT_RELATIVE_BUCKETS` (fractions of the video) or, with
            ``relative=False``, :data:`DEFAULT_ABSOLUTE_BUCKETS` (seconds).
        relative: bucket by ``length / duration`` (clipped to ``[0, 1]`` so moments annotated past
            the video end still land in the last bin) instead of by length in seconds.

    Returns:
        ``{label: {"lo", "hi", "num_queries", "R1@0.3", ..., "mIoU"}}`` in bucket order, labels like
        ``"[0.1, 0.2)"``. Empty buckets have ``num_queries`` 0 and ``nan`` metrics. Queries whose
        length falls in no bucket are left out.

    Raises:
        ValueError: as :func:`recall_at_tiou`, plus bad durations or buckets.
    """
    ranks, thresholds = _validate_settings(ranks, thresholds)
    preds, gt = _prepare(predictions, ground_truth)
    lengths = gt[:, 1] - gt[:, 0]
    if relative:
        dur = np.asarray(durations, dtype=np.float64).reshape(-1)
        if dur.shape[0] != len(preds):
            raise ValueError(f"durations must have one entry per query ({len(preds)}), got {dur.shape[0]}")
        bad = np.flatnonzero(~(np.isfinite(dur) & (dur > 0)))
        if bad.size:
            raise ValueError(f"query {bad[0]}: duration must be positive and finite, got {dur[bad[0]]}")
        lengths = np.clip(lengths / dur, 0.0, 1.0)
    if buckets is None:
        buckets = DEFAULT_RELATIVE_BUCKETS if relative else DEFAULT_ABSOLUTE_BUCKETS
    buckets = [(float(lo), float(hi)) for lo, hi in buckets]
    if not buckets or any(not (lo < hi) or math.isnan(lo) for lo, hi in buckets):
        raise ValueError(f"buckets must be a non-empty sequence of (lo, hi) with lo < hi, got {buckets!r}")

    result: Dict[str, Dict[str, float]] = {}
    for b, (lo, hi) in enumerate(buckets):
        last = b == len(buckets) - 1
        inside = (lengths >= lo) & ((lengths <= hi) if last else (lengths < hi))
        members = np.flatnonzero(inside)
        entry: Dict[str, float] = {"lo": lo, "hi": hi}
        if members.size:
            metrics = recall_at_tiou([preds[i] for i in members], gt[members], ranks, thresholds)
        else:
            metrics = {metric_key(k, t): math.nan for k in ranks for t in [*thresholds, "mean"]}
            metrics.update({"mIoU": math.nan, "num_queries": 0})
        entry.update(metrics)
        result[_bucket_label(lo, hi, last)] = entry
    return result


# --------------------------------------------------------------------------------------------------
# Prediction files
# --------------------------------------------------------------------------------------------------

_RECORD_KEYS = ("query_id", "video_id", "predictions", "ground_truth", "duration")


def _to_list(value: Any) -> Any:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value


def write_predictions_jsonl(path: Union[str, os.PathLike], records: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per query: ``{"query_id", "video_id", "predictions": [[s, e, score], ...],
    "ground_truth": [s, e], "duration"}`` (seconds; extra keys are written as they are).

    Floats are written with Python's shortest round-trip repr, so :func:`read_predictions_jsonl`
    returns exactly the values written (numpy/torch values are converted to Python floats first).
    ``ground_truth`` and ``duration`` may be ``None`` (e.g. unlabelled test queries).

    Returns:
        The number of records written.

    Raises:
        ValueError: a record misses a required key, or holds nan/inf.
    """
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for index, record in enumerate(records):
            missing = [key for key in _RECORD_KEYS if key not in record]
            if missing:
                raise ValueError(f"record {index}: missing keys {missing}")
            row = dict(record)
            row["query_id"] = _to_list(row["query_id"])
            row["video_id"] = _to_list(row["video_id"])
            row["predictions"] = [[float(v) for v in p] for p in _to_list(row["predictions"])]
            if any(len(p) != 3 for p in row["predictions"]):
                raise ValueError(f"record {index}: predictions must be [start, end, score] triples")
            if row["ground_truth"] is not None:
                row["ground_truth"] = [float(v) for v in _to_list(row["ground_truth"])]
            if row["duration"] is not None:
                row["duration"] = float(_to_list(row["duration"]))
            try:
                line = json.dumps(row, allow_nan=False, ensure_ascii=False)
            except ValueError as error:
                raise ValueError(f"record {index}: {error}") from None
            f.write(line + "\n")
            count += 1
    return count


def read_predictions_jsonl(path: Union[str, os.PathLike]) -> List[Dict[str, Any]]:
    """Read a file written by :func:`write_predictions_jsonl` (blank lines are skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from None
    return records


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def format_metrics_table(
    metrics: Mapping[str, float],
    ranks: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.3, 0.5),
    digits: int = 2,
) -> str:
    """A markdown table of a :func:`recall_at_tiou` result: one row per ``R@K``, one column per
    ``theta`` plus ``mean``, and a final ``mIoU`` row.

    Example::

        |     | tIoU=0.3 | tIoU=0.5 | mean  |
        |-----|----------|----------|-------|
        | R@1 | 58.17    | 47.04    | 52.61 |
        | R@5 | 84.84    | 73.55    | 79.20 |
        | mIoU | 40.12   |          |       |

    Missing entries are shown as ``-``.
    """
    ranks, thresholds = _validate_settings(ranks, thresholds)

    def cell(key: str) -> str:
        value = metrics.get(key)
        return "-" if value is None else f"{float(value):.{digits}f}"

    header = ["", *[f"tIoU={t:g}" for t in thresholds], "mean"]
    rows = [[f"R@{k}", *[cell(metric_key(k, t)) for t in thresholds], cell(metric_key(k, "mean"))] for k in ranks]
    rows.append(["mIoU", cell("mIoU"), *[""] * len(thresholds)])
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
