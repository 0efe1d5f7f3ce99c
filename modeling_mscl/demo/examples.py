# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Example videos of the demo: short synthetic clips rendered with PyAV on first use.

Nothing binary is shipped: each clip is drawn from a seeded description (coloured shapes moving over a
plain background, with the sentences that describe its events and the times they happen) and written
once, as H.264 MP4 (``yuv420p``, ``+faststart``: every browser plays it), into a cache folder:
``$MSCL_DEMO_EXAMPLES``, else ``<HF_HOME>/mscl/demo_examples``. A clip is written to a temporary file and
renamed into place, so a killed run never leaves a half-written example; later runs reuse the files.

This module is copied into the Space folder with the rest of the demo, so it imports only third-party
packages (``numpy``, ``av``) and its siblings.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["EXAMPLES", "EXAMPLES_ENV", "ExampleVideo", "default_examples_dir", "ensure_example_videos", "render_frame"]

EXAMPLES_ENV = "MSCL_DEMO_EXAMPLES"
# bump when a clip's drawing changes: files of older versions are not reused
EXAMPLES_VERSION = 1

Color = Tuple[int, int, int]


@dataclass(frozen=True)
class Shape:
    """A shape visible during ``[start, end)`` seconds, moving linearly from ``xy0`` to ``xy1`` (fractions of
    the frame) while its size goes from ``size0`` to ``size1`` (fraction of the frame height)."""

    kind: str  # "circle" or "square"
    color: Color
    start: float
    end: float
    xy0: Tuple[float, float]
    xy1: Tuple[float, float]
    size0: float = 0.18
    size1: Optional[float] = None

    def at(self, t: float) -> Optional[Tuple[float, float, float]]:
        if not self.start <= t < self.end:
            return None
        a = (t - self.start) / max(self.end - self.start, 1e-9)
        x = self.xy0[0] + a * (self.xy1[0] - self.xy0[0])
        y = self.xy0[1] + a * (self.xy1[1] - self.xy0[1])
        s1 = self.size0 if self.size1 is None else self.size1
        return x, y, self.size0 + a * (s1 - self.size0)


@dataclass(frozen=True)
class ExampleVideo:
    """One example clip: its file name, length, drawing, and the sentences that describe it."""

    name: str
    duration: float
    sentences: Tuple[str, ...]
    shapes: Tuple[Shape, ...]
    background: Color = (236, 238, 242)
    fps: int = 25
    size: Tuple[int, int] = (180, 320)  # (height, width)
    events: Tuple[Tuple[str, float, float], ...] = field(default=())  # (sentence, start, end) as drawn
    note: str = ""

    @property
    def file_name(self) -> str:
        return f"{self.name}.mp4"


RED, BLUE, GREEN, ORANGE, PURPLE = (220, 50, 47), (38, 110, 210), (40, 160, 80), (240, 150, 20), (140, 70, 170)

EXAMPLES: Tuple[ExampleVideo, ...] = (
    ExampleVideo(
        name="shapes",
        duration=16.0,
        sentences=("a red circle moves from left to right", "a blue square appears and grows"),
        shapes=(
            Shape("circle", RED, 2.0, 7.0, (0.1, 0.5), (0.9, 0.5)),
            Shape("square", BLUE, 9.0, 14.0, (0.5, 0.5), (0.5, 0.5), size0=0.1, size1=0.6),
        ),
        events=(("a red circle moves from left to right", 2.0, 7.0), ("a blue square appears and grows", 9.0, 14.0)),
    ),
    ExampleVideo(
        name="crossing",
        duration=24.0,
        sentences=("a green square falls down", "an orange circle crosses to the left", "a purple circle bounces"),
        shapes=(
            Shape("square", GREEN, 1.0, 6.0, (0.3, 0.1), (0.3, 0.9)),
            Shape("circle", ORANGE, 8.0, 15.0, (0.9, 0.35), (0.1, 0.35)),
            Shape("circle", PURPLE, 16.0, 19.0, (0.6, 0.85), (0.6, 0.25)),
            Shape("circle", PURPLE, 19.0, 22.0, (0.6, 0.25), (0.6, 0.85)),
        ),
        events=(("a green square falls down", 1.0, 6.0), ("an orange circle crosses to the left", 8.0, 15.0),
                ("a purple circle bounces", 16.0, 22.0)),
    ),
    ExampleVideo(
        name="long_scene",
        duration=180.0,
        fps=10,
        size=(90, 160),
        sentences=("a red circle moves from left to right", "a blue square grows"),
        shapes=(
            Shape("circle", RED, 30.0, 55.0, (0.1, 0.5), (0.9, 0.5)),
            Shape("square", BLUE, 120.0, 150.0, (0.5, 0.5), (0.5, 0.5), size0=0.1, size1=0.7),
        ),
        events=(("a red circle moves from left to right", 30.0, 55.0), ("a blue square grows", 120.0, 150.0)),
        note="three minutes: shows the extraction progress",
    ),
)


