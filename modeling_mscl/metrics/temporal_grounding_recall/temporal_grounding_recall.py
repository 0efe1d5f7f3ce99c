# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Recall@K at temporal IoU >= theta for video temporal grounding, as a Hugging Face ``evaluate`` metric."""

import datasets
import evaluate

# `evaluate` copies this file into its module cache, so a relative import would break: import the
# installed package absolutely (one implementation for the library and the metric).
from modeling_mscl.metrics.grounding import recall_at_tiou

_DESCRIPTION = """
Recall@K at tIoU >= theta for single-moment temporal grounding (SnAG's protocol). For each query the
predictions are sorted by score (descending, stable) and the query is a hit for (K, theta) when the
best temporal IoU among its first K predictions is >= theta (all of them when fewer than K; no
predictions is a miss). Recall = 100 * hits / queries. Also reports R{K}@mean over the thresholds,
mIoU (100 * mean tIoU of the top-1 prediction) and num_queries.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one list per query of [start, end, score] triples, in seconds (may be empty).
    references: one [start, end] ground-truth moment per query, in seconds.
    ranks: the K of R@K (default (1, 5)).
    thresholds: tIoU thresholds (default (0.3, 0.5)); a tIoU equal to the threshold counts.
Returns:
    dict with "R1@0.3", ..., "R1@mean", ..., "mIoU" (percent) and "num_queries".
Examples:
    >>> metric = evaluate.load("path/to/temporal_grounding_recall")
    >>> metric.compute(predictions=[[[0.0, 10.0, 0.9]]], references=[[0.0, 10.0]], ranks=[1], thresholds=[0.5])
    {'R1@0.5': 100.0, 'R1@mean': 100.0, 'mIoU': 100.0, 'num_queries': 1}
"""

_CITATION = """
@inproceedings{mu2024snag,
  title={SnAG: Scalable and Accurate Video Grounding},
  author={Mu, Fangzhou and Mo, Sicheng and Li, Yin},
  booktitle={CVPR},
  year={2024}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TemporalGroundingRecall(evaluate.Metric):
    """R@K at tIoU >= theta (see the module description)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references, ranks=(1, 5), thresholds=(0.3, 0.5)):
        return recall_at_tiou(predictions, references, ranks=ranks, thresholds=thresholds)
