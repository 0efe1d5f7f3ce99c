# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Timeline plots of grounded moments (matplotlib is imported lazily: ``pip install mscl[notebook]``)."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["plot_moments"]

Moment = Tuple[float, float, float]


def _as_moments(pred: Any, index: int) -> List[Moment]:
    """One query's predictions → ``[(start, end, score), ...]``."""
    if isinstance(pred, Mapping):
        if "moments" in pred:
            pred = pred["moments"]
        elif "start" in pred and "end" in pred:
            pred = [pred]
        else:
            raise ValueError(f"query {index}: expected a pipeline result with 'moments', got keys {sorted(pred)}")
    if hasattr(pred, "detach"):
        pred = pred.detach().cpu().numpy()
    if isinstance(pred, np.ndarray):
        arr = np.asarray(pred, dtype=np.float64)
        if arr.size == 0:
            return []
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ValueError(f"query {index}: expected (K, 2) or (K, 3) moments, got shape {arr.shape}")
        scores = arr[:, 2] if arr.shape[1] == 3 else np.ones(len(arr))
        return [(float(s), float(e), float(p)) for (s, e), p in zip(arr[:, :2], scores)]
    out = []
    for m in pred:
        if isinstance(m, Mapping):
            out.append((float(m["start"]), float(m["end"]), float(m.get("score", 1.0))))
        else:
            vals = [float(v) for v in m]
            if len(vals) not in (2, 3):
                raise ValueError(f"query {index}: a moment must be (start, end[, score]), got {m!r}")
            out.append((vals[0], vals[1], vals[2] if len(vals) == 3 else 1.0))
    return out


def _as_ground_truth(gt: Any, index: int) -> List[Tuple[float, float]]:
    """One query's ground truth → ``[(start, end), ...]`` (a single segment or several)."""
    if gt is None:
        return []
    if isinstance(gt, Mapping):
        return [(float(gt["start"]), float(gt["end"]))]
    arr = np.asarray(gt, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.ndim == 1 and arr.shape[0] == 2:
        return [(float(arr[0]), float(arr[1]))]
    if arr.ndim == 2 and arr.shape[1] == 2:
        return [(float(s), float(e)) for s, e in arr]
    raise ValueError(f"ground truth of query {index} must be (start, end) or (K, 2) segments, got shape {arr.shape}")


def _ground_truth_per_query(ground_truth: Any, n: int) -> List[Any]:
    if ground_truth is None:
        return [None] * n
    if n == 1:
        # `[x]` with x a segment (or None) is x; anything else — (s, e), {start, end}, (K, 2) — is the one query's
        if isinstance(ground_truth, (list, tuple)) and len(ground_truth) == 1 and not np.isscalar(ground_truth[0]):
            return [ground_truth[0]]
        return [ground_truth]
    return list(ground_truth)


def _is_single_query(predictions: Any) -> bool:
    if isinstance(predictions, Mapping):
        return True
    if hasattr(predictions, "ndim"):
        return True  # one (K, 2|3) array
    if isinstance(predictions, (list, tuple)) and predictions:
        first = predictions[0]
        # a flat list of moments (dicts with start/end, or number triples) is one query
        if isinstance(first, Mapping) and "moments" not in first:
            return True
        if isinstance(first, (list, tuple)) and first and np.isscalar(first[0]):
            return True
    return False


def plot_moments(
    predictions: Any,
    ground_truth: Any = None,
    duration: Optional[float] = None,
    ax=None,
    title: Optional[str] = None,
    *,
    labels: Optional[Sequence[str]] = None,
    top_k: Optional[int] = None,
    color: str = "tab:blue",
    gt_color: str = "tab:green",
    min_alpha: float = 0.15,
    max_label_chars: int = 40,
    show_scores: bool = True,
):
    """Draw a timeline of predicted moments (opacity ∝ score) against the ground truth, one row per query.

    Args:
        predictions: the pipeline's output for one video — a list of ``{"query", "moments"}`` dicts, or one
            such dict — or per query a list of ``{"start", "end", "score"}`` dicts / a ``(K, 3)`` array of
            ``(start, end, score)`` (``(K, 2)`` means score 1).
        ground_truth: per query ``(start, end)`` in seconds (or several ``(K, 2)``, or ``None`` for none);
            a single pair when there is one query.
        duration: x-axis end in seconds (default: the largest end drawn).
        ax: a matplotlib ``Axes`` (default: a new figure).
        title: axes title.
        labels: row labels (default: the queries' text, else ``"query i"``).
        top_k: draw at most this many moments per query (the highest scores).
        color / gt_color: face colours of predictions and ground truth.
        min_alpha: opacity of a score-0 moment (score 1 is opaque).
        max_label_chars: row labels are shortened to this many characters.
        show_scores: write the score of each query's best moment next to it.

    Returns:
        the ``Axes``. Each drawn moment and each ground-truth segment is one ``Rectangle`` in ``ax.patches``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    per_query = [predictions] if _is_single_query(predictions) else list(predictions)
    n = len(per_query)
    if n == 0:
        raise ValueError("no predictions to plot")
    gts = _ground_truth_per_query(ground_truth, n)
    if len(gts) != n:
        raise ValueError(f"got {len(gts)} ground-truth entries for {n} queries")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} queries")

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 + 0.7 * n))

    x_max = 0.0
    for i, (pred, gt) in enumerate(zip(per_query, gts)):
        moments = sorted(_as_moments(pred, i), key=lambda m: -m[2])
        if top_k is not None:
            moments = moments[: int(top_k)]
        segments = _as_ground_truth(gt, i)
        # row i: predictions in the upper band, ground truth in the lower one (y grows downwards)
        for s, e, p in reversed(moments):  # best drawn last, on top
            alpha = min_alpha + (1.0 - min_alpha) * float(np.clip(p, 0.0, 1.0))
            ax.add_patch(Rectangle((s, i - 0.4), max(e - s, 0.0), 0.45, facecolor=color, edgecolor=color,
                                   alpha=alpha, linewidth=0.8))
            x_max = max(x_max, e)
        for s, e in segments:
            ax.add_patch(Rectangle((s, i + 0.1), max(e - s, 0.0), 0.3, facecolor=gt_color, edgecolor="black",
                                   alpha=0.8, linewidth=0.8, hatch="//"))
            x_max = max(x_max, e)
        if show_scores and moments:
            s, e, p = moments[0]
            ax.text(e, i - 0.18, f" {p:.2f}", va="center", ha="left", fontsize=8)

    if labels is None:
        labels = []
        for i, pred in enumerate(per_query):
            text = pred.get("query") if isinstance(pred, Mapping) else None
            labels.append(text if text else f"query {i}")
    labels = [lab if len(lab) <= max_label_chars else lab[: max_label_chars - 1] + "…" for lab in labels]

    end = float(duration) if duration is not None else (x_max if x_max > 0 else 1.0)
    ax.set_xlim(0.0, end)
    ax.set_ylim(n - 0.5, -0.6)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    ax.legend(handles=[Patch(facecolor=color, label="prediction (opacity = score)"),
                       Patch(facecolor=gt_color, edgecolor="black", hatch="//", label="ground truth")],
              loc="upper right", fontsize=8, framealpha=0.8)
    return ax
