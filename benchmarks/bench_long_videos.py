# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Long-video inference (MAD-like): wall time, queries/s, peak RSS and where the time goes.

``mad_clip`` preset with random weights; one video of 8,192 / 16,384 / 36,000 input clips (CLIP-sized
512-d features at 5 fps: 27 min, 55 min, 2 h) and Q ∈ {1, 16, 128} queries of 8–20 CLIP-sized tokens,
grounded end to end with ``model.ground`` (Soft-NMS + voting included). Each (length, Q) runs in a fresh
process, so its peak RSS is its own. The time is split between video encoding, text encoding + fusion +
heads, and decoding (top-k + Soft-NMS + voting) by timing the building blocks that ``ground`` calls
(the model's ``encode_video``, ``encode_text``, the eval-mode fusion + heads and ``post_process_grounding``).
``--bf16`` runs the model in bfloat16 (what ``from_pretrained(..., dtype=torch.bfloat16)`` loads; ``ground``'s
compile policy, after an untimed warm-up); ``--autocast`` runs the inference before issue 14
(``_common.legacy_ground``) under bf16 autocast.

Full run (≈ 45 min on a 2-core CPU; Q=128 at 36,000 clips alone is most of it)::

    python benchmarks/bench_long_videos.py

Subsets: ``--lengths 8192,16384 --queries 1,16``. Smoke run: ``--quick``.
"""

from __future__ import annotations

import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

#: ``ground``'s building blocks → the phases of the table (text encoding is counted with fusion + heads)
PHASES = {"video encoding": "video encoding", "text encoding": "fusion + heads", "fusion + heads": "fusion + heads",
          "decode": "decode + Soft-NMS"}


def worker(args):
    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    C.setup_torch(args.threads, args.seed)
    config = MSCLConfig.from_preset(args.preset)
    model = MSCLForTemporalGrounding(config).eval()
    if args.bf16:
        model = model.to(torch.bfloat16)
    model = model.to(args.device)
    g = torch.Generator().manual_seed(args.seed)
    video = torch.randn(args.length, config.video_input_dim, generator=g).to(args.device)
    lengths = torch.randint(8, 21, (args.num_queries,), generator=g).tolist()
    text = [torch.randn(n, config.text_input_dim, generator=g).to(args.device) for n in lengths]
    start_rss = C.current_rss_mb()
    times, phases = [], []
    warmup_s = 0.0

    def run(v, t):
        if args.autocast:
            with torch.autocast(args.device, dtype=torch.bfloat16):
                return C.legacy_ground(model, v, t)
        return model.ground(v, t)

    with torch.no_grad():
        if args.bf16:  # untimed warm-up (compilation) on a short piece of the video
            t0 = time.perf_counter()
            run(video[: min(args.length, 4096)], text[:2])
            warmup_s = time.perf_counter() - t0
        faults = []
        for _ in range(args.repeats):
            sw = C.Stopwatch(args.device)
            undo = C.scope_ground_parts(model, sw, PHASES)
            try:
                C.synchronize(args.device)
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                out = run(video, text)
                C.synchronize(args.device)
                times.append(time.perf_counter() - t0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            finally:
                undo()
            phases.append(sw.totals)
    best = times.index(sorted(times)[len(times) // 2])
    return C.finish_worker(
        {"length": args.length, "queries": args.num_queries, **C.summarize(times), "phases_s": phases[best],
         "moments_per_query": sum(len(o) for o in out) / len(out), "threads": torch.get_num_threads(),
         "warmup_s": warmup_s, "minor_page_faults": faults[best]},
        start_rss,
    )


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", default=None, help="input clips per video, comma-separated")
    parser.add_argument("--queries", default=None, help="queries per video, comma-separated")
    parser.add_argument("--preset", default=None, help="model preset (default mad_clip; --quick: quickstart)")
    parser.add_argument("--bf16", action="store_true", help="run the model in bfloat16")
    parser.add_argument("--autocast", action="store_true", help="run the pre-issue-14 inference under bf16 autocast")
    parser.add_argument("--in-process", action="store_true", help="run the measurements in this process")
    parser.add_argument("--name", default=None, help="results file name (default long_videos[_quick])")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=C.argparse.SUPPRESS)
    parser.add_argument("--num-queries", type=int, help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bf16 and args.autocast:
        parser.error("--bf16 and --autocast are two different modes; pick one")
    device = C.resolve_device(args.device)
    args.preset = args.preset or ("quickstart" if args.quick else "mad_clip")
    if args.worker:
        return worker(args)
    lengths = [int(x) for x in (args.lengths or ("300,600" if args.quick else "8192,16384,36000")).split(",")]
    queries = [int(x) for x in (args.queries or ("1,3" if args.quick else "1,16,128")).split(",")]

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results = []
    for length in lengths:
        for q in queries:
            # one query is quick: repeat it; 16+ queries already average over many forwards
            repeats = args.repeats or (3 if q == 1 else 1)
            wargs = ["--length", str(length), "--num-queries", str(q), "--repeats", str(repeats), "--seed", str(args.seed),
                     "--device", device, "--preset", args.preset] + (["--bf16"] if args.bf16 else []) + (
                     ["--autocast"] if args.autocast else [])
            if args.threads:
                wargs += ["--threads", str(args.threads)]
            print(f"[{length} clips, Q={q}] ...", flush=True)
            r = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None)
            print(f"[{length} clips, Q={q}] {r['median_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            results.append(r)
    load_after = C.load_average()

    rows = []
    for r in results:
        ph = r["phases_s"]
        total = sum(ph.values()) or 1.0
        split = " / ".join(f"{100 * ph.get(p, 0.0) / total:.0f}%" for p in ("video encoding", "fusion + heads", "decode + Soft-NMS"))
        rows.append([r["length"], r["queries"], f"{r['median_s']:.2f}", f"{r['queries'] / r['median_s']:.2f}",
                     f"{r['median_s'] / r['queries']:.3f}", f"{r['peak_rss_mb'] / 1024:.2f}",
                     f"{ph.get('video encoding', 0):.2f}", f"{ph.get('fusion + heads', 0):.2f}",
                     f"{ph.get('decode + Soft-NMS', 0):.2f}", split])
    md = C.markdown_table(
        ["input clips", "Q", "wall (s)", "queries/s", "s/query", "peak RSS (GB)", "video enc (s)", "fusion+heads (s)",
         "decode+NMS (s)", "split enc/fusion/NMS"], rows)
    mode = ", model in bf16" if args.bf16 else (", pre-issue-14 inference under bf16 autocast" if args.autocast else "")
    md += (f"\n\n`{args.preset}` preset, random weights (seed {args.seed}){mode}; "
           f"`model.ground` end to end; median of {args.repeats or '3 (Q=1) / 1 (Q>1)'} run(s); each row in a fresh process. "
           "Reference implementation on its CPU (§10): MAD 8192 clips Q=1/16/128: 0.80/8.20/76.0 s (0.8 GB); "
           "16384: 1.99/19.1/149.6 s (1.3 GB); 32768: 5.60/52.6 s (1.6 GB); > 32768 clips fails without raising a limit.\n")
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {"benchmark": "long_videos", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "preset": args.preset, "bf16": args.bf16,
            "autocast": args.autocast,
            "quick": args.quick, "results": results}
    name = args.name or ("long_videos_quick" if args.quick else "long_videos")
    C.write_results(name, data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
