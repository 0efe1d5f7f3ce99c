# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A dataset of many video lengths in one process: what ``ground``'s shape buckets change.

In bf16 on CPUs every matmul is a oneDNN primitive, JIT-compiled and cached (with its scratch memory) per
shape; without buckets every new video length brings new shapes. One fresh process per setting (buckets on,
buckets off): a random ``tacos_c3d`` model grounds N videos of distinct lengths (default 150, 200, …, 1,400
feature steps; Q = 40 queries of 10–39 tokens each), each video twice in a row. Reported per setting: the first
pass (each video's first call, kernels met for the first time included: what evaluating a dataset once costs),
the second pass (the same calls again), the RSS after building the model and after the last video, the peak
RSS, and the top-1 agreement of the two settings' moments.

Full run (bf16, ≈ 3 min on a 2-core CPU)::

    python benchmarks/bench_shape_buckets.py --threads 2

``--dtype float32`` runs the same sweep in float32 (no oneDNN matmuls there). Smoke run: ``--quick``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SETTINGS = {"buckets": True, "exact": False}


def _lengths(spec: str):
    start, stop, step = (int(x) for x in spec.split(":"))
    return list(range(start, stop, step))


def worker(args):
    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    C.setup_torch(args.threads, args.seed)
    config = MSCLConfig.from_preset(args.preset)
    model = MSCLForTemporalGrounding(config).eval().to(getattr(torch, args.dtype)).to(args.device)
    start_rss = C.current_rss_mb()
    buckets = SETTINGS[args.setting]
    first, second, rss, predictions = [], [], [], []
    with torch.no_grad():
        for i, steps in enumerate(_lengths(args.lengths)):
            g = torch.Generator().manual_seed(args.seed * 1000003 + i)
            video = torch.randn(steps, config.video_input_dim, generator=g).to(args.device)
            text = [torch.randn(10 + (j % 30), config.text_input_dim, generator=g).to(args.device)
                    for j in range(args.queries)]
            for times in (first, second):
                C.synchronize(args.device)
                t0 = time.perf_counter()
                out = model.ground(video, text, shape_buckets=buckets)
                C.synchronize(args.device)
                times.append(time.perf_counter() - t0)
            rss.append(C.current_rss_mb())
            predictions.extend(o.tolist() for o in out)
            print(f"[{args.setting}] {steps} steps: {first[-1]:.2f} s, then {second[-1]:.2f} s; RSS {rss[-1]:.0f} MB",
                  flush=True)
    with open(args.predictions, "w") as fh:
        json.dump(predictions, fh)
    return C.finish_worker({"setting": args.setting, "first_pass_s": sum(first), "second_pass_s": sum(second),
                            "first_s": first, "second_s": second, "rss_mb": rss, "end_rss_mb": rss[-1],
                            "threads": torch.get_num_threads()}, start_rss)


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", default=None, help="start:stop:step feature steps (default 150:1450:50)")
    parser.add_argument("--queries", type=int, default=None, help="queries per video (default 40)")
    parser.add_argument("--preset", default=None, help="model preset (default tacos_c3d; --quick: quickstart)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="the model's dtype")
    parser.add_argument("--in-process", action="store_true", help="run the settings in this process (no own RSS)")
    parser.add_argument("--name", default=None, help="results file name (default shape_buckets[_quick])")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--setting", choices=tuple(SETTINGS), help=C.argparse.SUPPRESS)
    parser.add_argument("--predictions", help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    args.preset = args.preset or ("quickstart" if args.quick else "tacos_c3d")
    args.lengths = args.lengths or ("100:260:40" if args.quick else "150:1450:50")
    args.queries = args.queries or (3 if args.quick else 40)
    if args.worker:
        return worker(args)

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results, predictions = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in SETTINGS:
            pred = os.path.join(tmp, f"{setting}.json")
            wargs = ["--setting", setting, "--predictions", pred, "--lengths", args.lengths, "--queries",
                     str(args.queries), "--preset", args.preset, "--dtype", args.dtype, "--seed", str(args.seed),
                     "--device", device]
            if args.threads:
                wargs += ["--threads", str(args.threads)]
            print(f"[{setting}] running ...", flush=True)
            results[setting] = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None)
            with open(pred) as fh:
                predictions[setting] = json.load(fh)
    load_after = C.load_average()

    lengths = _lengths(args.lengths)
    rows = []
    for setting, r in results.items():
        rows.append([setting, f"{r['first_pass_s']:.1f}", f"{r['second_pass_s']:.1f}",
                     f"{r['first_pass_s'] / r['second_pass_s']:.2f}", f"{r['start_rss_mb']:.0f}",
                     f"{r['end_rss_mb']:.0f}", f"{r['peak_rss_mb']:.0f}"])
    md = C.markdown_table(["shapes", "first pass (s)", "second pass (s)", "first / second", "RSS after the model (MB)",
                           "RSS after the last video (MB)", "peak RSS (MB)"], rows)
    agree = C.top1_agreement(predictions["buckets"], predictions["exact"])
    b, e = results["buckets"], results["exact"]
    md += (f"\n\n`{args.preset}` in {args.dtype}, random weights (seed {args.seed}), {len(lengths)} videos of "
           f"{lengths[0]}–{lengths[-1]} feature steps (every {lengths[1] - lengths[0] if len(lengths) > 1 else 0}), "
           f"{args.queries} queries each, all in one process per setting, each video grounded twice in a row "
           "(`model.ground(..., shape_buckets=True/False)`). First pass = the videos' first calls, summed. "
           f"Buckets on / off: first pass {e['first_pass_s'] / b['first_pass_s']:.2f}× faster with buckets, "
           f"second pass {e['second_pass_s'] / b['second_pass_s']:.2f}×; RSS growth over the sweep "
           f"{b['end_rss_mb'] - b['start_rss_mb']:.0f} vs {e['end_rss_mb'] - e['start_rss_mb']:.0f} MB. "
           f"Top-1 moments of the two settings: tIoU ≥ 0.9 for {100 * agree['tiou_ge_0.9']:.1f}% of the queries "
           f"(mean tIoU {agree['mean_tiou']:.3f}; random weights: nearly flat scores, frequent ties).\n")
    if args.in_process:
        md += "\nIn-process run (smoke test): RSS is the whole process's, and the second setting reuses the first's kernels.\n"
    data = {"benchmark": "shape_buckets", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "preset": args.preset, "dtype": args.dtype,
            "lengths": lengths, "queries": args.queries, "quick": args.quick, "results": results,
            "top1_agreement": agree}
    C.write_results(args.name or ("shape_buckets_quick" if args.quick else "shape_buckets"), data, md, args.out,
                    not args.no_write)
    return data


if __name__ == "__main__":
    main()
