# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Inference tile sizes per device: ops dispatched per query and fast-path calls, CPU vs GPU tiles.

``ground`` cuts the video encoder's and the fusion's work into row tiles. On CPUs the tiles keep every
temporary below glibc's mmap threshold (a few MB), so that freed buffers are reused instead of mapped and
page-faulted afresh; on GPUs (any non-CPU device) they are ``modeling_mscl._tile_scale`` (64) times
larger, because there each op of a tile is a kernel launch and the caching allocator reuses blocks of any
size. This script runs the same queries under both policies (``--policies cpu,gpu``; the policy is forced,
whatever the device) and reports, per policy:

* fast-path calls (``_fuse_and_predict_rows``) per query;
* ATen ops dispatched per query, views excluded (``TorchDispatchMode``, a pass with ``use_compile=False``;
  on a GPU each is a kernel launch in eager mode, so this is a device-independent proxy of the launch
  count; ``torch.compile``, ``ground``'s default on GPUs, fuses some of them);
* wall time of the same queries without the counting, with ``ground``'s compile policy (median of
  ``--repeats`` passes after one warm-up pass); on a CPU the GPU policy is an emulation, which shows why CPUs keep the small tiles;
* the largest difference between the two policies' moments (tiles change GEMM shapes, not the math).

Shapes: the TACoS test split's videos at the 0 / 25 / 50 / 75 / 100 % length quantiles (``bench_profile``'s
subset) with their first 48 queries, random ``tacos_c3d`` weights, float32 (``--bf16``: the model in bf16).

Full run::

    python benchmarks/bench_tile_policy.py --threads 2
    python benchmarks/bench_tile_policy.py --device cuda      # where a GPU is present

Smoke run: ``--quick``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_profile as BP  # noqa: E402
import bench_tacos_test as TT  # noqa: E402

#: policy name → the tile scale it forces (``_tile_scale``'s value for a CPU / for any other device)
POLICIES = {"cpu": 1, "gpu": 64}


