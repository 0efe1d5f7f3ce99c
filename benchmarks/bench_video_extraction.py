# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Video file → CLIP frame features: decode-and-sample and decode + embed rates, peak RSS, limits.

A synthetic 720p30 H.264 file (moving shapes over a textured, drifting background, so the decoder works as
on camera footage; default 300 s) is turned into ``mad_clip``-style features: one frame every 0.2 s
(5 per second) embedded by CLIP ViT-B/32 shapes with random weights (the default ``CLIPVisionConfig`` with
patch 32 and a 512-d projection, saved to a folder with a CLIP image processor and loaded through the
package's real ``from_pretrained`` path; speed does not depend on the weights). Rows, each in a fresh
process so that its peak RSS is its own:

* ``decode only``: every frame decoded sequentially (PyAV, FFmpeg threads), nothing converted — the
  decoder's own rate, the ceiling of any decode-bound path.
* ``decode + sample``: the package's sampler + the checkpoint's image processor, no model: with the
  default PIL bicubic resize (``resize: image_processor``) and with the resize in the decoder
  (``resize: decoder``, swscale bicubic).
* ``ffmpeg subprocess``: the way a peer project does it — the ffmpeg binary with ``fps``/``scale``/``crop``
  filters piping raw RGB, read whole into memory (skipped with a note where no ffmpeg binary is installed).
* ``decode + embed``: ``extract_video_features`` end to end (decode, sample, preprocess, embed in batches of
  32), fp32 and bf16 autocast, PIL resize; and fp32 with the decoder resize.

The limits measured in the same run: the decoder's sequential rate (row 1), and the model's rate at the
machine's sustained GEMM rate (``_common.gemm_gflops``) times CLIP's FLOPs per frame (counted with
``torch.utils.flop_counter``); decode + embed run one after the other, so their combined ceiling is
``1 / (1/decode + 1/model)``. Rates are video seconds per wall second (×real time); the 2-hour projection is
7,200 s divided by the rate. Targets from the issue: decode + embed ≥ 4× real time in fp32, peak RSS ≤ 2 GB.

    python benchmarks/bench_video_extraction.py [--seconds 300] [--threads N] [--device cuda]

``--quick`` runs every row on a 4 s 320×180 file with a tiny CLIP (seconds; numbers meaningless).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

ROWS = ("decode only", "decode + sample (PIL resize)", "decode + sample (decoder resize)", "ffmpeg subprocess",
        "decode + embed fp32 (PIL resize)", "decode + embed bf16 (PIL resize)", "decode + embed fp32 (decoder resize)")
FEATURES_PER_SECOND = 5.0


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
                img[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] = color
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


def source(clip: str, resize: str, dtype: str) -> dict:
    return {"type": "hf", "name_or_path": clip, "model_class": "CLIPVisionModelWithProjection", "output": "image_embeds",
            "resize": resize, "dtype": dtype, "sampling": {"fps": FEATURES_PER_SECOND, "clip_size": 1, "clip_stride": 1}}


# ----------------------------------------------------------------------------------------------------
# one measurement (fresh process)
# ----------------------------------------------------------------------------------------------------
def worker(args):
    import torch

    C.setup_torch(args.threads, args.seed)
    row = args.row
    info = {}
    if row == "ffmpeg subprocess":
        return _finish(ffmpeg_row(args), C.current_rss_mb())
    from modeling_mscl.video_features_mscl import HFImageFeatureExtractor, extract_video_features
    from modeling_mscl.video_processing_mscl import VideoFrameSampler, import_av

    resize = "decoder" if "decoder resize" in row else "image_processor"
    dtype = "bfloat16" if "bf16" in row else "float32"
    ext = HFImageFeatureExtractor(source(args.clip, resize, dtype), device=args.device)

    def run(video):
        if row == "decode only":
            av = import_av()
            frames = 0
            with av.open(video) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for _ in container.decode(stream):
                    frames += 1
            return {"frames_decoded": frames}
        if "sample" in row:
            sampler = VideoFrameSampler(video, FEATURES_PER_SECOND, output_size=ext.decoder_output_size)
            n = 0
            for frame in sampler:
                ext.preprocess([frame.image])
                n += len(frame.indices)
            return {"features": n, "frames_decoded": sampler.result.frames_decoded}
        out = extract_video_features(video, ext, use_cache=False, batch_size=args.batch_size)
        return {"features": int(out.features.shape[0]), "frames_decoded": out.frames_decoded}

    run(args.warmup_video)  # imports, decoder and model set-up, first-call allocations: outside the clock
    start_rss = C.current_rss_mb()
    C.synchronize(args.device)
    t0 = time.perf_counter()
    info = run(args.video)
    C.synchronize(args.device)
    wall = time.perf_counter() - t0
    return _finish({"row": row, "wall_s": wall, **info, "threads": torch.get_num_threads()}, start_rss)


def _finish(result: dict, start_rss_mb: float) -> dict:
    """``_common.finish_worker`` with the peak read from ``VmHWM``: on Linux ``ru_maxrss`` of a process started by
    fork + exec begins at its parent's RSS, and this script's parent holds a model and a video generator."""
    result = dict(result, start_rss_mb=start_rss_mb)
    try:
        with open("/proc/self/status") as fh:
            result["peak_rss_mb"] = next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration):
        result["peak_rss_mb"] = C.peak_rss_mb()
    peak_gpu = C.cuda_peak_mb()
    if peak_gpu is not None:
        result["peak_cuda_mb"] = peak_gpu
    print(json.dumps(result))
    sys.stdout.flush()
    return result


