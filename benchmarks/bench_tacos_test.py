# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Headline benchmark: end-to-end grounding of the whole TACoS test split (random weights).

The 25 TACoS test videos keep their real lengths and query counts (read from the annotation file;
4,001 queries, 151-1,431 feature steps at 16 frames per step) and every query keeps its real word
count; features are random (C3D-sized 4096-d video, GloVe-sized 300-d tokens) and the weights are a
seeded random ``tacos_c3d`` model. Only shapes matter for speed.

Four paths, each in its own fresh process (so its peak RSS is its own):

* ``package``  — ``model.ground(video, all of the video's queries)`` in fp32: the video is padded only
  to a multiple of the input stride, fusion + heads run on the eval-mode fast path.
* ``bf16``     — the same call with the model in bfloat16 (``model.to(torch.bfloat16)``, what
  ``from_pretrained(..., dtype=torch.bfloat16)`` loads), ``ground``'s default (eager on CPUs).
  ``bf16-compiled`` (only when named in ``--paths``) adds ``use_compile=True``; ``bf16-exact`` (only when
  named) turns the shape buckets off (``shape_buckets=False``: every GEMM at its exact shape, the behaviour
  before buckets), to measure what they change.
* ``autocast`` — the inference before the fast path (issue 14; ``_common.legacy_ground``: per chunk of
  queries the reference ``fuse_and_predict``) under ``torch.autocast(device, dtype=torch.bfloat16)``:
  the old bf16 number, measured in the same run.
* ``baseline`` — how SnAG's evaluator works (reference §5, §10): every video padded to the training
  length (2,304 steps), the video encoded once, then **one query per forward**: the text encoded alone
  and unpadded (batch 1), fusion + heads at batch 1, and the same decode + Soft-NMS + voting.

Every path first runs one untimed warm-up (the shortest and the longest video, 3 queries each: it
compiles where compiling is on); its time is reported apart. The package path must give the same
top-5 moments as the baseline for every query (segments within 1e-3 grid units, scores within 1e-5,
tied scores in either order); the script asserts it and reports the largest differences. A query that
differs is rechecked before decoding: if both paths' head outputs are within float32 rounding (1e-4) of the
reference computation in float64 on the same weights and inputs, the difference is decoding's choice between
candidates that tie at float32 resolution, and it is reported as such instead of failing. The bf16
paths are compared with the package path (top-1 overlap), not asserted.

The GEMM-bound floor: the FLOPs (matmul/conv/attention, ``torch.utils.flop_counter``) of the
reference computation at every video's *valid* length (video encoding once, text encoding + fusion +
heads per query) divided by this machine's sustained GEMM rate, measured in the same run; a path's
efficiency is floor / time. The package's fast path does fewer FLOPs than the reference (exact
algebra); its own count is reported too.

Full run (writes benchmarks/results/tacos_test.{json,md})::

    python benchmarks/bench_tacos_test.py --threads 2

Smoke run (3 short videos, a few queries each)::

    python benchmarks/bench_tacos_test.py --quick
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

ANNOTATIONS = os.path.join(os.path.dirname(C.REPO), "shared", "data", "annotations", "tacos", "test.json")
PATHS = ("package", "baseline", "autocast", "bf16", "bf16-compiled", "bf16-exact")
DEFAULT_PATHS = ("package", "baseline", "autocast", "bf16")
# the reference's own numbers on this CPU for the same split (reference §10)
REFERENCE_SECONDS = 384.0
SEGMENT_TOL, SCORE_TOL = 1e-3, 1e-5
# diagnostic only: queries that miss SCORE_TOL but match at this looser one are counted apart
LOOSE_SCORE_TOL = 1e-4
# head outputs (logits, offsets of O(1–10)) within this of the float64 reference: float32 rounding
FLOAT32_HEAD_TOL = 1e-4


def split_shapes(path: str, quick: bool):
    """Per video: (video id, feature steps, token count of each query), from the annotation file."""
    from modeling_mscl.processing_mscl import TimeMapping
    from modeling_mscl.text_embedding_mscl import basic_english_tokenize

    with open(path) as fh:
        data = json.load(fh)
    videos = []
    for vid, entry in data.items():
        fps = float(entry["fps"])
        duration = float(entry["num_frames"]) / fps
        mapping = TimeMapping(fps=fps, clip_size=16, clip_stride=4, downsample_rate=4, duration=duration)
        # features cover the video every stride_eff frames: num_frames / 16 steps, rounded up
        steps = math.ceil(round(duration * fps / mapping.stride_eff, 6))
        tokens = [max(1, len(basic_english_tokenize(s))) for s in entry["sentences"]]
        videos.append((vid, steps, tokens))
    videos.sort(key=lambda v: v[0])
    if quick:  # the three shortest videos, 4 queries each
        videos = [(v, s, t[:4]) for v, s, t in sorted(videos, key=lambda v: v[1])[:3]]
    return videos


