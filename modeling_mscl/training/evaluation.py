# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Evaluation loop: whole videos through :meth:`MSCLForTemporalGrounding.ground`, predictions in seconds,
SnAG's metrics (reference §6) and the per-moment-length breakdown.

* Every video is evaluated whole (never cropped), with all of its queries (untruncated text).
* Predictions ``(start, end, score)`` come from the package's one decoder,
  :func:`~modeling_mscl.processing_mscl.post_process_grounding`, in seconds with the row's time mapping
  (clip centres, clamped to ``[0, duration]``), exactly as the pipeline returns them.
* Metrics: ``R{K}@{θ}`` for the recipe's ``eval_ranks`` × ``eval_thresholds``, ``R{K}@mean`` over the
  thresholds, ``mIoU`` of the top-1 prediction, and ``by_moment_length`` (recall per bucket of moment
  length relative to the video).
* Under ``torch.distributed`` each process evaluates its own rows and the prediction records are gathered,
  so every process returns the same metrics.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch

from ..data.sampling import prepare_eval_sample
from ..metrics import format_metrics_table, recall_at_tiou, recall_by_moment_length, write_predictions_jsonl
from .recipe import TrainingRecipe


def _dist_info():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def predict_grounding(
    model,
    rows: Iterable[Mapping[str, Any]],
    config=None,
    *,
    progress: bool = True,
    total: Optional[int] = None,
    max_videos: Optional[int] = None,
    desc: str = "evaluating",
) -> List[Dict[str, Any]]:
    """Ground every query of every row; one record per query, in seconds.

    Records: ``{"query_id", "video_id", "predictions": [[s, e, score], ...] (score-sorted), "ground_truth":
    [s, e], "duration"}`` — the format of :func:`~modeling_mscl.metrics.write_predictions_jsonl`.
    """
    from tqdm.auto import tqdm

    config = config if config is not None else model.config
    was_training = model.training
    model.eval()
    records: List[Dict[str, Any]] = []
    if max_videos is not None and total is not None:
        total = min(total, int(max_videos))
    bar = tqdm(total=total if total is not None else max_videos, desc=desc, unit="video", disable=not progress, dynamic_ncols=True)
    try:
        for i, row in enumerate(rows):
            if max_videos is not None and i >= int(max_videos):
                break
            sample = prepare_eval_sample(row, config)
            # moments in seconds: ground decodes with post_process_grounding and the row's time mapping
            moments = model.ground(sample["video_features"], sample["text_features"], time_mapping=sample["mapping"])
            for q, qid in enumerate(sample["query_ids"]):
                records.append({
                    "query_id": qid,
                    "video_id": sample["video_id"],
                    "predictions": moments[q].tolist(),
                    "ground_truth": [float(v) for v in sample["segments"][q].tolist()],
                    "duration": float(sample["duration"]),
                })
            bar.update(1)
            bar.set_postfix(queries=len(records))
    finally:
        bar.close()
        model.train(was_training)
    return records


def compute_grounding_metrics(records: List[Mapping[str, Any]], ranks, thresholds, buckets=None) -> Dict[str, Any]:
    """Recall@K at tIoU θ, their mean over θ, mIoU and the per-moment-length breakdown of ``records``."""
    if not records:
        raise ValueError("no predictions to evaluate (empty evaluation split?)")
    preds = [r["predictions"] if r["predictions"] else [] for r in records]
    gts = [r["ground_truth"] for r in records]
    metrics: Dict[str, Any] = dict(recall_at_tiou(preds, gts, ranks=ranks, thresholds=thresholds))
    metrics["num_videos"] = len({r["video_id"] for r in records})
    metrics["by_moment_length"] = recall_by_moment_length(
        preds, gts, [r["duration"] for r in records], buckets=buckets, ranks=ranks, thresholds=thresholds,
    )
    return metrics