def ffmpeg_row(args) -> dict:
    """The peer's way: ffmpeg resamples to 5 fps, scales the short side to the crop size, crops, pipes raw RGB,
    and the whole output is read into memory."""
    import numpy as np

    size = args.crop
    vf = (f"fps={FEATURES_PER_SECOND:g},scale='if(gt(iw,ih),-2,{size})':'if(gt(iw,ih),{size},-2)':flags=bicubic,"
          f"crop={size}:{size}")
    cmd = [args.ffmpeg, "-nostdin", "-loglevel", "error", "-i", args.video, "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(-1, size, size, 3)
    wall = time.perf_counter() - t0
    import resource

    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"row": "ffmpeg subprocess", "wall_s": wall, "features": int(frames.shape[0]), "duration_s": None,
            "ffmpeg_peak_rss_mb": child_peak, "frames_in_memory_mb": frames.nbytes / 2**20}


# ----------------------------------------------------------------------------------------------------
def clip_flops_per_frame(clip: str, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(clip).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def main(argv=None):
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="length of the synthetic video (default 300; --quick 4)")
    parser.add_argument("--video", default=None, help="use this video file instead of generating one")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", default=None, help="comma-separated subset of the rows (default: all)")
    parser.add_argument("--in-process", action="store_true", help="run the measurements in this process (smoke tests)")
    parser.add_argument("--worker", action="store_true", help=C.argparse.SUPPRESS)
    parser.add_argument("--row", help=C.argparse.SUPPRESS)
    parser.add_argument("--clip", help=C.argparse.SUPPRESS)
    parser.add_argument("--warmup-video", help=C.argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, default=224, help=C.argparse.SUPPRESS)
    parser.add_argument("--ffmpeg", help=C.argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = C.resolve_device(args.device)
    if args.worker:
        return worker(args)

    C.setup_torch(args.threads, args.seed)
    seconds = args.seconds or (4.0 if args.quick else 300.0)
    width, height = (320, 180) if args.quick else (1280, 720)
    rows = [r.strip() for r in args.rows.split(",")] if args.rows else list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; choose from {ROWS}")
    ffmpeg = shutil.which("ffmpeg")
    info = C.machine_info(device)
    work = tempfile.mkdtemp(prefix="mscl-bench-video-")
    try:
        t0 = time.perf_counter()
        video = args.video or make_video(os.path.join(work, "synthetic.mp4"), seconds, width, height)
        warmup = make_video(os.path.join(work, "warmup.mp4"), 2.0, width, height)
        generate_s = time.perf_counter() - t0
        clip = make_clip(os.path.join(work, "clip"), args.quick)
        crop = 64 if args.quick else 224
        flops = clip_flops_per_frame(clip, crop)
        load_before = C.load_average()
        results = {}
        for row in rows:
            if row == "ffmpeg subprocess" and not ffmpeg:
                results[row] = {"skipped": "no ffmpeg binary on this machine (PATH); install it to compare"}
                print(f"[{row}] skipped: no ffmpeg binary", flush=True)
                continue
            wargs = ["--row", row, "--clip", clip, "--video", video, "--warmup-video", warmup, "--device", device,
                     "--seed", str(args.seed), "--crop", str(crop), "--batch-size", str(args.batch_size)]
            if ffmpeg:
                wargs += ["--ffmpeg", ffmpeg]
            if args.threads:
                wargs += ["--threads", str(args.threads)]
            print(f"[{row}] ...", flush=True)
            r = C.run_worker(os.path.abspath(__file__), wargs, main if args.in_process else None)
            r["x_realtime"] = seconds_of(video) / r["wall_s"]
            results[row] = r
            print(f"[{row}] {r['wall_s']:.1f} s, {r['x_realtime']:.2f}x real time, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        load_after = C.load_average()
        duration = seconds_of(video)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # limits measured in this run
    limits = {"clip_gflop_per_frame": flops / 1e9}
    if "decode only" in results:
        limits["decode_x_realtime"] = results["decode only"]["x_realtime"]
    for prec in ("fp32", "bf16"):
        rate = info.get(f"gemm_gflops_{prec}")
        if rate:
            limits[f"model_x_realtime_{prec}"] = rate * 1e9 / (flops * FEATURES_PER_SECOND)
            if "decode_x_realtime" in limits:
                limits[f"decode_plus_model_x_realtime_{prec}"] = 1.0 / (1.0 / limits["decode_x_realtime"]
                                                                       + 1.0 / limits[f"model_x_realtime_{prec}"])
    table = []
    for row in rows:
        r = results.get(row, {})
        if "skipped" in r:
            table.append([row, "—", "—", "—", "—", "skipped: " + r["skipped"]])
            continue
        note = ""
        prec = "bf16" if "bf16" in row else "fp32"
        if row.startswith("decode + embed") and f"decode_plus_model_x_realtime_{prec}" in limits:
            note = f"{100 * r['x_realtime'] / limits[f'decode_plus_model_x_realtime_{prec}']:.0f}% of the decode+model limit"
        elif row == "decode only":
            note = "the decoder's own sequential rate"
        elif row == "ffmpeg subprocess":
            note = (f"ffmpeg's own peak {r['ffmpeg_peak_rss_mb']:.0f} MB; {r['frames_in_memory_mb']:.0f} MB of frames held "
                    "in the reading process")
        table.append([row, f"{r['wall_s']:.1f}", f"{r['x_realtime']:.2f}", f"{7200 / r['x_realtime'] / 60:.1f}",
                      f"{r['peak_rss_mb']:.0f}", note])
    md = C.markdown_table(["path", "wall (s)", "× real time", "2-h movie (min)", "peak RSS (MB)", "note"], table)
    lim = [f"CLIP forward {limits['clip_gflop_per_frame']:.2f} GFLOP/frame at {FEATURES_PER_SECOND:g} frames per video second"]
    for key, label in (("decode_x_realtime", "decoder alone"), ("model_x_realtime_fp32", "model at the fp32 GEMM rate"),
                       ("model_x_realtime_bf16", "model at the bf16 GEMM rate"),
                       ("decode_plus_model_x_realtime_fp32", "decode then model, fp32"),
                       ("decode_plus_model_x_realtime_bf16", "decode then model, bf16")):
        if key in limits:
            lim.append(f"{label} {limits[key]:.2f}× real time")
    md += (f"\n\nVideo: {duration:.0f} s synthetic {'320×180' if args.quick else '1280×720'} 30 fps H.264 (generated in "
           f"{generate_s:.0f} s); features: {FEATURES_PER_SECOND:g} per second, {'tiny CLIP' if args.quick else 'CLIP ViT-B/32 shapes'}, "
           f"random weights, batch {args.batch_size}, device {device}. Limits measured in this run: " + "; ".join(lim) + ".\n")
    target = results.get("decode + embed fp32 (PIL resize)")
    if target and not args.quick:
        md += (f"\nTargets: decode + embed fp32 ≥ 4× real time: {'met' if target['x_realtime'] >= 4 else 'NOT met'} "
               f"({target['x_realtime']:.2f}×); peak RSS ≤ 2 GB: "
               f"{'met' if max(r.get('peak_rss_mb', 0) for r in results.values()) <= 2048 else 'NOT met'}.\n")
    if args.in_process:
        md += "\nIn-process run (smoke test): peak RSS is the whole process's, not one measurement's.\n"
    data = {"benchmark": "video_extraction", "machine": info, "load_before": load_before, "load_after": load_after,
            "load_note": C.load_note(load_before, load_after), "quick": args.quick, "video_seconds": duration,
            "resolution": [width, height] if not args.video else None, "features_per_second": FEATURES_PER_SECOND,
            "batch_size": args.batch_size, "device": device, "limits": limits, "results": results}
    C.write_results("video_extraction_quick" if args.quick else "video_extraction", data, md, args.out, not args.no_write)
    return data


def seconds_of(path: str) -> float:
    from modeling_mscl.video_processing_mscl import probe_video

    info = probe_video(path)
    return float(info.stated_duration)


if __name__ == "__main__":
    main()
