# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Video file → CLIP frame features: where the time goes, decode + embed rates, peak RSS, and the limits.

A synthetic 720p30 H.264 file (moving shapes over a textured, drifting background, so the decoder works as
on camera footage; default 180 s) is turned into ``mad_clip``-style features: one frame every 0.2 s
(5 per second) embedded by CLIP ViT-B/32 shapes with random weights (the default ``CLIPVisionConfig`` with
patch 32 and a 512-d projection, saved to a folder with a CLIP image processor and loaded through the
package's real ``from_pretrained`` path; speed does not depend on the weights). Each row runs in a fresh
process (after a warm-up on a 2 s clip), so that its peak RSS (``VmHWM``) is its own:

* ``decode only``: every frame decoded sequentially (PyAV, FFmpeg threads), nothing converted — the
  decoder's own rate, the ceiling of any path that decodes every frame.
* ``decode + sample``: the package's sampler + preprocessing, no model: with the default PIL bicubic resize
  (``resize: image_processor``, through the exact fast path, bit-identical to the image processor) and with
  the resize in the decoder (``resize: decoder``, swscale bicubic: other pixels, another cache key).
* ``ffmpeg subprocess``: the way a peer project does it — the ffmpeg binary with ``fps``/``scale``/``crop``
  filters piping raw RGB, read whole into memory (skipped with a note where no ffmpeg binary is installed).
* ``embed only``: the model alone on preprocessed batches, fp32 and bf16 weights (no decoding).
* ``decode + embed``: ``extract_video_features`` end to end. ``fp32`` / ``bf16`` are the package's paths
  (decode + preprocessing on a background thread, ``PREFETCH_BATCHES`` batches ahead of the model; bf16 =
  ``dtype_mode: weights``; ``model_threads="auto"``: torch keeps every core on 2–3 cores and leaves the
  decoder thread one from 4 on); ``previous`` rows are the path before this version for comparison (one thread,
  the image processor itself, bf16 by autocast); ``one core reserved for the decoder thread`` rows set torch's
  threads to one fewer than the cores (what ``"auto"`` did on every machine before; skipped from 4 cores,
  where it is the default); ``decoder resize`` is the fastest configuration.

Limits, measured in the same run: the decoder's sequential rate (row 1); the model at the machine's GEMM
rate, measured at CLIP's MLP shape (``1600×768 @ 768×3072``), times CLIP's FLOPs per frame (counted with
``torch.utils.flop_counter`` on the model itself); and the work bound of the pipelined path, which overlaps
decoding and the model on the same cores: ``cores / (CPU-s of decode + preprocessing per video second +
GEMM FLOPs per video second / one core's GEMM rate)``. Rates are video seconds per wall second
(× real time); the 2-hour projection is 7,200 s divided by the rate. Targets from the issue: decode +
embed ≥ 4× real time in fp32, peak RSS ≤ 2 GB for any length.

    python benchmarks/bench_video_extraction.py [--seconds 180] [--threads N] [--rows ...] [--device cuda]

``--quick`` runs every row on a 4 s 320×180 file with a tiny CLIP (seconds; numbers meaningless).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

FEATURES_PER_SECOND = 5.0
PREVIOUS = "previous path: sequential, image processor"
RESERVED = "one core reserved for the decoder thread"
# row -> what it runs
ROWS = {
    "decode only": {"kind": "decode"},
    "decode + sample (PIL resize)": {"kind": "sample", "resize": "image_processor"},
    "decode + sample (decoder resize)": {"kind": "sample", "resize": "decoder"},
    "ffmpeg subprocess": {"kind": "ffmpeg"},
    "embed only fp32": {"kind": "embed", "dtype": "float32"},
    "embed only bf16": {"kind": "embed", "dtype": "bfloat16"},
    f"decode + embed fp32 (PIL resize), {PREVIOUS}": {"kind": "extract", "dtype": "float32", "pipeline": False,
                                                      "fast_preprocessing": False},
    "decode + embed fp32 (PIL resize)": {"kind": "extract", "dtype": "float32"},
    f"decode + embed fp32 (PIL resize), {RESERVED}": {"kind": "extract", "dtype": "float32", "model_threads": "reserve"},
    f"decode + embed bf16 autocast (PIL resize), {PREVIOUS}": {"kind": "extract", "dtype": "bfloat16",
                                                               "dtype_mode": "autocast", "pipeline": False,
                                                               "fast_preprocessing": False},
    "decode + embed bf16 (PIL resize)": {"kind": "extract", "dtype": "bfloat16"},
    f"decode + embed bf16 (PIL resize), {RESERVED}": {"kind": "extract", "dtype": "bfloat16", "model_threads": "reserve"},
    "decode + embed bf16 (decoder resize)": {"kind": "extract", "dtype": "bfloat16", "resize": "decoder"},
}


def parse_rows(text: str):
    """``--rows``: comma-separated row names, where a name may itself contain commas (``"decode + embed fp32
    (PIL resize), previous path: ..."``): at each position the longest run of pieces that names a row."""
    pieces, rows, i = text.split(","), [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            name = ",".join(pieces[i:j]).strip()
            if name in ROWS:
                rows.append(name)
                i = j
                break
        else:
            raise ValueError(f"unknown row {pieces[i].strip()!r}; choose from {list(ROWS)}")
    return rows


# the model's largest GEMM (fc1 of a ViT-B layer on a batch of 32 frames x 50 tokens)
CLIP_GEMM = {"rows": 32 * 50, "inner": 768, "cols": 3072}


# ----------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------
def make_video(path: str, seconds: float, width: int, height: int, fps: int = 30) -> str:
    """Synthetic camera-like footage: a textured background drifting under moving shapes, H.264 (crf 23)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    tex = np.kron(tex, np.ones((8, 8, 1), np.uint8))  # 8-pixel blocks of noise: detail the encoder must keep
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for k in range(int(seconds * fps)):
            dx, dy = k % 8, (k // 3) % 8
            img = tex[dy:dy + height, dx:dx + width].copy()
            for i, color in enumerate(((230, 40, 40), (40, 200, 60), (50, 80, 230))):
                cx = int((0.5 + 0.4 * np.sin(0.05 * k + 2 * i)) * width)
                cy = int((0.5 + 0.35 * np.cos(0.03 * k + i)) * height)
                r = height // 8
                # the disc (x - cx)^2 + (y - cy)^2 < r^2, computed inside its bounding box only
                y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, height), max(cx - r, 0), min(cx + r + 1, width)
                if y0 < y1 and x0 < x1:
                    disc = (xs[y0:y1, x0:x1] - cx) ** 2 + (ys[y0:y1, x0:x1] - cy) ** 2 < r * r
                    img[y0:y1, x0:x1][disc] = color
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_clip(folder: str, quick: bool) -> str:
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    if quick:
        config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=64, patch_size=16, projection_dim=32)
        size = 64
    else:
        config = CLIPVisionConfig(patch_size=32, projection_dim=512)  # ViT-B/32 shapes
        size = 224
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def source(clip: str, resize: str = "image_processor", dtype: str = "float32", dtype_mode: str = "weights") -> dict:
    return {"type": "hf", "name_or_path": clip, "model_class": "CLIPVisionModelWithProjection", "output": "image_embeds",
            "resize": resize, "dtype": dtype, "dtype_mode": dtype_mode,
            "sampling": {"fps": FEATURES_PER_SECOND, "clip_size": 1, "clip_stride": 1}}


# ----------------------------------------------------------------------------------------------------
# one measurement (fresh process)
# ----------------------------------------------------------------------------------------------------
def worker(args):
    import torch

    C.setup_torch(args.threads, args.seed)
    row = args.row
    spec = ROWS[row]
    kind = spec["kind"]
    if kind == "ffmpeg":
        return C.finish_worker(ffmpeg_row(args), C.current_rss_mb())
    from modeling_mscl.video_features_mscl import HFImageFeatureExtractor, extract_video_features
    from modeling_mscl.video_processing_mscl import VideoFrameSampler, import_av

    ext = HFImageFeatureExtractor(source(args.clip, spec.get("resize", "image_processor"), spec.get("dtype", "float32"),
                                         spec.get("dtype_mode", "weights")), device=args.device)
    if spec.get("fast_preprocessing") is False:
        ext._fast = None  # the image processor itself, as before the exact fast path
    model_threads = set()
    embed = ext.embed

    def recording_embed(pixel_values):
        model_threads.add(torch.get_num_threads())  # what the model ran with (extract_video_features may set it)
        return embed(pixel_values)

    ext.embed = recording_embed

    def run(video, warmup=False):
        if kind == "decode":
            av = import_av()
            frames = 0
            with av.open(video) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for _ in container.decode(stream):
                    frames += 1
            return {"frames_decoded": frames}
        if kind == "sample":
            sampler = VideoFrameSampler(video, FEATURES_PER_SECOND, output_size=ext.decoder_output_size)
            n = 0
            for frame in sampler:
                ext.preprocess_frame(frame.image)
                n += len(frame.indices)
            return {"features": n, "frames_decoded": sampler.result.frames_decoded, "fast_preprocessing": ext.fast_preprocessing}
        if kind == "embed":
            batches = 2 if warmup else max(1, args.embed_frames // args.batch_size)
            pixel_values = torch.randn(args.batch_size, 3, args.crop, args.crop)
            for _ in range(batches):
                ext.embed(pixel_values)
            return {"features": batches * args.batch_size}
        setting = spec.get("model_threads", "auto")
        if setting == "reserve":
            from modeling_mscl.video_features_mscl import _threads_leaving_a_core

            setting = _threads_leaving_a_core()
        out = extract_video_features(video, ext, use_cache=False, batch_size=args.batch_size,
                                     pipeline=spec.get("pipeline", True), model_threads=setting)
        return {"features": int(out.features.shape[0]), "frames_decoded": out.frames_decoded,
                "fast_preprocessing": ext.fast_preprocessing}

    run(args.warmup_video, warmup=True)  # imports, decoder and model set-up, first-call allocations: outside the clock
    start_rss = C.current_rss_mb()
    C.synchronize(args.device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    info = run(args.video)
    C.synchronize(args.device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if kind == "embed":  # video seconds these frames stand for
        info["video_seconds"] = info["features"] / FEATURES_PER_SECOND
    return C.finish_worker({"row": row, "wall_s": wall, "cpu_s": cpu, **info, "model_threads": sorted(model_threads)}, start_rss)


def ffmpeg_row(args) -> dict:
    """The peer's way: ffmpeg resamples to 5 fps, scales the short side to the crop size, crops, pipes raw RGB,
    and the whole output is read into memory."""
    import threading

    import numpy as np

    size = args.crop
    vf = (f"fps={FEATURES_PER_SECOND:g},scale='if(gt(iw,ih),-2,{size})':'if(gt(iw,ih),{size},-2)':flags=bicubic,"
          f"crop={size}:{size}")
    cmd = [args.ffmpeg, "-nostdin", "-loglevel", "error", "-i", args.video, "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    cpu0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # ffmpeg's own peak: its VmHWM, polled while it runs (ru_maxrss of a child starts at its parent's peak)
    peak = [0.0]

    def poll():
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    peak[0] = max(peak[0], next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:")) / 1024.0)
            except (OSError, StopIteration, ValueError):
                pass
            time.sleep(0.01)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {err.decode(errors='replace')[-2000:]}")
    frames = np.frombuffer(out, np.uint8).reshape(-1, size, size, 3)
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user) + (
        cpu1.children_system - cpu0.children_system)
    return {"row": "ffmpeg subprocess", "wall_s": wall, "cpu_s": cpu, "features": int(frames.shape[0]),
            "ffmpeg_peak_rss_mb": peak[0] or None, "frames_in_memory_mb": frames.nbytes / 2**20}


# ----------------------------------------------------------------------------------------------------
# limits
# ----------------------------------------------------------------------------------------------------
def clip_flops_per_frame(clip: str, size: int) -> dict:
    """FLOPs of one frame through the model (``torch.utils.flop_counter``), in total and in its GEMMs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(clip).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=torch.zeros(1, 3, size, size))
    by_op = {str(op): float(n) for op, n in counter.get_flop_counts()["Global"].items()}
    gemm = sum(n for op, n in by_op.items() if any(k in op for k in ("mm", "addmm", "bmm", "linear")))
    return {"total": float(counter.get_total_flops()), "gemm": gemm, "by_op": by_op}


def gemm_rates(threads: int) -> dict:
    """GEMM GFLOP/s (fp32, bf16) at CLIP's MLP shape with all ``threads`` and with one thread."""
    import torch

    out = {}
    saved = torch.get_num_threads()
    try:
        for label, n in (("all", threads), ("one", 1)):
            torch.set_num_threads(n)
            for prec, rate in C.gemm_gflops(**CLIP_GEMM).items():
                out[f"{prec.replace('gemm_gflops_', '')}_{label}_threads"] = rate
    finally:
        torch.set_num_threads(saved)
    return out


def compute_limits(results: dict, flops: dict, gemm: dict, cores: int) -> dict:
    """The ceilings the measured rows are compared with (× real time) and the CPU time they are made of."""
    per_vs = FEATURES_PER_SECOND  # frames per video second
    limits = {"clip_gflop_per_frame": flops["total"] / 1e9, "clip_gemm_gflop_per_frame": flops["gemm"] / 1e9,
              "gemm_gflops": gemm, "cores": cores}
    dec = results.get("decode only", {})
    if "x_realtime" in dec:
        limits["decode_x_realtime"] = dec["x_realtime"]
        limits["decode_cpu_s_per_video_s"] = dec["cpu_per_video_s"]
    for prec in ("fp32", "bf16"):
        all_rate, one_rate = gemm.get(f"{prec}_all_threads"), gemm.get(f"{prec}_one_threads")
        if not all_rate:
            continue
        limits[f"model_x_realtime_{prec}"] = all_rate * 1e9 / (flops["total"] * per_vs)
        if "decode_x_realtime" in limits:  # decode, then the model, on the same cores
            limits[f"decode_then_model_x_realtime_{prec}"] = 1.0 / (1.0 / limits["decode_x_realtime"]
                                                                  + 1.0 / limits[f"model_x_realtime_{prec}"])
        producer = results.get("decode + sample (PIL resize)", {})
        if one_rate and "cpu_per_video_s" in producer:
            gemm_cpu = flops["gemm"] * per_vs / (one_rate * 1e9)  # core-seconds of GEMMs per video second
            limits[f"model_gemm_cpu_s_per_video_s_{prec}"] = gemm_cpu
            limits["producer_cpu_s_per_video_s"] = producer["cpu_per_video_s"]
            limits[f"pipelined_work_bound_x_realtime_{prec}"] = cores / (producer["cpu_per_video_s"] + gemm_cpu)
    return limits


def fp32_verdict(results: dict, limits: dict) -> str:
    row = results.get("decode + embed fp32 (PIL resize)")
    if not row or "x_realtime" not in row:
        return ""
    met = row["x_realtime"] >= 4.0
    text = f"decode + embed fp32 ≥ 4× real time: {'met' if met else 'NOT met'} ({row['x_realtime']:.2f}×)"
    bound = limits.get("pipelined_work_bound_x_realtime_fp32")
    if not met and bound is not None:
        cores = limits["cores"]
        budget = cores / 4.0
        need = limits["producer_cpu_s_per_video_s"] + limits["model_gemm_cpu_s_per_video_s_fp32"]
        text += (f". Reason: at 4× the {cores} cores have {budget:.2f} CPU-s per video second; decoding + PIL preprocessing "
                 f"take {limits['producer_cpu_s_per_video_s']:.2f} and CLIP's GEMMs alone, at one core's measured fp32 GEMM "
                 f"rate ({limits['gemm_gflops']['fp32_one_threads']:.0f} GFLOP/s), {limits['model_gemm_cpu_s_per_video_s_fp32']:.2f} "
                 f"(= {limits['clip_gemm_gflop_per_frame'] * FEATURES_PER_SECOND:.1f} GFLOP per video second), "
                 f"{need:.2f} in all{' — more than the budget' if need > budget else ''}: the fp32 ceiling of this machine is "
                 f"{bound:.2f}× before the model's non-GEMM ops")
        bf16 = results.get("decode + embed bf16 (PIL resize)")
        if bf16 and "x_realtime" in bf16:
            text += f"; bf16 weights reach {bf16['x_realtime']:.2f}×"
    return text + "."


# ----------------------------------------------------------------------------------------------------
def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="length of the synthetic video (default 180; --quick 4)")
    parser.add_argument("--video", default=None, help="use this video file instead of generating one")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", default=None, help="comma-separated subset of the rows (names may contain commas; default: all)")
    parser.add_argument("--in-process", action="store_true", help="run the measurements in this process (smoke tests)")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--row", help=C.argparse.SUPPRESS)
    parser.add_argument("--clip", help=C.argparse.SUPPRESS)
    parser.add_argument("--warmup-video", help=C.argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, default=224, help=C.argparse.SUPPRESS)
    parser.add_argument("--embed-frames", type=int, default=320, help=C.argparse.SUPPRESS)
    parser.add_argument("--ffmpeg", help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    if args.worker:
        return worker(args)

    C.setup_torch(args.threads, args.seed)
    import torch

    from modeling_mscl.video_features_mscl import _usable_cores

    cores = _usable_cores()  # what model_threads="auto" counts
    seconds = args.seconds or (4.0 if args.quick else 180.0)
    width, height = (320, 180) if args.quick else (1280, 720)
    try:
        rows = parse_rows(args.rows) if args.rows else list(ROWS)
    except ValueError as exc:
        parser.error(str(exc))
    ffmpeg = shutil.which("ffmpeg")
    info = C.machine_info(device)
    work = tempfile.mkdtemp(prefix="mscl-bench-video-")
    try:
        t0 = time.perf_counter()
        print(f"generating a {seconds:g} s {width}x{height} test video ...", flush=True)
        video = args.video or make_video(os.path.join(work, "synthetic.mp4"), seconds, width, height)
        warmup = make_video(os.path.join(work, "warmup.mp4"), 2.0, width, height)
        generate_s = time.perf_counter() - t0
        clip = make_clip(os.path.join(work, "clip"), args.quick)
        crop = 64 if args.quick else 224
        flops = clip_flops_per_frame(clip, crop)
        gemm = gemm_rates(torch.get_num_threads()) if device == "cpu" else {}
        duration = seconds_of(video)
        embed_frames = 2 * args.batch_size if args.quick else args.embed_frames
        load_before = C.load_average()
        results = {}
        for row in rows:
            spec = ROWS[row]
            if row == "ffmpeg subprocess" and not ffmpeg:
                results[row] = {"skipped": "no ffmpeg binary on this machine (PATH); install it to compare"}
                print(f"[{row}] skipped: no ffmpeg binary", flush=True)
                continue
            if "model_threads" in spec and (device != "cpu" or cores < 2 or cores >= 4):
                results[row] = {"skipped": "the same as the row above (GPU, a single core, or 4+ cores where the default reserves one)"}
                print(f"[{row}] skipped: {results[row]['skipped']}", flush=True)
                continue
            wargs = ["--row", row, "--clip", clip, "--video", video, "--warmup-video", warmup, "--device", device,
                     "--seed", str(args.seed), "--crop", str(crop), "--batch-size", str(args.batch_size),
                     "--embed-frames", str(embed_frames)]
            if ffmpeg:
                wargs += ["--ffmpeg", ffmpeg]
            if args.threads:
                wargs += ["--threads", str(args.threads)]
            print(f"[{row}] ...", flush=True)
            r = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None)
            video_s = r.get("video_seconds", duration)
            r["x_realtime"] = video_s / r["wall_s"]
            r["cpu_per_video_s"] = r["cpu_s"] / video_s
            results[row] = r
            print(f"[{row}] {r['wall_s']:.1f} s, {r['x_realtime']:.2f}x real time, {r['cpu_per_video_s']:.2f} CPU-s per video s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        load_after = C.load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    limits = compute_limits(results, flops, gemm, cores)
    table = []
    for row in rows:
        r = results.get(row, {})
        if "skipped" in r:
            table.append([row, "—", "—", "—", "—", "—", "skipped: " + r["skipped"]])
            continue
        spec = ROWS[row]
        prec = "bf16" if spec.get("dtype") == "bfloat16" else "fp32"
        note = ""
        if spec["kind"] == "extract" and f"pipelined_work_bound_x_realtime_{prec}" in limits:
            note = f"{100 * r['x_realtime'] / limits[f'pipelined_work_bound_x_realtime_{prec}']:.0f}% of the {prec} work bound"
        elif spec["kind"] == "embed" and f"model_x_realtime_{prec}" in limits:
            note = f"{100 * r['x_realtime'] / limits[f'model_x_realtime_{prec}']:.0f}% of the {prec} GEMM-rate limit"
        elif row == "decode only":
            note = "the decoder's own sequential rate"
        elif row == "ffmpeg subprocess":
            ffpeak = r.get("ffmpeg_peak_rss_mb")
            note = (f"ffmpeg's own peak {ffpeak:.0f} MB; " if ffpeak else "") + (
                f"{r['frames_in_memory_mb']:.0f} MB of frames held in the reading process (peak RSS column)")
        if spec["kind"] == "embed":
            movie = "—"
        else:
            movie = f"{7200 / r['x_realtime'] / 60:.1f}"
        table.append([row, f"{r['wall_s']:.1f}", f"{r['x_realtime']:.2f}", f"{r['cpu_per_video_s']:.2f}", movie,
                      f"{r['peak_rss_mb']:.0f}", note])
    md = C.markdown_table(["path", "wall (s)", "× real time", "CPU-s per video s", "2-h movie (min)", "peak RSS (MB)", "note"], table)
    lim = [f"CLIP forward {limits['clip_gflop_per_frame']:.2f} GFLOP/frame ({limits['clip_gemm_gflop_per_frame']:.2f} in GEMMs) "
           f"at {FEATURES_PER_SECOND:g} frames per video second"]
    if gemm:
        lim.append("GEMM at CLIP's MLP shape: fp32 {fp32_all_threads:.0f} GFLOP/s ({fp32_one_threads:.0f} on one core), "
                   "bf16 {bf16_all_threads:.0f} ({bf16_one_threads:.0f} on one core)".format(**gemm))
    for key, label in (("decode_x_realtime", "decoder alone"), ("model_x_realtime_fp32", "model at the fp32 GEMM rate"),
                       ("model_x_realtime_bf16", "model at the bf16 GEMM rate"),
                       ("decode_then_model_x_realtime_fp32", "decode then model, fp32"),
                       ("decode_then_model_x_realtime_bf16", "decode then model, bf16"),
                       ("pipelined_work_bound_x_realtime_fp32", "work bound of the pipelined path, fp32"),
                       ("pipelined_work_bound_x_realtime_bf16", "work bound of the pipelined path, bf16")):
        if key in limits:
            lim.append(f"{label} {limits[key]:.2f}× real time")
    md += (f"\n\nVideo: {duration:.0f} s synthetic {'320×180' if args.quick else '1280×720'} 30 fps H.264 (generated in "
           f"{generate_s:.0f} s); features: {FEATURES_PER_SECOND:g} per second, {'tiny CLIP' if args.quick else 'CLIP ViT-B/32 shapes'}, "
           f"random weights, batch {args.batch_size}, device {device}, {cores} cores. Limits measured in this run: "
           + "; ".join(lim) + ". The work bound is cores / (CPU-s per video s of `decode + sample (PIL resize)` + "
           "GEMM FLOPs per video s / one core's GEMM rate): decoding and the model overlap on the same cores.\n")
    if not args.quick:
        verdict = fp32_verdict(results, limits)
        peaks = [r["peak_rss_mb"] for r in results.values() if "peak_rss_mb" in r]
        md += f"\nTargets: {verdict} Peak RSS ≤ 2 GB: {'met' if peaks and max(peaks) <= 2048 else 'NOT met'}"
        md += f" (largest {max(peaks):.0f} MB).\n" if peaks else ".\n"
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {"benchmark": "video_extraction", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "quick": args.quick, "video_seconds": duration,
            "resolution": [width, height] if not args.video else None, "features_per_second": FEATURES_PER_SECOND,
            "batch_size": args.batch_size, "device": device, "flops_per_frame": flops, "limits": limits, "results": results}
    C.write_results("video_extraction_quick" if args.quick else "video_extraction", data, md, args.out, not args.no_write)
    return data


def seconds_of(path: str) -> float:
    from modeling_mscl.video_processing_mscl import probe_video

    info = probe_video(path)
    return float(info.stated_duration)


if __name__ == "__main__":
    main()
