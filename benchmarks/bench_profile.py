# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Where inference time goes: torch.profiler of ``model.ground`` on TACoS test-split shapes, by op kind.

A representative subset of the TACoS test split (``bench_tacos_test``'s shape reader: real video
lengths and word counts, random features, random ``tacos_c3d`` weights): by default the 5 videos at
the 0 / 25 / 50 / 75 / 100 % quantiles of the split's lengths, each with its first 48 queries. Every
mode runs in a fresh process: one warm-up ``ground`` call (which also compiles, where compiling is
on; its time is reported), then the subset under ``torch.profiler``. CPU time is grouped by op kind
from each op's *self* time:

* GEMM — ``mm``/``addmm``/``bmm``/``baddbmm``/convolutions (oneDNN/MKL calls);
* normalisation — LayerNorm; activations — GELU, ReLU; softmax — softmax and fused SDPA kernels;
* elementwise — adds, multiplies, ``addcmul``, masks, the k=3 convs' shifted adds;
* depthwise conv — the depthwise k=3 convs (a scope: their multiply-adds);
* casts / copies — dtype casts, copies, padding, concatenation, indexing, fills;
* compiled fused kernels — the C++/Triton kernels ``torch.compile`` generated (elementwise chains);
* decode + Soft-NMS — everything under ``post_process_grounding`` (a scope);
* other — allocations, reductions, comparisons, dispatcher and Python-side ops.

and by phase (video encoding, text encoding, fusion + heads, decode + Soft-NMS; inclusive times).

Modes: ``fp32`` (the package's ``ground``, float32 model), ``bf16`` (the model in bfloat16, as
``from_pretrained(..., dtype=torch.bfloat16)`` loads it; ``ground``'s default compile policy — eager on
CPUs — unless ``--compile``),
``autocast`` and ``legacy-fp32`` (the inference before issue 14 — per-chunk ``fuse_and_predict``,
see ``_common.legacy_ground`` — under bf16 autocast and in float32). Inside compiled code the
depthwise convs are fused into the generated kernels and show up there.

Full run (writes ``benchmarks/results/profile.{json,md}``)::

    python benchmarks/bench_profile.py --threads 2

Smoke run: ``--quick`` (quickstart preset, 2 short videos, no compile).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_tacos_test as TT  # noqa: E402

MODES = ("fp32", "bf16", "autocast", "legacy-fp32")
CATEGORIES = ("GEMM", "normalisation", "activations", "softmax", "elementwise", "depthwise conv", "casts / copies",
              "compiled fused kernels", "decode + Soft-NMS", "other")
PHASES = ("video encoding", "text encoding", "fusion + heads", "decode + Soft-NMS")
_GEMM = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum", "convolution", "_convolution", "conv1d",
         "mkldnn_convolution", "_mkldnn_linear", "mkldnn_linear", "_addmm_activation", "_mkl_linear",
         "_linear_pointwise"}
_NORM = {"native_layer_norm", "layer_norm"}
_ACT = {"gelu", "relu", "clamp_min", "silu"}
_SOFTMAX = {"_softmax", "softmax", "_safe_softmax", "_scaled_dot_product_flash_attention_for_cpu",
            "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_fused_sdp_choice"}
_ELEMENTWISE = {"add", "mul", "sub", "div", "addcmul", "where", "masked_fill", "maximum", "minimum", "neg", "exp",
                "pow", "rsub", "sigmoid", "clamp", "abs", "sqrt", "rsqrt", "erf"}
# in-place variants (``add_``, ``copy_``, ...) are looked up without their trailing underscore
_COPY = {"copy", "_to_copy", "to", "contiguous", "clone", "cat", "stack", "constant_pad_nd", "pad", "index",
         "index_put", "_index_put_impl_", "index_select", "fill", "zero", "zeros", "zeros_like", "new_zeros",
         "expand_as", "repeat", "_unsafe_index_put", "full", "new_full", "flip", "narrow_copy", "masked_select"}
_SCOPES = {"mscl::depthwise conv": "depthwise conv", "mscl::decode": "decode + Soft-NMS"}


def subset_shapes(videos, num_videos: int, max_queries: int):
    """``num_videos`` videos at evenly spaced quantiles of the split's lengths, first ``max_queries`` queries each."""
    ranked = sorted(videos, key=lambda v: v[1])
    if num_videos >= len(ranked):
        picks = ranked
    else:
        picks = [ranked[round(i * (len(ranked) - 1) / max(1, num_videos - 1))] for i in range(num_videos)]
    return [(v, s, t[:max_queries]) for v, s, t in picks]


