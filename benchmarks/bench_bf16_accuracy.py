# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Does bf16 change the grounding accuracy of a trained model?

Evaluates one checkpoint on the held-out split of its dataset (default: the bundled semi-synthetic
benchmark's ``test`` split, ≥ 1,000 queries) with the package's evaluation loop (``model.ground`` per
video, predictions in seconds, SnAG's R@K, tIoU ≥ θ), in three modes: fp32; ``bf16`` — the model in
bfloat16, as ``from_pretrained(..., dtype=torch.bfloat16)`` loads it (the eval fast path: bf16 GEMMs,
float32 residual stream and LayerNorm statistics, float64 decoding; eager on CPUs unless ``--compile``); and
``autocast`` — the same float32 model under ``torch.autocast(device, dtype=torch.bfloat16)`` (how bf16
was run before issue 14). Reports the metric sets, their differences (points) and how often the top-1
moment changes. Acceptance: every R@K (and mIoU) of the bf16 model within 0.5 points of fp32;
otherwise fp32 stays the only recommended inference mode.

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


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained model folder (default: outputs/mscl-quickstart)")
    parser.add_argument("--dataset", default=None, help="dataset folder (default: the run's dataset / bundled benchmark)")
    parser.add_argument("--split", default=None, help="held-out split (default: the config's eval_split)")
    parser.add_argument("--max-videos", type=int, default=None, help="evaluate the first N videos only")
    parser.add_argument("--modes", default="fp32,bf16,autocast", help="comma-separated: fp32 (required), bf16, autocast")
    parser.add_argument("--compile", action="store_true", help="bf16 mode with torch.compile (default: ground's policy)")
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
    modes = [m for m in args.modes.split(",") if m]
    if modes[0] != "fp32" or not set(modes) <= {"fp32", "bf16", "autocast"}:
        parser.error("--modes must start with fp32 and hold only fp32, bf16, autocast")
    use_compile = True if (args.compile and not args.quick) else None
    runs = {}
    for mode in modes:
        run_model = model.to(torch.bfloat16) if mode == "bf16" else model.float()
        ground = run_model.ground
        if mode == "bf16":  # the evaluation loop calls model.ground(video, text): pass the compile policy
            run_model.ground = lambda *a, _g=ground, **k: _g(*a, use_compile=use_compile, **k)
        try:
            if mode == "bf16":  # untimed warm-up (compilation, where on) on the first video
                predict_grounding(run_model, rows(), config, progress=False, max_videos=1)
            t0 = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=(mode == "autocast")):
                records = predict_grounding(run_model, rows(), config, progress=False, max_videos=args.max_videos)
            seconds = time.perf_counter() - t0
        finally:
            if mode == "bf16":
                del run_model.ground
        metrics = compute_grounding_metrics(records, recipe.eval_ranks, recipe.eval_thresholds)
        metrics.pop("by_moment_length", None)
        runs[mode] = {"metrics": metrics, "seconds": seconds, "records": records}
        print(f"[{mode}] {len(records)} queries in {seconds:.1f} s", flush=True)
    model.float()
    load_after = C.load_average()

    fp = runs["fp32"]["metrics"]
    keys = [k for k in fp if k.startswith("R") and isinstance(fp[k], float)] + (["mIoU"] if "mIoU" in fp else [])
    others = [m for m in modes if m != "fp32"]
    deltas = {m: {k: runs[m]["metrics"][k] - fp[k] for k in keys} for m in others}
    queries = len(runs["fp32"]["records"])
    agreement = {m: C.top1_agreement([r["predictions"] for r in runs["fp32"]["records"]],
                                     [r["predictions"] for r in runs[m]["records"]]) for m in others}
    # acceptance: every R@K and mIoU of the bf16 model (the new path; else the autocast one) within the budget
    judged = "bf16" if "bf16" in others else (others[0] if others else None)
    passed = judged is not None and all(abs(v) <= TOLERANCE_POINTS for v in deltas[judged].values())
    names = {"bf16": "bf16 model", "autocast": "fp32 model, bf16 autocast"}
    head = ["metric", "fp32"] + [names[m] for m in others] + [f"Δ {m} (points)" for m in others]
    rows_md = [[k, f"{fp[k]:.2f}"] + [f"{runs[m]['metrics'][k]:.2f}" for m in others]
               + [f"{deltas[m][k]:+.2f}" for m in others] for k in keys]
    md = C.markdown_table(head, rows_md)
    md += f"\n\nModel: {source}. Data: {dataset} [{split}], {queries} queries. "
    for m in others:
        mean_iou, share = agreement[m]["mean_tiou"], agreement[m]["tiou_ge_0.9"]
        md += (f"The {names[m]} top-1 moment overlaps the fp32 one with tIoU ≥ 0.9 for {100 * share:.1f}% of the queries "
               f"(mean tIoU {mean_iou:.3f}). ")
    md += ("Wall time " + ", ".join(f"{m} {runs[m]['seconds']:.1f} s" for m in modes)
           + (" (bf16 after an untimed warm-up video)" if "bf16" in modes else "") + ". "
           f"Acceptance (every R@K and mIoU of the {names.get(judged, '?')} within {TOLERANCE_POINTS} points of fp32): "
           f"{'PASS' if passed else 'FAIL — keep fp32 as the default'}.\n")
    if queries < 1000 and not args.quick:
        md += f"\nWarning: only {queries} queries (< 1,000); the comparison is noisy.\n"
    data = {"benchmark": "bf16_accuracy", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "checkpoint": source, "dataset": str(dataset),
            "split": split, "queries": queries, "quick": args.quick, "modes": modes,
            "fp32": fp, **{m: runs[m]["metrics"] for m in others}, "delta_points": deltas,
            "top1_tiou_ge_0.9": {m: agreement[m]["tiou_ge_0.9"] for m in others},
            "top1_mean_tiou": {m: agreement[m]["mean_tiou"] for m in others},
            "seconds": {m: r["seconds"] for m, r in runs.items()}, "tolerance_points": TOLERANCE_POINTS,
            "judged": judged, "pass": passed}
    C.write_results("bf16_accuracy_quick" if args.quick else "bf16_accuracy", data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
