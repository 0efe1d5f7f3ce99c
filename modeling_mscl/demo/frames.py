# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Thumbnails for the demo's timeline: the frame on screen at a few given times, as small JPEG data URIs.

A handful of frames is read by seeking (to the keyframe before each time, then decoding forward to the
frame on screen at that time), never by decoding the whole video: the features come from the pipeline
and its cache, this only draws pictures. Times closer together than ``reseek_after`` seconds are served
by decoding on from the previous one instead of seeking again.

Copied into the Space folder with the rest of the demo: third-party imports only.
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["frames_at", "thumbnail_uris"]


def _rotation(frame) -> int:
    turns = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return turns * 90


def frames_at(path: str, times: Sequence[float], *, height: int = 54, reseek_after: float = 4.0) -> Dict[float, np.ndarray]:
    """``{t: (height, w, 3) uint8 RGB}``: the frame on screen at each time ``t`` (seconds from the start).

    A time past the end gets the last frame. The display rotation of phone videos is applied.
    """
    import av

    wanted = sorted({float(t) for t in times})
    out: Dict[float, np.ndarray] = {}
    if not wanted:
        return out
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        origin = Fraction(stream.start_time) * tb if stream.start_time is not None else Fraction(0)
        decoder = None
        position: Optional[float] = None  # time of the last decoded frame
        held = None  # (time, frame): the newest frame at or before the next wanted time
        i = 0
        while i < len(wanted):
            t = wanted[i]
            if decoder is None or position is None or t < position or t - position > reseek_after:
                target = int((Fraction(t) + origin) / tb) if tb else 0
                container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
                decoder = container.decode(stream)
                held, position = None, None
            done = False
            for frame in decoder:
                ft = float(Fraction(frame.pts) * tb - origin) if frame.pts is not None and tb else (position or 0.0)
                position = ft
                if ft <= t + 1e-6 or held is None:
                    held = (ft, frame)
                if ft > t + 1e-6:
                    # the held frame is the one on screen at t; it may also serve the next times
                    while i < len(wanted) and wanted[i] < ft - 1e-6:
                        out[wanted[i]] = _convert(held[1], height)
                        i += 1
                    held = (ft, frame)
                    done = True
                    break
            if not done:  # end of the stream: the last frame serves every remaining time
                if held is None:
                    break
                image = _convert(held[1], height)
                while i < len(wanted):
                    out[wanted[i]] = image
                    i += 1
    return out


def _convert(frame, height: int) -> np.ndarray:
    rotation = _rotation(frame)
    h, w = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
    new_h = max(2, int(height))
    new_w = max(2, int(round(w * new_h / max(h, 1))))
    if rotation in (90, 270):
        image = frame.to_ndarray(format="rgb24", width=new_h, height=new_w, interpolation="AREA")
    else:
        image = frame.to_ndarray(format="rgb24", width=new_w, height=new_h, interpolation="AREA")
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def to_data_uri(image: np.ndarray, quality: int = 72) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_uris(path: str, times: Sequence[float], *, height: int = 54) -> Dict[float, str]:
    """``{t: "data:image/jpeg;base64,..."}`` for each time (see :func:`frames_at`)."""
    return {t: to_data_uri(img) for t, img in frames_at(path, times, height=height).items()}


def evenly_spaced(duration: float, count: int) -> List[float]:
    """Centres of ``count`` equal slices of ``[0, duration]``."""
    return [duration * (i + 0.5) / count for i in range(count)] if duration > 0 and count > 0 else []