def subset_from_args(args):
    """The subset of ``--annotations`` that ``--videos`` / ``--max-queries`` / ``--quick`` ask for (a
    synthetic stand-in split where the file is absent): ``(videos, source, queries per video)``."""
    num_videos = args.videos or (2 if args.quick else 5)
    max_queries = args.max_queries or (4 if args.quick else 48)
    if os.path.exists(args.annotations):
        split, source = TT.split_shapes(args.annotations, False), args.annotations
    else:
        print(f"note: {args.annotations} not found; using a synthetic stand-in split of the same size")
        split, source = TT.synthetic_shapes(), "synthetic stand-in"
    videos = subset_shapes(split, num_videos, max_queries)
    if args.quick:
        videos = [(v, min(s, 120), t) for v, s, t in videos]
    return videos, source, max_queries


def categorize(name: str, scope):
    if scope is not None:
        return scope
    if "cpp_fused" in name or "triton_" in name or name.startswith("graph_") or "kernel_cpp" in name:
        return "compiled fused kernels"
    op = name.split("::")[-1]
    if op.endswith("_") and not op.startswith("_"):  # in-place variants (addmm_, add_, relu_, ...)
        op = op[:-1]
    if op in _GEMM:
        return "GEMM"
    if op in _NORM:
        return "normalisation"
    if op in _ACT:
        return "activations"
    if op in _SOFTMAX:
        return "softmax"
    if op in _ELEMENTWISE:
        return "elementwise"
    if op in _COPY:
        return "casts / copies"
    return "other"


def group_events(events):
    """Self CPU time (s) per category, and inclusive time per phase, from a profiler event list."""
    cats = {c: 0.0 for c in CATEGORIES}
    phases = {p: 0.0 for p in PHASES}
    ops = {}
    for ev in events:
        name = ev.name
        if name.startswith("phase::"):
            phase = name[len("phase::"):]
            if phase in phases:
                phases[phase] += ev.cpu_time_total / 1e6
            continue
        if name in _SCOPES:
            continue
        scope, parent = None, ev.cpu_parent
        while parent is not None:
            if parent.name in _SCOPES:
                scope = _SCOPES[parent.name]
                break
            parent = parent.cpu_parent
        seconds = ev.self_cpu_time_total / 1e6
        cats[categorize(name, scope)] += seconds
        ops[name] = ops.get(name, 0.0) + seconds
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:20]
    return cats, phases, top


def _instrument(model, compiled: bool):
    """Scopes for the phases and for the ops that cannot be told apart by name (record_function)."""
    from torch.profiler import record_function

    import modeling_mscl.modeling_mscl as M

    labels = {part: f"phase::{part}" for part in C.GROUND_PARTS}
    labels["decode"] = "phase::decode + Soft-NMS"
    extra = [(M, "post_process_grounding", "mscl::decode"), (M.DepthwiseConv, "forward", "mscl::depthwise conv")]
    if not compiled:  # the eager fast path's depthwise convs (inside compiled code they are fused)
        extra.append((M, "_depthwise_k3", "mscl::depthwise conv"))
    return C.scope_ground_parts(model, record_function, labels, extra)


