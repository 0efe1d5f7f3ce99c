# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""One optimisation step at the TACoS batch shape, with and without the contrastive terms.

``tacos_c3d`` preset, random weights, training mode (dropout and drop-path on): 4 videos × 4 queries,
every video padded to 2,304 steps (SnAG pads to the training length), valid lengths, moment lengths
and query word counts drawn from the real TACoS training annotations when they are present (random
stand-ins otherwise), random C3D/GloVe-sized features. A step = forward (all loss terms) + backward +
gradient clipping (1.0) + SnAG's AdamW step (``modeling_mscl.training.optim.create_adamw``) + zero_grad.
Each variant runs in a fresh process: 1 warm-up step, then the median of ``--repeats`` steps; peak RSS is
that process's. Besides the step with and without the contrastive terms, the default step is repeated with
activation checkpointing (fusion + heads recomputed level by level in the backward pass,
``model.activation_checkpointing_enable()``) and with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB,
which returns freed activation buffers to the OS (the default adaptive threshold keeps them in the heap).

Each variant's FLOPs (forward + backward, ``torch.utils.flop_counter``, one extra step) over the GEMM rate
measured at the start of the run give its GEMM-bound floor; ``--profile`` adds where the default step's time
goes (one step under ``torch.profiler``, self CPU time by op kind, as ``bench_profile.py`` groups it, and the
top ops). Other presets use random stand-in shapes; ``--full-windows`` makes every video fill the training
window, as the windows cut from MAD's movies do. The streaming benchmark compares its decode rates with
the steps measured here (``training_step.json`` and, for MAD-like rows, ``training_step_mad.json``).

Full runs::

    python benchmarks/bench_training_step.py --profile
    python benchmarks/bench_training_step.py --preset mad_clip --videos 1 --queries-per-video 16 \
        --full-windows --name training_step_mad

Smoke run: ``--quick`` (quickstart preset, tiny batch).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_profile as BP  # noqa: E402

TRAIN_ANNOTATIONS = os.path.join(os.path.dirname(C.REPO), "shared", "data", "annotations", "tacos", "train.json")
# name -> (config overrides, extra environment of the worker process, activation checkpointing)
DEFAULT = "with contrastive (default)"
_MMAP = {"MALLOC_MMAP_THRESHOLD_": "65536"}
VARIANTS = {
    "without contrastive": ({"within_loss_weight": 0.0, "cross_loss_weight": 0.0}, {}, False),
    "with contrastive (default)": ({}, {}, False),
    "with contrastive, activation checkpointing": ({}, {}, True),
    # glibc's default mmap threshold adapts upwards, after which freed activation buffers stay in the heap
    # (counted in RSS); a fixed threshold returns every large buffer to the OS when it is freed
    "with contrastive, MALLOC_MMAP_THRESHOLD_=65536": ({}, _MMAP, False),
    "with contrastive, activation checkpointing + MALLOC_MMAP_THRESHOLD_=65536": ({}, _MMAP, True),
}


def real_shapes(path):
    """(video steps, [(moment start, end) in steps], [word counts]) per TACoS training video, or None."""
    if not os.path.exists(path):
        return None
    from modeling_mscl.text_embedding_mscl import basic_english_tokenize

    with open(path) as fh:
        data = json.load(fh)
    videos = []
    for entry in data.values():
        stride = 16.0  # frames per feature step (clip stride 4 × downsample 4)
        steps = math.ceil(entry["num_frames"] / stride)
        moments = [(max(0.0, s / stride - 0.5), e / stride - 0.5) for s, e in entry["timestamps"]]
        words = [max(1, len(basic_english_tokenize(s))) for s in entry["sentences"]]
        videos.append((steps, moments, words))
    return videos


