# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Helpers of the video tests: videos whose frames carry their own index, and a tiny CLIP stand-in.

Frame ``k`` shows ``k`` in binary as a 4 x 4 grid of large flat blocks (bit ``b`` lights block
``(b // 4, b % 4)``), which survives H.264 / VP9 / MPEG-4 at high quality, so a test can read back
*which* frame a sampler picked.
"""

from __future__ import annotations

import fractions
import json
import struct
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

BITS = 16
CODEC_FOR = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
QUALITY = {"libx264": {"crf": "12"}, "libvpx-vp9": {"crf": "10", "b": "0"}, "mpeg4": {"qscale": "2"}}


def index_pattern(k: int, height: int = 64, width: int = 64) -> np.ndarray:
    img = np.full((height, width, 3), 30, np.uint8)
    img[..., 1] = 70
    bh, bw = height // 4, width // 4
    for b in range(BITS):
        if (k >> b) & 1:
            r, c = divmod(b, 4)
            img[r * bh:(r + 1) * bh, c * bw:(c + 1) * bw] = 225
    return img


def read_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    bh, bw = h // 4, w // 4
    k = 0
    for b in range(BITS):
        r, c = divmod(b, 4)
        if img[r * bh:(r + 1) * bh, c * bw:(c + 1) * bw].mean() > 128:
            k |= 1 << b
    return k


def write_video(
    path,
    num_frames: int,
    *,
    fps: int = 30,
    times_ms: Optional[Sequence[int]] = None,
    size: Tuple[int, int] = (64, 64),
    codec: Optional[str] = None,
    rotation: Optional[int] = None,
    container_options: Optional[dict] = None,
    frame_fn: Callable[[int, int, int], np.ndarray] = index_pattern,
    gop: Optional[int] = None,
) -> Path:
    """Write ``num_frames`` frames (``frame_fn(k, h, w)``) with PyAV; ``times_ms`` gives variable frame times."""
    import av

    path = Path(path)
    codec = codec or CODEC_FOR[path.suffix]
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size[1], size[0]
        stream.pix_fmt = "yuv420p"
        options = dict(QUALITY.get(codec, {}))
        if gop:
            options["g"] = str(gop)
        stream.options = options
        if times_ms is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for k in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_fn(k, size[0], size[1]), format="rgb24")
            if times_ms is not None:
                frame.pts = int(times_ms[k])
                frame.time_base = fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_zero_frame_video(path) -> Path:
    """An MKV with a video stream that holds no frame (its audio stream keeps the file valid)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return Path(path)


def truncate_half(src, dst) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: len(data) // 2])
    return Path(dst)


def mkv_stating_duration(src, dst, seconds: float) -> Path:
    """Copy an MKV written by FFmpeg with its segment Duration (and the track's DURATION tag) rewritten."""
    data = bytearray(Path(src).read_bytes())
    marker = b"\x44\x89\x88"  # EBML id of Segment/Info/Duration, 8-byte float (milliseconds at the default scale)
    at = data.find(marker)
    assert at >= 0, "no Duration element"
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000.0)
    tag = b"00:00:03.000000000"
    if tag in data:
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        data = data.replace(tag, f"{int(hours):02d}:{int(minutes):02d}:{secs:012.9f}".encode())
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def decode_all(path) -> List[Tuple[fractions.Fraction, np.ndarray]]:
    """Every frame of the file as (exact presentation time, display-rotated RGB), decoded independently."""
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = fractions.Fraction(stream.start_time or 0) * stream.time_base
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24", interpolation="BICUBIC")
            turns = int(round((frame.rotation or 0) / 90.0)) % 4
            out.append((fractions.Fraction(frame.pts) * frame.time_base - origin, np.ascontiguousarray(np.rot90(rgb, k=turns))))
    return out


# ----------------------------------------------------------------------------------------------------
# tiny CLIP stand-in (random weights, real classes, saved to a folder like a Hub checkpoint)
# ----------------------------------------------------------------------------------------------------
WORDS = ["a", "the", "red", "blue", "green", "circle", "square", "moves", "left", "right", "man", "door"]


def make_tiny_clip(folder, *, seed: int = 0, image_size: int = 32, patch_size: int = 8, projection_dim: int = 16) -> Path:
    """CLIPModel (1 text layer, 2 vision layers) + its PIL image processor + a character-level CLIP tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    for w in WORDS:
        vocab.setdefault(w + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(seed)
    config = CLIPConfig(
        # the towers' configs carry the projection width too, as the Hub's CLIP configs do, so that
        # CLIPTextModelWithProjection / CLIPVisionModelWithProjection load from the full checkpoint
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=40, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         projection_dim=projection_dim),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch_size, projection_dim=projection_dim),
        projection_dim=projection_dim,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def clip_source(folder, *, fps: float = 5.0, dim: int = 16, **overrides) -> dict:
    src = {"type": "hf", "name_or_path": str(folder), "model_class": "CLIPVisionModelWithProjection", "output": "image_embeds",
           "normalize": None, "image_processor_backend": "pil", "resize": "image_processor", "dtype": "float32",
           "sampling": {"fps": fps, "clip_size": 1, "clip_stride": 1}, "dim": dim}
    src.update(overrides)
    return src


def reference_features(folder, images: Sequence[np.ndarray], output: str = "image_embeds") -> np.ndarray:
    """The stand-in model's output on ``images`` preprocessed by its own image processor (brute force)."""
    import torch
    from transformers import AutoImageProcessor, CLIPModel

    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    model = CLIPModel.from_pretrained(folder).eval()
    pixel_values = processor(images=list(images), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        vision = model.vision_model(pixel_values=pixel_values)
        if output == "image_embeds":
            return model.visual_projection(vision.pooler_output).numpy()
        return vision.pooler_output.numpy()


def cache_files(folder) -> List[str]:
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