def worker(args):
    import torch
    from torch.profiler import ProfilerActivity, profile

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    C.setup_torch(args.threads, args.seed)
    if args.kernel_profile:
        try:  # name the generated C++ kernels in the profile
            import torch._inductor.config as inductor_config

            inductor_config.cpp.enable_kernel_profile = True
        except Exception:  # pragma: no cover - other torch builds
            pass
    videos = json.loads(open(args.shapes).read())
    config = MSCLConfig.from_preset(args.preset)
    model = MSCLForTemporalGrounding(config).eval()
    if args.mode == "bf16":
        model = model.to(torch.bfloat16)
    model = model.to(args.device)
    use_compile = False if args.no_compile else (True if args.compile else None)
    inputs = []
    for i, (_vid, steps, tokens) in enumerate(videos):
        video, text = TT._inputs(i, steps, tokens, args.seed, config)
        inputs.append((video.to(args.device), [q.to(args.device) for q in text]))

    def run(video, text):
        if args.mode == "autocast":
            with torch.autocast(args.device, dtype=torch.bfloat16):
                return C.legacy_ground(model, video, text)
        if args.mode == "legacy-fp32":
            return C.legacy_ground(model, video, text)
        return model.ground(video, text, use_compile=use_compile)

    compiled = args.mode in ("fp32", "bf16") and model._use_compile(use_compile, model.dtype, torch.device(args.device))
    restore = _instrument(model, compiled)
    try:
        # warm-up (and compilation, where on): the longest video and the shortest, a few queries each
        longest = max(range(len(inputs)), key=lambda i: inputs[i][0].shape[0])
        t0 = time.perf_counter()
        for video, text in (inputs[longest], inputs[0]):
            run(video, text[:8])
        warmup_s = time.perf_counter() - t0
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        C.synchronize(args.device)
        t0 = time.perf_counter()
        with profile(activities=activities) as prof:
            for video, text in inputs:
                run(video, text)
            C.synchronize(args.device)
        wall = time.perf_counter() - t0
    finally:
        restore()
    cats, phases, top = group_events(prof.events())
    return C.finish_worker({"mode": args.mode, "wall_s": wall, "warmup_s": warmup_s, "categories_s": cats,
                            "phases_s": phases, "top_ops_s": top, "threads": torch.get_num_threads(),
                            "queries": sum(len(t) for _, t in inputs), "compiled": compiled})


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--modes", default=None, help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--videos", type=int, default=None, help="videos of the subset (default 5; --quick: 2)")
    parser.add_argument("--max-queries", type=int, default=None, help="queries per video (default 48; --quick: 4)")
    parser.add_argument("--annotations", default=TT.ANNOTATIONS, help="TACoS test.json (2D-TAN layout)")
    parser.add_argument("--preset", default=None, help="model preset (default tacos_c3d; --quick: quickstart)")
    parser.add_argument("--no-compile", action="store_true", help="never torch.compile (default: ground's policy)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path (fp32 / bf16 modes)")
    parser.add_argument("--no-kernel-profile", dest="kernel_profile", action="store_false",
                        help="do not name inductor's generated kernels in the profile")
    parser.add_argument("--in-process", action="store_true", help="run the modes in this process (smoke test)")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=C.argparse.SUPPRESS)
    parser.add_argument("--shapes", help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    args.preset = args.preset or ("quickstart" if args.quick else "tacos_c3d")
    if args.quick:
        args.no_compile = True
    if args.worker:
        return worker(args)
    modes = [m for m in (args.modes or ("fp32,bf16" if args.quick else ",".join(MODES))).split(",") if m]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}")
    videos, source, max_queries = subset_from_args(args)

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        shapes = os.path.join(tmp, "shapes.json")
        with open(shapes, "w") as fh:
            json.dump(videos, fh)
        for m in modes:
            wargs = ["--mode", m, "--shapes", shapes, "--preset", args.preset, "--seed", str(args.seed),
                     "--device", device] + (["--threads", str(args.threads)] if args.threads else [])
            wargs += (["--no-compile"] if args.no_compile else []) + (["--compile"] if args.compile else [])
            wargs += [] if args.kernel_profile else ["--no-kernel-profile"]
            print(f"[{m}] profiling {len(videos)} videos, {sum(len(t) for _, _, t in videos)} queries ...", flush=True)
            results[m] = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None)
            print(f"[{m}] {results[m]['wall_s']:.1f} s under the profiler", flush=True)
    load_after = C.load_average()

    head = ["op kind"] + [f"{m} (s)" for m in modes] + [f"{m} (%)" for m in modes]
    rows = []
    for cat in CATEGORIES:
        secs = [results[m]["categories_s"][cat] for m in modes]
        shares = [100 * results[m]["categories_s"][cat] / max(1e-9, sum(results[m]["categories_s"].values())) for m in modes]
        rows.append([cat] + [f"{s:.2f}" for s in secs] + [f"{p:.1f}" for p in shares])
    rows.append(["**total (self CPU time)**"] + [f"{sum(results[m]['categories_s'].values()):.2f}" for m in modes]
                + ["100" for _ in modes])
    md = C.markdown_table(head, rows)
    prow = [[p] + [f"{results[m]['phases_s'][p]:.2f}" for m in modes] for p in PHASES]
    prow.append(["wall time under the profiler"] + [f"{results[m]['wall_s']:.2f}" for m in modes])
    prow.append(["warm-up call (incl. compilation)"] + [f"{results[m]['warmup_s']:.2f}" for m in modes])
    md += "\n\nBy phase (inclusive CPU time of the phase's calls, s):\n\n" + C.markdown_table(["phase"] + list(modes), prow)
    steps = [s for _, s, _ in videos]
    md += (f"\n\nSubset: {len(videos)} videos ({', '.join(str(s) for s in steps)} steps), "
           f"{sum(len(t) for _, _, t in videos)} queries (first {max_queries} per video), random `{args.preset}` weights; "
           f"shapes from {source}. Self CPU time summed over the process's threads as torch.profiler reports it "
           "(intra-op parallel regions are counted once, on the calling thread). Modes: fp32 / bf16 = the package's "
           "`ground` (bf16: model in bfloat16, compile policy of `ground`"
           f"{', compile off' if args.no_compile else ''}); autocast / legacy-fp32 = the inference before issue 14 "
           "(`_common.legacy_ground`) under bf16 autocast / in float32. Each mode in a fresh process.\n")
    if args.in_process:
        md += "\nIn-process run (smoke test).\n"
    data = {"benchmark": "profile", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "preset": args.preset, "videos": videos,
            "quick": args.quick, "modes": modes, "results": results}
    C.write_results("profile_quick" if args.quick else "profile", data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