def make_batch(config, num_videos, queries_per_video, seed, shapes, full_windows=False):
    """A training batch in the model's contract (video-centric, labels on the model grid)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t_in = config.max_video_length * config.video_input_stride
    lengths, labels, words = [], [], []
    for b in range(num_videos):
        if shapes:
            steps, moments, wc = shapes[int(torch.randint(len(shapes), (1,), generator=g))]
        else:
            steps = t_in if full_windows else int(torch.randint(t_in // 8, t_in, (1,), generator=g))
            moments = [(0.0, float(torch.randint(2, max(3, steps // 4), (1,), generator=g)))] * queries_per_video
            wc = [int(torch.randint(4, 20, (1,), generator=g))] * queries_per_video
        # SnAG's crop keeps 90-100 % of a video shorter than the training length (or a full window)
        valid = t_in if full_windows else min(t_in, max(8, int(steps * (0.9 + 0.1 * float(torch.rand((), generator=g))))))
        lengths.append(valid)
        grid = valid / config.video_input_stride
        for q in range(queries_per_video):
            s, e = moments[(b * queries_per_video + q) % len(moments)]
            length = max(1.0, min(e - s, 0.9 * grid))
            start = float(torch.rand((), generator=g)) * (grid - length)
            labels.append((start, start + length))
            words.append(min(wc[q % len(wc)], config.max_text_length))
    n = num_videos * queries_per_video
    video = torch.zeros(num_videos, t_in, config.video_input_dim)
    vmask = torch.zeros(num_videos, t_in, dtype=torch.bool)
    for b, valid in enumerate(lengths):
        video[b, :valid] = torch.randn(valid, config.video_input_dim, generator=g)
        vmask[b, :valid] = True
    lmax = max(words)
    text = torch.zeros(n, lmax, config.text_input_dim)
    tmask = torch.zeros(n, lmax, dtype=torch.bool)
    for i, w in enumerate(words):
        text[i, :w] = torch.randn(w, config.text_input_dim, generator=g)
        tmask[i, :w] = True
    return {
        "video_features": video, "video_mask": vmask, "text_features": text, "text_mask": tmask,
        "query_video_index": torch.arange(num_videos).repeat_interleave(queries_per_video),
        "labels": torch.tensor(labels, dtype=torch.float32),
        "contrastive_seeds": torch.arange(num_videos, dtype=torch.long) + 1000 * seed,
    }


def worker(args):
    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding
    from modeling_mscl.training.optim import create_adamw
    from modeling_mscl.training.recipe import TrainingRecipe

    C.setup_torch(args.threads, args.seed)
    overrides = json.loads(args.overrides)
    config = MSCLConfig.from_preset(args.preset, **overrides)
    model = MSCLForTemporalGrounding(config).to(args.device).train()
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    recipe = TrainingRecipe.from_preset(args.preset)
    optimizer = create_adamw(model, recipe.learning_rate, recipe.weight_decay, recipe.module_learning_rates)
    shapes = real_shapes(TRAIN_ANNOTATIONS) if not args.quick and args.preset.startswith("tacos") else None
    batch = make_batch(config, args.videos, args.queries_per_video, args.seed, shapes, args.full_windows)
    batch = {k: v.to(args.device) for k, v in batch.items()}
    start_rss = C.current_rss_mb()

    def step():
        out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_loss_normalizer(out.num_positives)
        return out

    times, last = [], None
    for i in range(1 + args.repeats):
        C.synchronize(args.device)
        t0 = time.perf_counter()
        last = step()
        C.synchronize(args.device)
        if i:  # the first step allocates the optimiser state
            times.append(time.perf_counter() - t0)
    terms = {k: float(getattr(last, k).detach()) for k in ("loss", "loss_cls", "loss_reg", "loss_within", "loss_cross")}
    # the timed steps' memory peaks, read before the counted and profiled steps below: under FlopCounterMode
    # a checkpointed step keeps its activations (measured: 8.1 instead of 5.4 GB at the TACoS shape)
    peaks = {"peak_rss_mb": C.peak_rss_mb(), "peak_cuda_mb": C.cuda_peak_mb()}
    peaks = {k: v for k, v in peaks.items() if v is not None}
    with C.flop_counter() as counter:  # after the timed steps: counting slows a step down
        model(**batch).loss.backward()
    optimizer.zero_grad(set_to_none=True)
    result = {"overrides": overrides, **C.summarize(times), "losses": terms, "num_positives": int(last.num_positives),
              "threads": torch.get_num_threads(), "flops": int(counter.get_total_flops()), **peaks}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        result["profile"] = op_kinds(prof.events())
    return C.finish_worker(result, start_rss)


def op_kinds(events):
    """Self CPU time (s) per op kind (``bench_profile.py``'s kinds, plus the random masks of dropout and
    drop-path, the optimiser's and gradient clipping's ops, and the autograd engine's own time; a backward
    kernel such as ``gelu_backward`` counts as its forward op's kind) and the top ops, from the events of one
    profiled step."""
    kinds, ops = {}, {}
    for ev in events:
        seconds = ev.self_cpu_time_total / 1e6
        op = ev.name.split("::")[-1].rstrip("_")
        if op == "bernoulli":
            kind = "dropout masks (RNG)"
        elif ev.name.startswith("Optimizer.") or op.startswith("_foreach"):
            kind = "optimiser + clipping"
        elif ev.name.startswith("autograd::"):
            kind = "autograd engine"
        elif op.endswith(("_backward", "_backward_data")):  # a backward kernel counts as its forward op's kind
            forward = op[: op.rindex("_backward")]
            kind = "activations" if forward == "threshold" else BP.categorize(forward, None)  # threshold: ReLU's
        else:
            kind = BP.categorize(ev.name, None)
        kinds[kind] = kinds.get(kind, 0.0) + seconds
        ops[ev.name] = ops.get(ev.name, 0.0) + seconds
    return {"kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
            "top_ops": sorted(ops.items(), key=lambda kv: -kv[1])[:12]}


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="model preset (default tacos_c3d; --quick: quickstart)")
    parser.add_argument("--videos", type=int, default=4, help="videos per batch")
    parser.add_argument("--queries-per-video", type=int, default=4)
    parser.add_argument("--full-windows", action="store_true", help="every video fills the training window (MAD)")
    parser.add_argument("--name", default=None, help="results file name (default training_step[_quick])")
    parser.add_argument("--in-process", action="store_true", help="run the measurements in this process")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=C.argparse.SUPPRESS)
    parser.add_argument("--activation-checkpointing", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--variants", default=None, help="comma-separated indices (0-based) of the variants to run")
    parser.add_argument("--profile", action="store_true", help="also profile one step of the default variant by op kind")
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    args.preset = args.preset or ("quickstart" if args.quick else "tacos_c3d")
    if args.quick and "--videos" not in (argv or sys.argv):
        args.videos, args.queries_per_video = 2, 2
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.worker:
        return worker(args)

    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results = {}
    chosen = [int(i) for i in args.variants.split(",")] if args.variants else range(len(VARIANTS))
    for index, (name, (overrides, env, checkpointing)) in enumerate(VARIANTS.items()):
        if index not in chosen or (args.in_process and env):
            continue  # an allocator setting needs a fresh process
        wargs = ["--overrides", json.dumps(overrides), "--repeats", str(args.repeats), "--seed", str(args.seed),
                 "--device", device, "--preset", args.preset, "--videos", str(args.videos),
                 "--queries-per-video", str(args.queries_per_video)] + (["--quick"] if args.quick else []) \
            + (["--full-windows"] if args.full_windows else []) + (["--activation-checkpointing"] if checkpointing else [])
        if args.threads:
            wargs += ["--threads", str(args.threads)]
        if args.profile and name == DEFAULT:
            wargs += ["--profile"]
        print(f"[{name}] ...", flush=True)
        results[name] = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None, env=env)
        print(f"[{name}] {results[name]['median_s']:.2f} s, peak RSS {results[name]['peak_rss_mb']:.0f} MB", flush=True)
    load_after = C.load_average()

    off, on = results.get("without contrastive"), results.get(DEFAULT)
    overhead = on["median_s"] / off["median_s"] - 1.0 if off and on else None
    rate = info.get("gemm_gflops_fp32")
    for r in results.values():
        r["gemm_floor_s"] = r["flops"] / (rate * 1e9) if rate else None
    rows = [[name, f"{r['median_s']:.2f}", f"{r['min_s']:.2f}", f"{r['flops'] / 1e12:.3f}",
             f"{r['gemm_floor_s']:.2f}" if rate else "—", f"{100 * r['gemm_floor_s'] / r['median_s']:.0f}%" if rate else "—",
             f"{r['peak_rss_mb'] / 1024:.2f}", f"{(r['peak_rss_mb'] - r.get('start_rss_mb', 0)) / 1024:.2f}"]
            for name, r in results.items()]
    md = C.markdown_table(["variant", "step median (s)", "step min (s)", "TFLOP (fwd + bwd)", "GEMM-bound floor (s)",
                           "floor / median", "peak RSS (GB)", "peak − start RSS (GB)"], rows)
    shape_note = ("every video fills the training window" if args.full_windows else
                  "valid lengths from the TACoS training annotations" if args.preset.startswith("tacos") and not args.quick
                  else "random valid lengths")
    md += (f"\n\n`{args.preset}`, {args.videos} videos × {args.queries_per_video} queries, videos padded to the training "
           f"length ({shape_note}); forward + backward + clip + AdamW; median of {args.repeats} step(s) after 1 warm-up step, each variant "
           "in a fresh process. "
           + (f"Contrastive terms add {100 * overhead:+.1f}% to the step time (target ≤ +10%). " if overhead is not None else "")
           + ("Reference implementation on its CPU (§10): 13.4 s and 10.1 GB peak RSS for the same step.\n"
              if args.preset == "tacos_c3d" and (args.videos, args.queries_per_video) == (4, 4) else "\n"))
    md += ("\nGEMM-bound floor: the step's forward + backward FLOPs (`torch.utils.flop_counter`; the optimiser's "
           f"elementwise update is not counted) at the fp32 GEMM rate measured at the start of the run ({rate} GFLOP/s).\n")
    if on and "profile" in on:
        prof = on["profile"]
        total = sum(prof["kinds"].values())
        md += ("\nWhere the default step's time goes (one step under `torch.profiler`, self CPU time summed over threads, "
               f"{total:.2f} s in all):\n\n")
        md += C.markdown_table(["op kind", "self CPU (s)", "share"],
                               [[k, f"{v:.2f}", f"{100 * v / total:.1f}%"] for k, v in prof["kinds"].items()])
        md += "\n\nTop ops: " + ", ".join(f"`{n}` {v:.2f} s" for n, v in prof["top_ops"][:8]) + ".\n"
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {"benchmark": "training_step", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "preset": args.preset, "videos": args.videos,
            "queries_per_video": args.queries_per_video, "full_windows": args.full_windows, "repeats": args.repeats,
            "quick": args.quick, "step_s": on["median_s"] if on else None,
            "contrastive_overhead": overhead, "results": results}
    name = args.name or ("training_step_quick" if args.quick else "training_step")
    C.write_results(name, data, md, args.out, not args.no_write)
    return data


if __name__ == "__main__":
    main()
