# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""How inference time and memory grow with video length: T, 2T, 4T, 8T input clips at a fixed Q.

Each length runs in a fresh process (``model.ground`` end to end, random weights). Reported: median
wall time, peak RSS, and the peak RSS above the process's RSS after building the model ("working
memory"), plus the 8T/T ratios. Linear-time/linear-memory inference gives ratios ≈ 8 (target ≤ 9).

The lengths run in interleaved rounds (``--rounds``; every length once per round, the order reversed
every other round), so that a machine whose speed drifts during the run (shared or thermally
throttled cores) slows every length alike instead of the last ones: the time ratio is the median over
rounds of each round's own 8T/T, and each length's time the median over rounds.

Full run (``mad_clip``, T = 4,096 input clips, Q = 4, 3 rounds; ≈ 7 min on a 2-core CPU)::

    python benchmarks/bench_scaling.py

Other settings: ``--preset tacos_c3d --base-length 2304 --queries 16``. Smoke run: ``--quick``.
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_long_videos as LV  # noqa: E402  (same worker: one video, Q queries, model.ground)


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="model preset (default mad_clip; --quick: quickstart)")
    parser.add_argument("--base-length", type=int, default=None, help="T, in input clips (default 4096)")
    parser.add_argument("--factors", default="1,2,4,8", help="multiples of T to run")
    parser.add_argument("--queries", type=int, default=4, help="queries per video (fixed)")
    parser.add_argument("--bf16", action="store_true", help="run the model in bfloat16")
    parser.add_argument("--autocast", action="store_true", help="run the pre-issue-14 inference under bf16 autocast")
    parser.add_argument("--in-process", action="store_true", help="run the measurements in this process")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds over the lengths (default 3; --quick: 1)")
    parser.add_argument("--name", default=None, help="results file name (default scaling[_quick])")
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    preset = args.preset or ("quickstart" if args.quick else "mad_clip")
    base = args.base_length or (128 if args.quick else 4096)
    factors = [int(x) for x in args.factors.split(",")]
    repeats = args.repeats or (1 if args.quick else 3)

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    rounds = args.rounds or (1 if args.quick else 3)
    runs = {f: [] for f in factors}  # per length, one worker result per round
    for k in range(rounds):
        for f in (factors if k % 2 == 0 else factors[::-1]):
            wargs = ["--length", str(base * f), "--num-queries", str(args.queries), "--repeats", str(repeats),
                     "--seed", str(args.seed), "--device", device, "--preset", preset] + (["--bf16"] if args.bf16 else []) + (
                     ["--autocast"] if args.autocast else [])
            if args.threads:
                wargs += ["--threads", str(args.threads)]
            print(f"[round {k + 1}/{rounds}, {f}T = {base * f} clips] ...", flush=True)
            # the worker of bench_long_videos measures exactly this (fresh process, model.ground)
            r = C.run_worker(os.path.abspath(LV.__file__), wargs, LV.main if args.in_process else None)
            r["working_mb"] = r["peak_rss_mb"] - r.get("start_rss_mb", 0.0)
            print(f"[round {k + 1}, {f}T] {r['median_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            runs[f].append(r)
    results = []
    for f in factors:  # each length: the median over rounds (time and memory), the rounds kept
        r = dict(runs[f][sorted(range(rounds), key=lambda i: runs[f][i]["median_s"])[rounds // 2]])
        for key in ("median_s", "peak_rss_mb", "working_mb"):
            r[key] = statistics.median(x[key] for x in runs[f])
        r.update(factor=f, rounds_s=[x["median_s"] for x in runs[f]])
        results.append(r)
    load_after = C.load_average()

    first = results[0]
    rows = []
    for r in results:
        # each round's own ratio to the first length's time in that round, the median over rounds
        r["time_ratio"] = statistics.median(b / a for a, b in zip(first["rounds_s"], r["rounds_s"]))
        rows.append([f"{r['factor']}T", r["length"], f"{r['median_s']:.2f}", f"{r['time_ratio']:.2f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / first['peak_rss_mb']:.2f}",
                     f"{r['working_mb']:.0f}", f"{r['working_mb'] / max(first['working_mb'], 1.0):.2f}"])
    md = C.markdown_table(["length", "input clips", "time (s)", "time ratio", "peak RSS (MB)", "RSS ratio",
                           "working memory (MB)", "working-memory ratio"], rows)
    last = results[-1]
    round_ratios = [b / a for a, b in zip(first["rounds_s"], last["rounds_s"])]
    ratios = {"time": last["time_ratio"], "peak_rss": last["peak_rss_mb"] / first["peak_rss_mb"],
              "working_memory": last["working_mb"] / max(first["working_mb"], 1.0)}
    mode = ", model in bf16" if args.bf16 else (", pre-issue-14 inference under bf16 autocast" if args.autocast else "")
    md += (f"\n\n`{preset}`, Q = {args.queries}, random weights, `model.ground` end to end{mode}; "
           f"{rounds} interleaved round(s) over the lengths (order reversed every other round), each length in a fresh "
           f"process per round taking the median of {repeats} run(s); time and memory of a length = the median over "
           f"rounds. Working memory = peak RSS − RSS after building the model. {factors[-1]}T/T: time "
           f"{ratios['time']:.2f} (median of the rounds' own ratios: {', '.join(f'{x:.2f}' for x in round_ratios)}), "
           f"peak RSS {ratios['peak_rss']:.2f}, working memory "
           f"{ratios['working_memory']:.2f} (target ≤ 9 for time and memory). `ground` runs fusion + heads in row tiles "
           "of a few MB (queries × pyramid points), so no buffer grows with the length beyond the encoded pyramid "
           "and the per-query outputs.\n")
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {"benchmark": "scaling", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "preset": preset, "base_length": base,
            "queries": args.queries, "repeats": repeats, "rounds": rounds, "quick": args.quick, "ratios": ratios,
            "round_time_ratios": round_ratios, "results": results}
    malloc_env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    if malloc_env:  # allocator settings inherited by the worker processes
        data["malloc_env"] = malloc_env
        md += "\nglibc allocator settings of this run: " + ", ".join(f"`{k}={v}`" for k, v in sorted(malloc_env.items())) + ".\n"
    C.write_results(args.name or ("scaling_quick" if args.quick else "scaling"), data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
