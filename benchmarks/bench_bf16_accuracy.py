# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Does bf16 autocast change the grounding accuracy of a trained model?

Evaluates one checkpoint on the held-out split of its dataset (default: the bundled semi-synthetic
benchmark's ``test`` split, ≥ 1,000 queries) twice — fp32 and under ``torch.autocast(device,
dtype=torch.bfloat16)`` — with the package's evaluation loop (``model.ground`` per video, predictions in
seconds, SnAG's R@K, tIoU ≥ θ). Reports both metric sets, their differences (points) and how often the
top-1 moment changes. Acceptance: |ΔR1@0.5| and |ΔR5@0.5| ≤ 0.5 points; otherwise fp32 stays the only
recommended inference mode.

Full run (after ``python train_scripts/run.py``, the Quickstart run, which writes ``outputs/mscl-quickstart``)::

    python benchmarks/bench_bf16_accuracy.py --checkpoint outputs/mscl-quickstart

The evaluation protocol (split, ranks, thresholds) is the run's recipe as ``training_config.json`` records it,
else the recipe of the preset the checkpoint records.

Smoke run (random quickstart model, a few synthetic videos; numbers meaningless): ``--quick``.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TOLERANCE_POINTS = 0.5
DEFAULT_CHECKPOINTS = ("outputs/mscl-quickstart",)


def find_checkpoint():
    for rel in DEFAULT_CHECKPOINTS:
        path = os.path.join(C.REPO, rel)
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
    return None


def recipe_of(checkpoint):
    """The run's training recipe (evaluation protocol): the one its training_config.json records, else the recipe
    of the preset its config.json records, else the quickstart preset's."""
    from modeling_mscl.training.args import DEFAULT_PRESET, recorded_preset
    from modeling_mscl.training.recipe import TrainingRecipe, recipe_from_training_config

    meta = os.path.join(checkpoint, "training_config.json")
    if os.path.isfile(meta):
        with open(meta) as fh:
            recipe = recipe_from_training_config(json.load(fh))
        if recipe is not None:
            return recipe
    return TrainingRecipe.from_preset(recorded_preset(checkpoint) or DEFAULT_PRESET)


def dataset_of(checkpoint, explicit, recipe):
    """The run's dataset: ``--dataset``, else the one recorded in the run's training_config.json, else the bundled
    benchmark generated with the recipe's options."""
    if explicit:
        return explicit
    meta = os.path.join(checkpoint, "training_config.json") if checkpoint else None
    if meta and os.path.isfile(meta):
        with open(meta) as fh:
            recorded = json.load(fh).get("dataset")
        if recorded and os.path.exists(str(recorded)):
            return recorded
    from modeling_mscl.data.synthetic import default_benchmark_path

    return default_benchmark_path(**recipe.benchmark)