def _gather_records(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    import torch.distributed as dist

    rank, world = _dist_info()
    if world == 1:
        return records
    parts: List[Any] = [None] * world
    dist.all_gather_object(parts, records)
    merged = [r for part in parts for r in part]
    merged.sort(key=lambda r: (str(r["video_id"]), str(r["query_id"])))
    return merged


def evaluate_grounding(
    model,
    dataset_rows: Iterable[Mapping[str, Any]],
    config=None,
    *,
    ranks: Optional[Sequence[int]] = None,
    thresholds: Optional[Sequence[float]] = None,
    predictions_path: Optional[str] = None,
    metrics_path: Optional[str] = None,
    progress: bool = True,
    total: Optional[int] = None,
    max_videos: Optional[int] = None,
    buckets=None,
    desc: str = "evaluating",
) -> Dict[str, Any]:
    """Evaluate ``model`` (pass the EMA model) on ``dataset_rows`` (this process's rows); returns the metrics.

    Args:
        model: a :class:`~modeling_mscl.MSCLForTemporalGrounding` (put in eval mode for the loop).
        dataset_rows: decoded rows (schema of :mod:`modeling_mscl.data.schema`), e.g. from
            :func:`~modeling_mscl.training.data.load_eval_source`.
        config: the data settings (time mapping, ``fixed_length``; default ``model.config``).
        ranks / thresholds: the R@K × tIoU grid (the recipe's ``eval_ranks``/``eval_thresholds``; default
            ``TrainingRecipe()``'s, SnAG's 1, 5 × 0.3, 0.5).
        predictions_path / metrics_path: write the records (jsonl) / metrics (json) there (main process).
        progress: show a tqdm bar (main process only).
        total: number of videos, for the bar. max_videos: evaluate only the first ``max_videos`` rows.

    Returns:
        ``{"R1@0.3": ..., "R1@mean": ..., "mIoU": ..., "num_queries", "num_videos", "by_moment_length": {...}}``.
    """
    config = config if config is not None else model.config
    rank, world = _dist_info()
    if world > 1 and max_videos is not None:
        max_videos = -(-int(max_videos) // world)
    records = predict_grounding(
        model, dataset_rows, config, progress=progress and rank == 0, total=total, max_videos=max_videos, desc=desc,
    )
    records = _gather_records(records)
    default = TrainingRecipe()
    ranks = default.eval_ranks if ranks is None else list(ranks)
    thresholds = default.eval_thresholds if thresholds is None else list(thresholds)
    metrics = compute_grounding_metrics(records, ranks, thresholds, buckets=buckets)
    if rank == 0:
        if predictions_path:
            os.makedirs(os.path.dirname(os.path.abspath(predictions_path)), exist_ok=True)
            write_predictions_jsonl(predictions_path, records)
        if metrics_path:
            save_metrics(metrics, metrics_path)
    return metrics


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def save_metrics(metrics: Mapping[str, Any], path: str) -> None:
    """Write metrics as JSON (nan of empty buckets → null)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_json_safe(dict(metrics)), f, indent=2, sort_keys=False)
        f.write("\n")


def format_bucket_table(metrics: Mapping[str, Any], ranks, thresholds, digits: int = 1) -> str:
    """Markdown table of ``metrics["by_moment_length"]``: one row per bucket, R@K@θ columns."""
    buckets = metrics.get("by_moment_length") or {}
    cols = [f"R{k}@{t:g}" for k in ranks for t in thresholds] + ["mIoU"]
    lines = ["| moment length / video | queries | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for label, entry in buckets.items():
        def cell(key, entry=entry):
            v = entry.get(key)
            return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):.{digits}f}"
        lines.append(f"| {label} | {int(entry.get('num_queries', 0))} | " + " | ".join(cell(c) for c in cols) + " |")
    return "\n".join(lines)


def format_report(metrics: Mapping[str, Any], ranks, thresholds) -> str:
    """The metrics table (R@K × tIoU, mIoU) followed by the per-moment-length table."""
    head = f"{metrics.get('num_queries', '?')} queries, {metrics.get('num_videos', '?')} videos"
    return "\n".join([head, "", format_metrics_table(metrics, ranks, thresholds), "",
                      format_bucket_table(metrics, ranks, thresholds)])


__all__ = [
    "compute_grounding_metrics",
    "evaluate_grounding",
    "format_bucket_table",
    "format_report",
    "predict_grounding",
    "save_metrics",
]