def synthetic_shapes():
    """Stand-in split (used only when the annotation file is absent, e.g. outside the dev checkout)."""
    import random

    rng = random.Random(0)
    return [(f"video{i}", rng.randint(150, 1431), [rng.randint(4, 20) for _ in range(rng.randint(40, 300))]) for i in range(25)]


# ----------------------------------------------------------------------------------------------
# worker: one path over the whole split
# ----------------------------------------------------------------------------------------------
def _inputs(video_index: int, steps: int, tokens, seed: int, config):
    import torch

    g = torch.Generator().manual_seed(seed * 1000003 + video_index)
    video = torch.randn(steps, config.video_input_dim, generator=g)
    text = [torch.randn(n, config.text_input_dim, generator=g) for n in tokens]
    return video, text


def _baseline_video(model, video, text):
    """SnAG's evaluator: pad to the training length, encode once, then one query per forward."""
    import torch
    import torch.nn.functional as F

    from modeling_mscl import post_process_grounding

    cfg = model.config
    t_valid = video.shape[0]
    # TACoS: 2304 = max_video_length = min_chunk (reference §5.2)
    unit = cfg.max_video_length * cfg.video_input_stride
    t_pad = max(unit, -(-t_valid // unit) * unit)
    padded = F.pad(video, (0, 0, 0, t_pad - t_valid))[None]
    vmask = (torch.arange(t_pad, device=video.device) < t_valid)[None]
    _, _, levels, level_masks = model.encode_video(padded, vmask)
    index = torch.zeros(1, dtype=torch.long, device=video.device)
    out = []
    for q in text:
        enc, enc_mask = model.encode_text(q[None], torch.ones(1, q.shape[0], dtype=torch.bool, device=q.device))
        _, logits, offsets, masks = model.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
        out.extend(post_process_grounding((logits, offsets, masks), cfg))
    return out


def _head_outputs(model, video, query, pad_to=None, fast=False):
    """Per-level (logits, offsets) of one query over the video's valid points, through the reference
    computation (``fuse_and_predict``; the video padded under its mask to ``pad_to`` steps, as the baseline
    does) or through ``ground``'s eval-mode fast path (``fast``)."""
    import torch

    import modeling_mscl.modeling_mscl as M

    levels, level_masks = model._encode_padded_video(video, pad_to or video.shape[0], trim=True)
    enc, enc_mask = model.encode_text(query[None], torch.ones(1, query.shape[0], dtype=torch.bool, device=query.device))
    if fast:
        tile_rows = model._inference_tile_rows(model.dtype, model.device)
        logits, offsets, _ = M._EvalFusion(model, levels, level_masks, False, tile_rows)(enc, enc_mask)
    else:
        index = torch.zeros(1, dtype=torch.long, device=video.device)
        _, logits, offsets, _ = model.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
    return [(lg[0].double(), off[0].double()) for lg, off in zip(logits, offsets)]


def recheck_against_float64(queries, videos, preset: str, seed: int, device: str = "cpu"):
    """For queries whose moments differ between the package and the baseline: how far each path's head
    outputs (every level's logits and offsets over the valid points, before decoding) are from the reference
    computation in float64 on the same weights and inputs. Both within float32 rounding means the paths
    compute the same function and the moments differ by decoding two candidates that tie at float32
    resolution. Returns ``{query: {"package": max |Δ|, "baseline": max |Δ|}}``."""
    import copy

    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    config = MSCLConfig.from_preset(preset)
    torch.manual_seed(seed)  # the workers' model: the same seed, then the constructor
    model = MSCLForTemporalGrounding(config).eval().to(device)
    model64 = copy.deepcopy(model).double()
    owner = [(i, j) for i, (_, _, tokens) in enumerate(videos) for j in range(len(tokens))]
    train_len = config.max_video_length * config.video_input_stride
    out = {}
    with torch.no_grad():
        for q in queries:
            i, j = owner[q]
            _, steps, tokens = videos[i]
            video, text = _inputs(i, steps, tokens, seed, config)
            video, query = video.to(device), text[j].to(device)
            truth = _head_outputs(model64, video.double(), query.double())
            paths = {"package": _head_outputs(model, video, query, fast=True),
                     "baseline": _head_outputs(model, video, query, pad_to=-(-steps // train_len) * train_len)}
            out[q] = {name: max(float((a - b).abs().max()) for got, want in zip(levels, truth) for a, b in zip(got, want))
                      for name, levels in paths.items()}
    return out


def _baseline_flops(model, config, videos, args):
    """FLOPs (matmul/conv/attention, as counted by torch's FlopCounterMode) of the baseline's work units:
    one video encoding at the padded length and one query's text encoding + fusion + heads."""
    import torch

    t_pad = config.max_video_length * config.video_input_stride
    video, text = _inputs(0, videos[0][1], videos[0][2][:1], args.seed, config)
    video = torch.nn.functional.pad(video, (0, 0, 0, t_pad - video.shape[0]))[None].to(args.device)
    vmask = (torch.arange(t_pad) < videos[0][1])[None].to(args.device)
    q = text[0][None].to(args.device)
    with torch.no_grad():
        with C.flop_counter() as counter:
            _, _, levels, level_masks = model.encode_video(video, vmask)
        per_video = counter.get_total_flops()
        with C.flop_counter() as counter:
            enc, enc_mask = model.encode_text(q, torch.ones(q.shape[:2], dtype=torch.bool, device=q.device))
            model.fuse_and_predict(levels, level_masks, enc, enc_mask, torch.zeros(1, dtype=torch.long, device=q.device))
        per_query = counter.get_total_flops()
    total = sum(-(-s // t_pad) * per_video for _, s, _ in videos) + per_query * sum(len(t) for _, _, t in videos)
    return {"per_video_encoding": per_video, "per_query": per_query, "total": total}


def valid_flops(config, videos, seed: int = 0, device: str = "cpu"):
    """FLOPs of the reference computation at every video's valid length: one video encoding, and per
    query its text encoding + fusion + heads (``fuse_and_predict``), counted per video on one query of
    each distinct token count. Returns ``{"video_encoding", "queries", "total", "per_video"}`` (``per_video``: each
    video's encoding + queries, in the order of ``videos``)."""
    import torch

    from modeling_mscl import MSCLForTemporalGrounding

    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(config).eval().to(device)
    enc_total = query_total = 0
    per_video = []
    with torch.no_grad():
        for _i, (_, steps, tokens) in enumerate(videos):
            video = torch.zeros(1, steps, config.video_input_dim, device=device)
            vmask = torch.ones(1, steps, dtype=torch.bool, device=device)
            with C.flop_counter() as counter:
                _, _, levels, level_masks = model.encode_video(video, vmask)
            per_video_enc = counter.get_total_flops()
            enc_total += per_video_enc
            per_length = {}
            for n in sorted(set(tokens)):
                text = torch.zeros(1, n, config.text_input_dim, device=device)
                with C.flop_counter() as counter:
                    enc, enc_mask = model.encode_text(text, torch.ones(1, n, dtype=torch.bool, device=device))
                    model.fuse_and_predict(levels, level_masks, enc, enc_mask, torch.zeros(1, dtype=torch.long, device=device))
                per_length[n] = counter.get_total_flops()
            query_total += sum(per_length[n] for n in tokens)
            per_video.append(per_video_enc + sum(per_length[n] for n in tokens))
    return {"video_encoding": enc_total, "queries": query_total, "total": enc_total + query_total, "per_video": per_video}


def _fast_path_flop_fraction(model, config, videos, args):
    """FLOPs of ``ground`` (fast path) ÷ FLOPs of the reference computation, on the median-length video."""
    import torch

    i = sorted(range(len(videos)), key=lambda j: videos[j][1])[len(videos) // 2]
    _, steps, tokens = videos[i]
    video, text = _inputs(i, steps, tokens[:16], args.seed, config)
    video, text = video.to(args.device), [q.to(args.device) for q in text]
    with torch.no_grad():
        with C.flop_counter() as counter:
            model.ground(video, text, use_compile=False)
        fast = counter.get_total_flops()
        with C.flop_counter() as counter:
            C.legacy_ground(model, video, text)
        ref = counter.get_total_flops()
    return fast / ref


def worker(args) -> None:
    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    C.setup_torch(args.threads, args.seed)
    videos = json.loads(open(args.shapes).read())
    config = MSCLConfig.from_preset(args.preset)
    model = MSCLForTemporalGrounding(config).eval()
    if args.path.startswith("bf16"):
        model = model.to(torch.bfloat16)
    model = model.to(args.device)
    start_rss = C.current_rss_mb()

    def run(video, text):
        if args.path == "baseline":
            return _baseline_video(model, video, text)
        if args.path == "autocast":
            with torch.autocast(args.device, dtype=torch.bfloat16):
                return C.legacy_ground(model, video, text)
        if args.path == "bf16-compiled":
            return model.ground(video, text, use_compile=True)
        if args.path == "bf16-exact":
            return model.ground(video, text, shape_buckets=False)
        return model.ground(video, text)

    per_video, predictions = [], []
    with torch.no_grad():
        # untimed warm-up: the shortest and the longest video, 3 queries each (compiles where on)
        t0 = time.perf_counter()
        for i in sorted({min(range(len(videos)), key=lambda j: videos[j][1]), max(range(len(videos)), key=lambda j: videos[j][1])}):
            video, text = _inputs(i, videos[i][1], videos[i][2][:3], args.seed + 1, config)
            run(video.to(args.device), [q.to(args.device) for q in text])
        C.synchronize(args.device)
        warmup_s = time.perf_counter() - t0
        for i, (vid, steps, tokens) in enumerate(videos):
            video, text = _inputs(i, steps, tokens, args.seed, config)
            video, text = video.to(args.device), [q.to(args.device) for q in text]
            times, result = [], None
            # the GEMM rate at this moment (a few GEMMs of the FFN's shape, ~0.1 s on 2 cores): the floor of
            # this video's time, so that a machine whose speed drifts over the run does not move floor / time
            rates = C.gemm_gflops(repeats=5) if args.device == "cpu" else {}
            for _ in range(args.repeats):
                C.synchronize(args.device)
                t0 = time.perf_counter()
                result = run(video, text)
                C.synchronize(args.device)
                times.append(time.perf_counter() - t0)
            per_video.append({"video": vid, "steps": steps, "queries": len(tokens), **C.summarize(times), **rates})
            predictions.extend(r.tolist() for r in result)
    with open(args.predictions, "w") as fh:
        json.dump(predictions, fh)
    flops = _baseline_flops(model, config, videos, args) if args.path == "baseline" else None
    if args.path == "package":
        flops = {"fast_path_fraction": _fast_path_flop_fraction(model, config, videos, args)}
    return C.finish_worker(
        {
            "flops": flops,
            "warmup_s": warmup_s,
            "path": args.path,
            "total_s": sum(v["median_s"] for v in per_video),
            # one pass over the split, each video's first call: what evaluating a dataset once costs
            "first_pass_s": sum(v["runs_s"][0] for v in per_video),
            "queries": sum(v["queries"] for v in per_video),
            "per_video": per_video,
            "threads": torch.get_num_threads(),
        },
        start_rss,
    )


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------
def _match(a, b, seg_tol, score_tol):
    """Whether two moment lists hold the same moments (order-free among equal scores) within tolerances."""
    if len(a) != len(b):
        return False
    free = list(range(len(b)))
    for x in a:
        hit = next((k for k in free if max(abs(x[0] - b[k][0]), abs(x[1] - b[k][1])) <= seg_tol
                    and abs(x[2] - b[k][2]) <= score_tol), None)
        if hit is None:
            return False
        free.remove(hit)
    return True


def compare(package, baseline):
    """Compare the top-K moments of every query between two paths.

    Rank by rank: the largest segment / score differences. Per query: a match within the tolerances
    (segments 1e-3 grid units, scores 1e-5), where moments whose scores tie within the tolerance may
    come in either order. Every query must match. For diagnosis, queries that fail are split into those
    matching at scores 1e-4 and the rest. (Before decoding moved to float64, 2 of the 4,001 queries
    missed 1e-5: a 1-ulp float32 boundary difference near grid 1,200, from GEMMs blocked differently at
    batch 16 vs 1, moved a sub-step segment's Gaussian-decayed score by up to 8e-5.)
    """
    if len(package) != len(baseline):
        raise AssertionError(f"{len(package)} vs {len(baseline)} queries")
    worst_seg = worst_score = 0.0
    loose, bad = [], []
    for q, (a, b) in enumerate(zip(package, baseline)):
        if len(a) == len(b):
            for x, y in zip(a, b):
                worst_seg = max(worst_seg, abs(x[0] - y[0]), abs(x[1] - y[1]))
                worst_score = max(worst_score, abs(x[2] - y[2]))
        if _match(a, b, SEGMENT_TOL, SCORE_TOL):
            continue
        if _match(a, b, SEGMENT_TOL, LOOSE_SCORE_TOL):
            d = max(abs(x[2] - y[2]) for x, y in zip(sorted(a, key=lambda m: -m[2]), sorted(b, key=lambda m: -m[2])))
            loose.append((q, f"score diff {d:.2g}"))
        else:
            bad.append((q, f"{len(a)} vs {len(b)} moments" if len(a) != len(b) else "different moments"))
    return worst_seg, worst_score, loose, bad


def main(argv=None) -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse_hidden())
    parser.add_argument("--path", choices=PATHS, help=argparse_hidden())
    parser.add_argument("--shapes", help=argparse_hidden())
    parser.add_argument("--predictions", help=argparse_hidden())
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS), help="comma-separated subset of " + ",".join(PATHS))
    parser.add_argument("--annotations", default=ANNOTATIONS, help="TACoS test.json (2D-TAN layout)")
    parser.add_argument("--preset", default=None, help="model preset (default tacos_c3d; --quick: quickstart)")
    parser.add_argument("--in-process", action="store_true", help="run the paths in this process (no fresh-process RSS)")
    parser.add_argument("--subset", type=int, default=None, help="only N videos, at evenly spaced quantiles of the "
                        "split's lengths, all their queries (for quick ratios; the headline numbers use the whole split)")
    parser.add_argument("--name", default=None, help="results file name (default tacos_test[_quick])")
    parser.add_argument("--cache", default=None, help="keep each finished path here and reuse it when rerun "
                        "(long runs survive an interruption); e.g. benchmarks/results/tmp/tacos_test")
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    if args.preset is None:
        args.preset = "quickstart" if args.quick else "tacos_c3d"
    if args.worker:
        return worker(args)
    # per-video repeats: the package paths are cheap enough for a median of 3; the baseline and the
    # old autocast path take one pass over the 4,001 queries by default
    repeats = {p: args.repeats or (1 if args.quick or p not in ("package", "bf16", "bf16-compiled", "bf16-exact") else 3)
               for p in PATHS}

    if os.path.exists(args.annotations):
        videos = split_shapes(args.annotations, args.quick)
        source = args.annotations
    else:
        print(f"note: {args.annotations} not found; using a synthetic stand-in split of the same size")
        videos = synthetic_shapes()
        if args.quick:
            videos = [(v, s, t[:4]) for v, s, t in videos[:3]]
        source = "synthetic stand-in"
    if args.subset:
        ranked = sorted(videos, key=lambda v: v[1])
        picks = {round(i * (len(ranked) - 1) / max(1, args.subset - 1)) for i in range(min(args.subset, len(ranked)))}
        videos = [ranked[i] for i in sorted(picks)]
        source += f" (subset: {len(videos)} videos at evenly spaced length quantiles)"
    paths = [p for p in args.paths.split(",") if p]
    for p in paths:
        if p not in PATHS:
            parser.error(f"unknown path {p!r}")


    C.setup_torch(args.threads, args.seed)
    info = C.machine_info(device)
    load_before = C.load_average()
    results, predictions = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        shapes = os.path.join(tmp, "shapes.json")
        with open(shapes, "w") as fh:
            json.dump(videos, fh)
        code = C.code_fingerprint() if args.cache else None

        def cache_key(p):  # a cached path is reused only for the same split, settings and code
            return [videos, args.preset, args.seed, repeats[p], args.threads, code]

        for p in paths:
            pred = os.path.join(tmp, f"{p}.json")
            cached = os.path.join(args.cache, f"{p}.json") if args.cache else None
            if cached and os.path.exists(cached):  # a path finished by an earlier, interrupted run
                with open(cached) as fh:
                    saved = json.load(fh)
                if saved.get("key") == json.loads(json.dumps(cache_key(p))):
                    results[p], predictions[p] = saved["result"], saved["predictions"]
                    results[p]["reused_from_cache"] = True
                    print(f"[{p}] reusing {cached}: {results[p]['total_s']:.1f} s", flush=True)
                    continue
            worker_args = ["--path", p, "--shapes", shapes, "--predictions", pred, "--repeats", str(repeats[p]),
                           "--seed", str(args.seed), "--device", device, "--preset", args.preset]
            if args.threads:
                worker_args += ["--threads", str(args.threads)]
            print(f"[{p}] running ({len(videos)} videos, {sum(len(t) for _, _, t in videos)} queries, "
                  f"{repeats[p]} repeat(s) per video) ...", flush=True)
            results[p] = C.run_worker(os.path.abspath(__file__), worker_args, main if args.in_process else None)
            with open(pred) as fh:
                predictions[p] = json.load(fh)
            print(f"[{p}] {results[p]['total_s']:.1f} s", flush=True)
            if cached:
                os.makedirs(args.cache, exist_ok=True)
                with open(cached, "w") as fh:
                    json.dump({"key": cache_key(p), "result": {**results[p], "measured_on": info},
                               "predictions": predictions[p]}, fh)
    load_after = C.load_average()

    queries = sum(len(t) for _, _, t in videos)
    equivalence = None
    if "package" in predictions and "baseline" in predictions:
        seg, score, loose, bad = compare(predictions["package"], predictions["baseline"])
        # a query whose two paths both stay within float32 rounding of the float64 reference is a tie
        # between candidates at float32 resolution, not a difference between the computations
        distance = recheck_against_float64([q for q, _ in bad], videos, args.preset, args.seed, device) if bad else {}
        ties = [(q, d) for q, d in distance.items() if max(d.values()) <= FLOAT32_HEAD_TOL]
        bad = [(q, why) for q, why in bad if q not in dict(ties)]
        equivalence = {"max_segment_diff_rankwise": seg, "max_score_diff_rankwise": score,
                       "strict_matches": len(predictions["package"]) - len(loose) - len(bad) - len(ties),
                       "loose_only_queries": len(loose), "loose_examples": loose[:10],
                       "mismatching_queries": len(bad), "examples": bad[:5], "float32_ties": ties,
                       "float64_distance": distance, "head_tol": FLOAT32_HEAD_TOL, "segment_tol": SEGMENT_TOL,
                       "score_tol": SCORE_TOL, "loose_score_tol": LOOSE_SCORE_TOL}
    steps = [s for _, s, _ in videos]
    valid_work = sum(s * len(t) for _, s, t in videos)
    from modeling_mscl import MSCLConfig

    # SnAG's evaluator pads every video to a multiple of the training length (TACoS: 2304)
    train_len = MSCLConfig.from_preset(args.preset).max_video_length
    padded_work = sum(-(-s // train_len) * train_len * len(t) for _, s, t in videos)

    # the GEMM-bound floor: the reference computation's FLOPs at the valid lengths / the GEMM rate of this run
    print("counting the FLOPs of the valid work ...", flush=True)
    work = valid_flops(MSCLConfig.from_preset(args.preset), videos, args.seed)
    rates = {"fp32": info.get("gemm_gflops_fp32"), "bf16": info.get("gemm_gflops_bf16")}
    floors = {k: work["total"] / (v * 1e9) for k, v in rates.items() if v}
    precision = {"package": "fp32", "baseline": "fp32", "autocast": "bf16", "bf16": "bf16", "bf16-compiled": "bf16",
                 "bf16-exact": "bf16"}

    def interleaved_floor(p):
        """Σ over videos of the video's FLOPs ÷ the GEMM rate measured right before its timing (None for a
        result without per-video rates: cached by an older version, or a GPU run)."""
        key = f"gemm_gflops_{precision[p]}"
        per_video = results[p].get("per_video", [])
        if not per_video or any(key not in v for v in per_video):
            return None
        return sum(w / (v[key] * 1e9) for w, v in zip(work["per_video"], per_video))

    floors_per_video_rate = {p: interleaved_floor(p) for p in paths}
    rows = []
    base = results.get("baseline", {}).get("total_s")
    old_bf16 = results.get("autocast", {}).get("total_s")
    labels = {"package": "(a) package `model.ground`, fp32",
              "bf16": "(b) package `model.ground`, model in bf16",
              "autocast": "(b') inference before issue 14, bf16 autocast",
              "bf16-compiled": "(b+) package `model.ground`, model in bf16, torch.compile",
              "bf16-exact": "(b−) package `model.ground`, model in bf16, no shape buckets",
              "baseline": "(c) SnAG-style baseline (1 query/forward, padded to the training length), fp32"}
    for p in paths:
        r = results[p]
        floor = floors.get(precision[p])
        rows.append([labels[p], f"{r['total_s']:.1f}", f"{queries / r['total_s']:.1f}",
                     f"{1000 * r['total_s'] / queries:.1f}", f"{base / r['total_s']:.2f}×" if base else "—",
                     f"{old_bf16 / r['total_s']:.2f}×" if old_bf16 else "—",
                     f"{100 * floor / r['total_s']:.0f}% ({precision[p]})" if floor else "—",
                     f"{100 * floors_per_video_rate[p] / r['total_s']:.0f}%" if floors_per_video_rate[p] else "—",
                     f"{r['peak_rss_mb'] / 1024:.2f}", f"{r.get('warmup_s', 0.0):.1f}",
                     f"{r['first_pass_s']:.1f}" if "first_pass_s" in r else "—"])
    md = C.markdown_table(["path", "total (s)", "queries/s", "ms/query", "speed-up vs (c)", "speed-up vs (b')",
                           "floor / time", "floor / time, rate per video", "peak RSS (GB)", "warm-up (s)",
                           "first pass (s)"], rows)
    md += (f"\n\n{len(videos)} videos ({min(steps)}–{max(steps)} steps), {queries} queries, random `{args.preset}` weights "
           f"(seed {args.seed}); per video the median of {', '.join(f'{repeats[p]} ({p})' for p in paths)} run(s), "
           f"summed; first pass = each video's first call, summed (one evaluation of the split, kernels met for the first "
           f"time included). Source of shapes: {source}. "
           f"Padding to {train_len} makes the baseline do {padded_work / valid_work:.2f}× the valid work "
           f"(query-weighted). The reference implementation needed {REFERENCE_SECONDS:.0f} s for this split on its CPU.\n")
    flops = results.get("baseline", {}).get("flops")
    if flops:
        rate = flops["total"] / results["baseline"]["total_s"] / 1e9
        md += (f"\nThe baseline's work: {flops['per_query'] / 1e9:.1f} GFLOP per query (fusion + heads at "
               f"{train_len} steps) and {flops['per_video_encoding'] / 1e9:.1f} GFLOP per video encoding, "
               f"{flops['total'] / 1e12:.1f} TFLOP in all, run at {rate:.0f} GFLOP/s (this machine's sustained "
               f"fp32 GEMM rate: {info.get('gemm_gflops_fp32', '?')} GFLOP/s). The reference's {REFERENCE_SECONDS:.0f} s "
               f"would need {flops['total'] / REFERENCE_SECONDS / 1e9:.0f} GFLOP/s.\n")
    md += (f"\nGEMM-bound floor: the reference computation at the valid lengths is {work['total'] / 1e12:.2f} TFLOP "
           f"({work['video_encoding'] / 1e12:.2f} video encoding, {work['queries'] / 1e12:.2f} text encoding + fusion + "
           f"heads); at this run's sustained GEMM rates ({rates['fp32']} / {rates['bf16']} GFLOP/s fp32 / bf16) that is "
           + " / ".join(f"{floors[k]:.1f} s {k}" for k in ("fp32", "bf16") if k in floors)
           + ". floor / time = the fraction of that floor a path reaches. \"Rate per video\": the same floor with "
           "each video's FLOPs at the GEMM rate measured in the path's own process right before that video's timing "
           "(the machine's speed drifts over a run of this length; the start-of-run rate is one sample of it).")
    frac = results.get("package", {}).get("flops") or {}
    if frac.get("fast_path_fraction"):
        md += (f" The package's fast path does {frac['fast_path_fraction']:.3f}× the reference's FLOPs (exact algebra; "
               "counted on the median-length video), so it can exceed 100%.")
    md += "\n"
    for p, label in (("bf16", "(b)"), ("bf16-compiled", "(b+)"), ("bf16-exact", "(b−)")):
        if old_bf16 and p in results:
            md += (f"\nbf16: {label} takes {results[p]['total_s']:.1f} s, {old_bf16 / results[p]['total_s']:.2f}× the speed "
                   f"of the old autocast inference (b') ({old_bf16:.1f} s) measured in this run"
                   + ("; its one-time compilation is in the warm-up column" if p == "bf16-compiled" else "") + ".\n")
    # what the bf16 target can be on this machine: no path that does the fast path's GEMMs beats their time at
    # the bf16 GEMM rate, so (b') / that time bounds any bf16 speed-up over (b')
    bf16_bound = None
    if old_bf16 and floors.get("bf16") and frac.get("fast_path_fraction"):
        bf16_bound = old_bf16 / (frac["fast_path_fraction"] * floors["bf16"])
        md += (f"\nThe most any bf16 path doing the fast path's GEMMs can gain over (b') here: {bf16_bound:.2f}× "
               f"((b')'s {old_bf16:.1f} s over {frac['fast_path_fraction']:.3f} × the bf16 floor, "
               f"{frac['fast_path_fraction'] * floors['bf16']:.1f} s).\n")
    if "package" in predictions:
        agree = {}
        for p in ("bf16", "bf16-compiled", "bf16-exact", "autocast"):
            if p in predictions:
                agree[p] = C.top1_agreement(predictions[p], predictions["package"])
                label = {"bf16": "(b)", "bf16-compiled": "(b+)", "bf16-exact": "(b−)", "autocast": "(b')"}[p]
                md += (f"\n{label} vs (a): the top-1 moment overlaps the fp32 one with "
                       f"tIoU ≥ 0.9 for {100 * agree[p]['tiou_ge_0.9']:.1f}% of the queries (mean tIoU "
                       f"{agree[p]['mean_tiou']:.3f}; random weights, so scores are nearly flat and ties frequent).\n")
    if equivalence is not None:
        e = equivalence
        md += (f"\nEquivalence (a) vs (c), top-5 moments of all {queries} queries: {e['strict_matches']} match within "
               f"{SEGMENT_TOL:g} grid units and scores within {SCORE_TOL:g} (moments with tied scores in either order); "
               f"{e['loose_only_queries']} more match only with scores within {LOOSE_SCORE_TOL:g} {e['loose_examples'][:3]}; "
               f"{len(e['float32_ties'])} differ by a tie at float32 resolution (both paths' head outputs within "
               f"{FLOAT32_HEAD_TOL:g} of the float64 reference computation: "
               + (", ".join(f"query {q}: package {d['package']:.1g}, baseline {d['baseline']:.1g}" for q, d in e["float32_ties"])
                  or "none") + f"); {e['mismatching_queries']} differ. "
               f"Rank-by-rank maxima: segments {e['max_segment_diff_rankwise']:.2g}, scores "
               f"{e['max_score_diff_rankwise']:.2g} (tie swaps included).\n")
    reused = [p for p in paths if results[p].get("reused_from_cache")]
    if reused:
        def rates_of(p):
            m = results[p].get("measured_on") or {}
            return f" (its run: {m['gemm_gflops_fp32']}/{m['gemm_gflops_bf16']} GFLOP/s)" if "gemm_gflops_bf16" in m else ""

        md += ("\nReused from `--cache` (measured by an earlier run of the same command on the same code): "
               + ", ".join(p + rates_of(p) for p in reused)
               + ". The machine line and GEMM rates above (hence floor / time) are this run's.\n")
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {
        "benchmark": "tacos_test",
        "machine": info,
        "load_before": load_before,
        "load_after": load_after,
        "load_note": C.load_note(load_before, load_after),
        "videos": len(videos),
        "queries": queries,
        "repeats": {p: repeats[p] for p in paths},
        "seed": args.seed,
        "quick": args.quick,
        "preset": args.preset,
        "padding_work_ratio": padded_work / valid_work,
        "reference_seconds": REFERENCE_SECONDS,
        "results": results,
        "equivalence": equivalence,
        "valid_flops": work,
        "gemm_floor_s": floors,
        "gemm_floor_per_video_rate_s": floors_per_video_rate,
        "bf16_speedup_bound_over_autocast": bf16_bound,
    }
    name = args.name or ("tacos_test_quick" if args.quick else "tacos_test")
    C.write_results(name, data, md, args.out, not args.no_write)
    if equivalence is not None:
        if equivalence["mismatching_queries"] or equivalence["loose_only_queries"]:
            raise SystemExit(f"FAIL: package and baseline disagree: {equivalence}")
    return data


def argparse_hidden():
    return C.argparse.SUPPRESS


if __name__ == "__main__":
    main()