def top1_agreement(a, b):
    """(mean tIoU between the two top-1 moments, fraction of queries where it is ≥ 0.9)."""
    ious = []
    for ra, rb in zip(a, b):
        pa, pb = ra["predictions"], rb["predictions"]
        if not pa or not pb:
            ious.append(1.0 if not pa and not pb else 0.0)
            continue
        (s1, e1), (s2, e2) = pa[0][:2], pb[0][:2]
        inter = max(0.0, min(e1, e2) - max(s1, s2))
        union = (e1 - s1) + (e2 - s2) - inter
        ious.append(inter / union if union > 0 else 1.0)
    n = max(1, len(ious))
    return sum(ious) / n, sum(i >= 0.9 for i in ious) / n


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained model folder (default: outputs/mscl-quickstart)")
    parser.add_argument("--dataset", default=None, help="dataset folder (default: the run's dataset / bundled benchmark)")
    parser.add_argument("--split", default=None, help="held-out split (default: the config's eval_split)")
    parser.add_argument("--max-videos", type=int, default=None, help="evaluate the first N videos only")
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    C.setup_torch(args.threads, args.seed)

    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding
    from modeling_mscl.training.evaluation import compute_grounding_metrics, predict_grounding

    if args.quick:
        from modeling_mscl.training.recipe import TrainingRecipe

        config = MSCLConfig.from_preset("quickstart")
        recipe = TrainingRecipe.from_preset("quickstart")
        model = MSCLForTemporalGrounding(config)
        checkpoint, source = None, "random quickstart model (--quick)"
        from modeling_mscl.data.synthetic import synthetic_rows

        n = args.max_videos or 8

        def rows():
            return synthetic_rows("test", num_test_videos=n)
        dataset = f"synthetic_rows(test, num_test_videos={n})"
        split = "test"
    else:
        checkpoint = args.checkpoint or find_checkpoint()
        if checkpoint is None or not os.path.isfile(os.path.join(checkpoint, "config.json")):
            print(f"no trained model found (looked for {', '.join(DEFAULT_CHECKPOINTS)}); train one with "
                  "`python train_scripts/run.py` or pass --checkpoint DIR")
            raise SystemExit(2)
        model = MSCLForTemporalGrounding.from_pretrained(checkpoint)
        config = model.config
        recipe = recipe_of(checkpoint)
        source = checkpoint
        dataset = dataset_of(checkpoint, args.dataset, recipe)
        split = args.split or recipe.eval_split
        from modeling_mscl.training.data import load_eval_source

        def rows():
            return load_eval_source(dataset, config, split)
    model = model.to(device).eval()

    info = C.machine_info(device)
    load_before = C.load_average()
    runs = {}
    for mode in ("fp32", "bf16"):
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=(mode == "bf16")):
            records = predict_grounding(model, rows(), config, progress=False, max_videos=args.max_videos)
        seconds = time.perf_counter() - t0
        metrics = compute_grounding_metrics(records, recipe.eval_ranks, recipe.eval_thresholds)
        metrics.pop("by_moment_length", None)
        runs[mode] = {"metrics": metrics, "seconds": seconds, "records": records}
        print(f"[{mode}] {len(records)} queries in {seconds:.1f} s", flush=True)
    load_after = C.load_average()

    fp, bf = runs["fp32"]["metrics"], runs["bf16"]["metrics"]
    keys = [k for k in fp if k.startswith("R") and isinstance(fp[k], float)] + (["mIoU"] if "mIoU" in fp else [])
    deltas = {k: bf[k] - fp[k] for k in keys}
    queries = len(runs["fp32"]["records"])
    mean_iou, agreement = top1_agreement(runs["fp32"]["records"], runs["bf16"]["records"])
    checked = [k for k in ("R1@0.5", "R5@0.5") if k in deltas]
    passed = all(abs(deltas[k]) <= TOLERANCE_POINTS for k in checked)
    rows_md = [[k, f"{fp[k]:.2f}", f"{bf[k]:.2f}", f"{deltas[k]:+.2f}"] for k in keys]
    md = C.markdown_table(["metric", "fp32", "bf16 autocast", "Δ (points)"], rows_md)
    md += (f"\n\nModel: {source}. Data: {dataset} [{split}], {queries} queries. The bf16 top-1 moment overlaps the fp32 one "
           f"with tIoU ≥ 0.9 for {100 * agreement:.1f}% of the queries (mean tIoU {mean_iou:.3f}). "
           f"Wall time fp32 {runs['fp32']['seconds']:.1f} s, bf16 "
           f"{runs['bf16']['seconds']:.1f} s. Acceptance |ΔR1@0.5|, |ΔR5@0.5| ≤ {TOLERANCE_POINTS}: "
           f"{'PASS' if passed else 'FAIL — keep fp32 as the default'}.\n")
    if queries < 1000 and not args.quick:
        md += f"\nWarning: only {queries} queries (< 1,000); the comparison is noisy.\n"
    data = {"benchmark": "bf16_accuracy", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "checkpoint": source, "dataset": str(dataset),
            "split": split, "queries": queries, "quick": args.quick,
            "fp32": fp, "bf16": bf, "delta_points": deltas, "top1_tiou_ge_0.9": agreement, "top1_mean_tiou": mean_iou,
            "seconds": {m: r["seconds"] for m, r in runs.items()}, "tolerance_points": TOLERANCE_POINTS, "pass": passed}
    C.write_results("bf16_accuracy_quick" if args.quick else "bf16_accuracy", data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
