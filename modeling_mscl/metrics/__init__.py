# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics for temporal grounding (training side; not shipped with checkpoints).

* :func:`recall_at_tiou`: R@K at tIoU >= theta and mIoU, SnAG's protocol.
* :func:`recall_by_moment_length`: the same per moment-length bucket (the paper's Fig. 2).
* :func:`write_predictions_jsonl` / :func:`read_predictions_jsonl`: one query per line.
* :func:`format_metrics_table`: a markdown table for logs and model cards.
* :func:`load_metric`: the same metric as a Hugging Face ``evaluate`` module.
"""

from __future__ import annotations

from pathlib import Path

from .grounding import (
    DEFAULT_ABSOLUTE_BUCKETS,
    DEFAULT_RELATIVE_BUCKETS,
    format_metrics_table,
    metric_key,
    read_predictions_jsonl,
    recall_at_tiou,
    recall_by_moment_length,
    temporal_iou,
    write_predictions_jsonl,
)

#: Folder of the ``evaluate`` module; ``evaluate.load(str(METRIC_PATH))`` works offline.
METRIC_PATH = Path(__file__).resolve().parent / "temporal_grounding_recall"

__all__ = [
    "DEFAULT_ABSOLUTE_BUCKETS",
    "DEFAULT_RELATIVE_BUCKETS",
    "METRIC_PATH",
    "format_metrics_table",
    "load_metric",
    "metric_key",
    "read_predictions_jsonl",
    "recall_at_tiou",
    "recall_by_moment_length",
    "temporal_iou",
    "write_predictions_jsonl",
]


def load_metric(**kwargs):
    """Load the ``temporal_grounding_recall`` metric with ``evaluate.load`` from this package (no Hub access).

    Keyword arguments go to :func:`evaluate.load` (e.g. ``experiment_id``, ``num_process``, ``process_id``).
    """
    import evaluate  # only needed here; keeps `import modeling_mscl.metrics` light

    return evaluate.load(str(METRIC_PATH), **kwargs)