def count_ops(fn):
    """Run ``fn()`` and count the ATen ops it dispatches that are not views: ``(result, count)``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not getattr(func, "is_view", False):
                _Count.n += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        out = fn()
    return out, _Count.n


def worker(args):
    import torch

    import modeling_mscl.modeling_mscl as M
    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    C.setup_torch(args.threads, args.seed)
    scale = POLICIES[args.policy]
    M._tile_scale = lambda device: scale  # the policy under test, whatever the device
    calls = [0]
    run_rows = M._run_rows  # the fast path's entry per call, outside anything torch.compile traces

    def counted_rows(*a):
        calls[0] += 1
        return run_rows(*a)

    M._run_rows = counted_rows
    videos = json.loads(open(args.shapes).read())
    config = MSCLConfig.from_preset(args.preset)
    model = MSCLForTemporalGrounding(config).eval()
    model = model.to(torch.bfloat16) if args.bf16 else model
    model = model.to(args.device)
    inputs = []
    for i, (_vid, steps, tokens) in enumerate(videos):
        video, text = TT._inputs(i, steps, tokens, args.seed, config)
        inputs.append((video.to(args.device), [q.to(args.device) for q in text]))
    queries = sum(len(t) for _, t in inputs)

    def run_all(use_compile=None):
        out = [model.ground(v, t, use_compile=use_compile) for v, t in inputs]
        C.synchronize(args.device)
        return out

    run_all()  # warm-up (kernels, compilation where on)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run_all()
        times.append(time.perf_counter() - t0)
    moments, per_video = [], []
    for video, text in inputs:  # eager: one dispatched op, one kernel
        calls[0] = 0
        out, ops = count_ops(lambda v=video, t=text: model.ground(v, t, use_compile=False))
        moments.append([m.double().cpu().tolist() for m in out])
        per_video.append({"steps": video.shape[0], "queries": len(text), "calls": calls[0], "ops": ops})
    with open(args.moments, "w") as fh:
        json.dump(moments, fh)
    return C.finish_worker({"policy": args.policy, "scale": scale, "queries": queries,
                            "calls": sum(v["calls"] for v in per_video), "ops": sum(v["ops"] for v in per_video),
                            "per_video": per_video, "wall_s": statistics.median(times), "runs_s": times,
                            "threads": torch.get_num_threads()})


def max_moment_difference(a, b) -> float:
    """Largest |difference| between two policies' moments (start, end, score), query by query."""
    worst = 0.0
    for va, vb in zip(a, b):
        for qa, qb in zip(va, vb):
            if len(qa) != len(qb):
                return float("inf")
            for ra, rb in zip(qa, qb):
                worst = max(worst, max(abs(x - y) for x, y in zip(ra, rb)))
    return worst


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--policies", default="cpu,gpu", help="comma-separated subset of " + ",".join(POLICIES))
    parser.add_argument("--videos", type=int, default=None, help="videos of the subset (default 5; --quick: 2)")
    parser.add_argument("--max-queries", type=int, default=None, help="queries per video (default 48; --quick: 4)")
    parser.add_argument("--annotations", default=TT.ANNOTATIONS, help="TACoS test.json (2D-TAN layout)")
    parser.add_argument("--preset", default=None, help="model preset (default tacos_c3d; --quick: quickstart)")
    parser.add_argument("--bf16", action="store_true", help="the model in bfloat16")
    parser.add_argument("--name", default=None, help="result file name (default tile_policy)")
    parser.add_argument("--in-process", action="store_true", help="run the policies in this process (smoke test)")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--policy", choices=tuple(POLICIES), help=C.argparse.SUPPRESS)
    parser.add_argument("--shapes", help=C.argparse.SUPPRESS)
    parser.add_argument("--moments", help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    args.preset = args.preset or ("quickstart" if args.quick else "tacos_c3d")
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.worker:
        return worker(args)
    policies = [p for p in args.policies.split(",") if p]
    for p in policies:
        if p not in POLICIES:
            parser.error(f"unknown policy {p!r}; expected one of {', '.join(POLICIES)}")
    videos, source, max_queries = BP.subset_from_args(args)

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results, moments = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        shapes = os.path.join(tmp, "shapes.json")
        with open(shapes, "w") as fh:
            json.dump(videos, fh)
        for p in policies:
            out = os.path.join(tmp, f"moments_{p}.json")
            wargs = ["--policy", p, "--shapes", shapes, "--moments", out, "--preset", args.preset, "--seed",
                     str(args.seed), "--device", device, "--repeats", str(args.repeats)]
            wargs += (["--threads", str(args.threads)] if args.threads else []) + (["--bf16"] if args.bf16 else [])
            print(f"[{p} tiles] {len(videos)} videos, {sum(len(t) for _, _, t in videos)} queries ...", flush=True)
            if args.in_process:  # the worker patches the package's module; undo it for the next policy
                import modeling_mscl.modeling_mscl as M

                saved = (M._tile_scale, M._run_rows)
                try:
                    results[p] = C.run_worker(os.path.abspath(__file__), wargs, main)
                finally:
                    M._tile_scale, M._run_rows = saved
            else:
                results[p] = C.run_worker(os.path.abspath(__file__), wargs)
            with open(out) as fh:
                moments[p] = json.load(fh)
            print(f"[{p} tiles] {results[p]['wall_s']:.2f} s", flush=True)
    load_after = C.load_average()

    rows = []
    for p in policies:
        r = results[p]
        rows.append([f"{p} tiles (×{r['scale']})", f"{r['calls'] / r['queries']:.2f}", f"{r['ops'] / r['queries']:.1f}",
                     f"{r['wall_s']:.2f}", f"{1e3 * r['wall_s'] / r['queries']:.1f}"])
    md = C.markdown_table(["policy", "fast-path calls / query", "ops / query (no views)", "wall (s)", "ms / query"], rows)
    per_video = [[str(v["steps"])] + [f"{r['per_video'][i]['ops'] / v['queries']:.1f}" for r in results.values()]
                 for i, v in enumerate(results[policies[0]]["per_video"])]
    md += "\n\nOps per query (no views), video by video:\n\n" + C.markdown_table(
        ["video steps"] + [f"{p} tiles" for p in policies], per_video)
    steps = [s for _, s, _ in videos]
    md += (f"\n\nDevice: {device}. Subset: {len(videos)} videos ({', '.join(str(s) for s in steps)} steps), "
           f"{sum(len(t) for _, _, t in videos)} queries (first {max_queries} per video), random `{args.preset}` weights"
           f"{', model in bf16' if args.bf16 else ', float32'}; shapes from {source}. Wall: median of {args.repeats} "
           "pass(es) over the subset after a warm-up pass, without the op counting; each policy in a fresh process.")
    data = {"benchmark": "tile_policy", "machine": info, "device": device, "load_before": load_before,
            "load_after": load_after, "load_note": C.load_note(load_before, load_after), "preset": args.preset,
            "videos": videos, "quick": args.quick, "bf16": args.bf16, "policies": policies, "results": results}
    if len(policies) == 2:
        a, b = (results[p] for p in policies)
        diff = max_moment_difference(moments[policies[0]], moments[policies[1]])
        data["ops_ratio"] = a["ops"] / max(1, b["ops"])
        data["max_moment_difference"] = diff
        md += (f"\n\n{policies[0]} / {policies[1]} tiles: {data['ops_ratio']:.2f}× the ops per query, "
               f"{a['wall_s'] / b['wall_s']:.2f}× the wall time on this device; the largest difference between "
               f"their moments (start, end, score) is {diff:.2g}.")
    if args.in_process:
        md += "\n\nIn-process run (smoke test).\n"
    C.write_results(args.name or ("tile_policy_quick" if args.quick else "tile_policy"), data, md + "\n", args.out,
                    not args.no_write)
    return data


if __name__ == "__main__":
    main()