def default_examples_dir() -> str:
    """``$MSCL_DEMO_EXAMPLES``, else ``<HF_HOME>/mscl/demo_examples``."""
    explicit = os.environ.get(EXAMPLES_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        try:
            from huggingface_hub import constants

            home = constants.HF_HOME
        except Exception:  # pragma: no cover - huggingface_hub comes with transformers
            home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return os.path.join(os.path.expanduser(home), "mscl", "demo_examples")


def render_frame(example: ExampleVideo, t: float) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 frame of ``example`` at ``t`` seconds (a pure function of both)."""
    h, w = example.size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = example.background
    # a faint clock bar at the bottom: how far into the clip we are (helps to see a seek land)
    bar = max(2, h // 45)
    img[h - bar:, : int(round(w * t / example.duration))] = (160, 164, 172)
    yy, xx = np.mgrid[0:h, 0:w]
    for shape in example.shapes:
        state = shape.at(t)
        if state is None:
            continue
        cx, cy, size = state[0] * w, state[1] * h, state[2] * h
        if shape.kind == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (size / 2) ** 2
        else:
            mask = (np.abs(xx - cx) <= size / 2) & (np.abs(yy - cy) <= size / 2)
        img[mask] = shape.color
    return img


def _write(example: ExampleVideo, path: str, frame_fn: Callable[[ExampleVideo, float], np.ndarray] = render_frame) -> None:
    import av

    h, w = example.size
    with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=example.fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(2 * example.fps)}
        for k in range(int(round(example.duration * example.fps))):
            frame = av.VideoFrame.from_ndarray(frame_fn(example, k / example.fps), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def ensure_example_videos(
    folder: Optional[str] = None, examples: Sequence[ExampleVideo] = EXAMPLES
) -> List[Tuple[ExampleVideo, str]]:
    """Write the example clips that are not in ``folder`` yet; returns ``(example, path)`` pairs.

    Existing files are reused (a second call writes nothing). Raises ``ImportError`` with an install
    hint when PyAV is missing.
    """
    if importlib.util.find_spec("av") is None:
        raise ImportError("the demo's example videos are written with PyAV: pip install 'mscl[demo]' (or: pip install av)")
    root = os.path.join(os.path.abspath(folder or default_examples_dir()), f"v{EXAMPLES_VERSION}")
    os.makedirs(root, exist_ok=True)
    out = []
    for example in examples:
        path = os.path.join(root, example.file_name)
        if not os.path.isfile(path):
            fd, tmp = tempfile.mkstemp(prefix=f".{example.name}.", suffix=".mp4", dir=root)
            os.close(fd)
            try:
                _write(example, tmp)
                os.chmod(tmp, 0o644)  # mkstemp makes it private; the web server (and other users) read it
                os.replace(tmp, path)  # atomic: other processes see no file or the whole clip
            except BaseException:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
                raise
        out.append((example, path))
    return out


def example_index(examples: Sequence[ExampleVideo] = EXAMPLES) -> Dict[str, ExampleVideo]:
    return {e.file_name: e for e in examples}
