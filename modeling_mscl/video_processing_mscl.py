# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Decode a video file and sample one frame per feature, by presentation time, streaming.

The grounding model reads a sequence of feature vectors whose times are given by the package's
:class:`~.processing_mscl.TimeMapping`. An image extractor (CLIP, SigLIP, ...) turns one frame into one
vector, so a video file becomes features by sampling, for every stored feature ``j``, **the frame that is
on screen at the time the mapping assigns to feature j**:

* ``t_j = (j * clip_stride + clip_size / 2) / fps`` seconds (``TimeMapping.feature_index_to_seconds`` of the
  stored, not yet downsampled, feature ``j``; for ``mad_clip``: fps 5, clip 1, stride 1, so
  ``t_j = 0.1, 0.3, 0.5, ...`` s, the centre of each 0.2 s step).
* Frame ``k`` is on screen from its presentation time ``s_k = (pts_k - start_time) * time_base`` (exact
  rational arithmetic) until the next frame's, ``[s_k, s_{k+1})``; the last frame until ``s_last + d_last``
  (its stated duration, else the previous frame interval). ``start_time`` is the video stream's start
  (the first frame's pts when the container states none), so ``t = 0`` is where a player's clock starts.
* Feature ``j`` takes the frame ``k`` with ``s_k <= t_j < s_{k+1}`` (a time before the first frame takes the
  first frame); features exist for every ``t_j`` before the end of the last frame, so a 10 s file at 5
  features/s gives 50 features. When features are denser than frames, one frame serves several features.

Sampling is by presentation time, never by frame index, so variable-frame-rate files come out right,
and nothing needs the container's frame count or duration (MKV / WebM state neither).

Decoding is **sequential and streaming** (PyAV, which bundles FFmpeg: no system binary): the decoder runs
with FFmpeg's own threads (``thread_type="AUTO"``), every frame is decoded (samples are closer together
than keyframes, and seeking per sample was measured slower), but only the frames the sampler needs are
converted to RGB, in the decoder's ``swscale`` (``frame.to_ndarray``, optionally resized there). At most one
undecoded-to-RGB frame is held, so memory does not depend on the video's length. The display-matrix
rotation of phone videos is applied (multiples of 90 degrees, as ``ffmpeg``'s autorotate does).

Duration: the video stream's stated duration (``stream.duration``, MKV's per-track ``DURATION`` tag, or the
container's duration for a file with one stream), unless it disagrees with the decoded frames by more
than ``max(0.5 s, 3 frame intervals)``: a container that states less than the frames show (or nothing)
"lies", and the end of the last decoded frame is used.

Damaged and truncated files: decoding stops at the first demuxer or decoder error, and a file whose
decoded frames end well before the duration or frame count its container states (same tolerance;
frame count: 3 frames) is truncated. Both raise :class:`VideoDecodeError` naming the file and how far
decoding got, because features of the first part of a film must never be passed off as the whole film.
``allow_partial=True`` turns this into an explicit result instead: ``result.partial`` is ``True``,
``result.partial_reason`` says why and the features cover ``[0, result.decoded_end)`` only.

``av`` is optional (``pip install mscl[video]``) and imported lazily. This file travels with checkpoints
(``trust_remote_code``), so it imports nothing from the package.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "FEATURE_FILE_EXTENSIONS",
    "SampledFrame",
    "VideoDecodeError",
    "VideoDecodeResult",
    "VideoFrameSampler",
    "VideoInfo",
    "feature_times",
    "import_av",
    "is_video_file_path",
    "probe_video",
    "read_frames_at",
    "select_frames",
]

# paths with these extensions hold feature arrays, anything else is handed to the decoder
FEATURE_FILE_EXTENSIONS = (".npy", ".pt", ".pth")
# a shortfall larger than this against the container's statement means the file is truncated
_MIN_DURATION_TOLERANCE_S = 0.5
_FRAME_INTERVAL_TOLERANCE = 3
_FRAME_COUNT_TOLERANCE = 3


class VideoDecodeError(ValueError):
    """A video file that cannot be used: missing, not a video, no frames, damaged or truncated."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path!r}: {message}")


def import_av():
    """Import PyAV, or explain how to install it."""
    # inside try/except so that transformers' remote-code import check does not require `av` for
    # checkpoints that never decode a video file
    try:
        import av
    except ImportError as exc:
        raise ImportError(
            "decoding video files needs PyAV (it bundles FFmpeg, no system binary needed): "
            "pip install 'mscl[video]'  (or: pip install av)"
        ) from exc
    return av


def is_video_file_path(video: Any) -> bool:
    """``True`` for a path that is not a feature file (``.npy`` / ``.pt``): it goes to the decoder."""
    if not isinstance(video, (str, os.PathLike)):
        return False
    return os.path.splitext(os.fspath(video))[1].lower() not in FEATURE_FILE_EXTENSIONS


# ----------------------------------------------------------------------------------------------------
# sampling times (pure functions: the tests' reference)
# ----------------------------------------------------------------------------------------------------
def _as_fraction(x: float) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def feature_time(j: int, fps: float, clip_size: float = 1.0, clip_stride: float = 1.0) -> Fraction:
    """Exact time (seconds) of stored feature ``j``: ``(j * clip_stride + clip_size / 2) / fps``."""
    return (j * _as_fraction(clip_stride) + _as_fraction(clip_size) / 2) / _as_fraction(fps)


def feature_times(num_features: int, fps: float, clip_size: float = 1.0, clip_stride: float = 1.0) -> np.ndarray:
    """``(num_features,)`` float64 times of stored features ``0 .. num_features-1`` (see the module doc)."""
    return np.array([float(feature_time(j, fps, clip_size, clip_stride)) for j in range(num_features)], dtype=np.float64)


def select_frames(
    frame_times: Sequence[float], end_time: float, fps: float, clip_size: float = 1.0, clip_stride: float = 1.0
) -> List[int]:
    """Index of the frame each feature samples, given every frame's start time and the video's end.

    ``frame_times`` must be increasing. Feature ``j`` exists while ``t_j < end_time`` and takes the last frame
    with ``frame_times[k] <= t_j`` (frame 0 for a ``t_j`` before it). The same rule as
    :class:`VideoFrameSampler`, written plainly over a list.
    """
    times = [_as_fraction(t) for t in frame_times]
    end = _as_fraction(end_time)
    out: List[int] = []
    j = 0
    while True:
        t = feature_time(j, fps, clip_size, clip_stride)
        if t >= end:
            return out
        k = 0
        for i, s in enumerate(times):
            if s <= t:
                k = i
            else:
                break
        out.append(k)
        j += 1


# ----------------------------------------------------------------------------------------------------
# probing
# ----------------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    """What the container says about a file's video stream (before decoding)."""

    path: str
    container: str
    codec: str
    width: int  # as stored
    height: int
    rotation: int  # counter-clockwise degrees the display applies (multiple of 90)
    display_width: int  # after the rotation
    display_height: int
    average_rate: Optional[float]  # frames per second, as stated (unreliable for VFR / MKV)
    stated_frames: Optional[int]  # None when the container does not say (MKV, WebM)
    stated_duration: Optional[float]  # of the video stream, seconds; None when unknown
    stated_duration_from: Optional[str]  # "stream", "track_tag" or "container"
    start_time: float  # seconds on the container clock that the video timeline starts from
    other_streams: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


_DURATION_TAG = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _parse_duration_tag(value: Any) -> Optional[float]:
    if not isinstance(value, str):
        return None
    m = _DURATION_TAG.match(value.strip())
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def _rotation_of(stream, frame=None) -> int:
    angle = None
    if frame is not None:
        angle = getattr(frame, "rotation", None)
    if angle is None:
        return 0
    # the display matrix may hold any angle; like ffmpeg's autorotate, honour the nearest multiple of 90
    return int(round(float(angle) / 90.0)) % 4 * 90


def _open(path: str, av):
    if not os.path.exists(path):
        raise VideoDecodeError(path, "video file not found")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a file")
    try:
        return av.open(path, mode="r")
    except av.FFmpegError as err:
        raise VideoDecodeError(
            path, f"cannot be opened as a video ({_ffmpeg_message(err)}); it is not a media file FFmpeg can read, or it is damaged"
        ) from None


def _ffmpeg_message(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip() or type(err).__name__


def _video_stream(container, path: str):
    if not container.streams.video:
        kinds: Dict[str, int] = {}
        for s in container.streams:
            kinds[s.type] = kinds.get(s.type, 0) + 1
        held = ", ".join(f"{n} {k} stream{'s' if n > 1 else ''}" for k, n in kinds.items()) or "no stream at all"
        raise VideoDecodeError(path, f"has no video stream (it holds {held})")
    return container.streams.video[0]


def _stream_info(container, stream, path: str, rotation: int = 0) -> VideoInfo:
    tb = stream.time_base
    stated_frames = int(stream.frames) if getattr(stream, "frames", 0) else None
    stated, stated_from = None, None
    if stream.duration is not None and tb is not None and stream.duration > 0:
        stated, stated_from = float(stream.duration * tb), "stream"
    if stated is None:
        tag = _parse_duration_tag((stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration"))
        if tag is not None and tag > 0:
            stated, stated_from = tag, "track_tag"
    if stated is None and container.duration and len(container.streams) == 1:
        stated, stated_from = container.duration / 1_000_000, "container"
    start = 0.0
    if stream.start_time is not None and tb is not None:
        start = float(stream.start_time * tb)
    rate = stream.average_rate or stream.guessed_rate
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    others: Dict[str, int] = {}
    for s in container.streams:
        if s.index != stream.index:
            others[s.type] = others.get(s.type, 0) + 1
    swap = rotation in (90, 270)
    return VideoInfo(
        path=path, container=container.format.name, codec=ctx.name, width=width, height=height, rotation=rotation,
        display_width=height if swap else width, display_height=width if swap else height,
        average_rate=float(rate) if rate else None, stated_frames=stated_frames, stated_duration=stated,
        stated_duration_from=stated_from, start_time=start, other_streams=others,
    )


def probe_video(path: str) -> VideoInfo:
    """Open ``path`` and describe its first video stream (decodes one frame to read the rotation)."""
    av = import_av()
    path = os.fspath(path)
    with _open(path, av) as container:
        stream = _video_stream(container, path)
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = _rotation_of(stream, frame)
                break
        except av.FFmpegError:
            pass
        return _stream_info(container, stream, path, rotation)


# ----------------------------------------------------------------------------------------------------
# streaming sampler
# ----------------------------------------------------------------------------------------------------
@dataclass
class SampledFrame:
    """One decoded frame and the stored features that sample it.

    ``image`` is ``(H, W, 3)`` uint8 RGB, rotated for display (and resized when the sampler was given an
    ``output_size``); ``indices`` are the feature indices ``j`` whose time falls in this frame's display
    interval; ``time`` is the frame's presentation time (s) and ``frame_number`` its position in the
    stream (0-based, counting every decoded frame).
    """

    image: np.ndarray
    indices: range
    time: float
    frame_number: int


@dataclass
class VideoDecodeResult:
    """What a full pass over the file found (available once the sampler is exhausted)."""

    frames_decoded: int
    num_features: int
    decoded_end: float  # end of the last decoded frame, seconds
    duration: float  # the video's duration used for the time mapping
    duration_source: str  # "container" or "last_frame"
    partial: bool = False
    partial_reason: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class _CallbackProgress:
    """The part of a tqdm bar the sampler uses, reporting ``(seconds decoded, stated duration)`` to a callable."""

    def __init__(self, fn: Callable[[float, Optional[float]], Any], total: Optional[float]):
        self.fn, self.total, self.n = fn, total, 0.0

    def update(self, seconds: float) -> None:
        self.n += seconds
        self.fn(self.n, self.total)

    def close(self) -> None:
        pass


class VideoFrameSampler:
    """Iterate over the frames a :class:`TimeMapping`-style sampling needs, decoding ``path`` once.

    Args:
        path: the video file (anything FFmpeg reads: mp4, mkv, webm, mov, avi, ...).
        fps, clip_size, clip_stride: the time mapping of the stored features (see the module docstring).
        output_size: ``(display_height, display_width) -> (height, width)``; when given, the decoder's
            ``swscale`` resizes the sampled frames to that size (bicubic) while converting to RGB.
            Default: RGB at the stored resolution.
        threads: decoder threads (0: FFmpeg's choice, one per core).
        allow_partial: return what decoded before damage or truncation (``result.partial``) instead of
            raising :class:`VideoDecodeError`.
        progress: show a tqdm bar over video seconds (``None``: only for files longer than 60 s when
            stderr is a terminal); or a callable ``progress(seconds_decoded, stated_duration_or_None)``,
            called about once per second of video (a GUI's progress bar: the web demo's).

    Iterating yields :class:`SampledFrame` in time order; afterwards :attr:`info` and :attr:`result`
    describe the file. A sampler can be iterated once.
    """

    def __init__(
        self,
        path: str,
        fps: float,
        clip_size: float = 1.0,
        clip_stride: float = 1.0,
        *,
        output_size: Optional[Callable[[int, int], Tuple[int, int]]] = None,
        threads: int = 0,
        allow_partial: bool = False,
        progress: Optional[Union[bool, Callable[[float, Optional[float]], Any]]] = None,
    ):
        for name, value in (("fps", fps), ("clip_size", clip_size), ("clip_stride", clip_stride)):
            if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or not math.isfinite(float(value)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.path = os.fspath(path)
        self.fps, self.clip_size, self.clip_stride = fps, clip_size, clip_stride
        self.output_size = output_size
        self.threads = int(threads)
        self.allow_partial = bool(allow_partial)
        self.progress = progress
        self.info: Optional[VideoInfo] = None
        self.result: Optional[VideoDecodeResult] = None
        self._used = False
        self._reformatter = None

    # ------------------------------------------------------------------------------------------------
    def _convert(self, frame, rotation: int) -> np.ndarray:
        kwargs: Dict[str, Any] = {"format": "rgb24", "interpolation": "BICUBIC"}
        color_range = int(getattr(frame, "color_range", 0) or 0)
        if color_range:  # full-range (JPEG) YUV from phones must not be read as limited range
            kwargs["src_color_range"] = color_range
        if self.output_size is not None:
            dh, dw = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
            h, w = self.output_size(dh, dw)
            if rotation in (90, 270):
                h, w = w, h
            if (h, w) != (frame.height, frame.width):
                kwargs.update(width=int(w), height=int(h))
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            # one reformatter for the whole file: it keeps its swscale context (a fresh one per frame, as
            # frame.to_ndarray(format=...) makes, costs more than the conversion of a small frame)
            self._reformatter = VideoReformatter()
        image = self._reformatter.reformat(frame, **kwargs).to_ndarray()
        if rotation:
            image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
        return image

    def _progress_bar(self, info: VideoInfo):
        show = self.progress
        if callable(show):
            return _CallbackProgress(show, info.stated_duration)
        if show is None:
            import sys

            long = info.stated_duration is None or info.stated_duration >= 60.0
            show = long and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        if not show:
            return None
        from tqdm import tqdm

        total = None if info.stated_duration is None else round(info.stated_duration, 1)
        return tqdm(total=total, unit="s", unit_scale=False, desc=f"decoding {os.path.basename(self.path)}",
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s video [{elapsed}<{remaining}]"
                    if total else "{desc}: {n:.0f} s video [{elapsed}]", leave=False)

    def __iter__(self) -> Iterator[SampledFrame]:
        if self._used:
            raise RuntimeError("a VideoFrameSampler can be iterated once; make a new one")
        self._used = True
        av = import_av()
        path = self.path
        with _open(path, av) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"  # frame + slice threads
            stream.codec_context.thread_count = self.threads
            info = _stream_info(container, stream, path)
            self.info = info
            origin = Fraction(stream.start_time) * stream.time_base if stream.start_time is not None else None
            bar = self._progress_bar(info)
            shown = 0.0

            next_j = 0  # first feature not yet assigned
            t_next = feature_time(0, self.fps, self.clip_size, self.clip_stride)
            held = None  # (frame, start time as Fraction, frame number)
            last_interval: Optional[Fraction] = None
            frames_decoded = 0
            rotation = 0
            error: Optional[str] = None
            try:
                packets = container.demux(stream)
                while True:
                    try:
                        packet = next(packets)
                        frames = packet.decode()
                    except StopIteration:
                        break
                    except av.FFmpegError as err:
                        error = _ffmpeg_message(err)
                        break
                    for frame in frames:
                        start = self._frame_start(frame, stream, origin, held, last_interval)
                        if origin is None:
                            origin = start
                            start = Fraction(0)
                        if start < 0:
                            start = Fraction(0)
                        if frames_decoded == 0:
                            rotation = _rotation_of(stream, frame)
                            if rotation:
                                info = _stream_info(container, stream, path, rotation)
                                self.info = info
                        frames_decoded += 1
                        if held is not None:
                            if start <= held[1]:
                                # a repeated or backwards timestamp: the later frame replaces the held one
                                held = (frame, held[1], frames_decoded - 1)
                                continue
                            last_interval = start - held[1]
                            if t_next < start:
                                out, next_j, t_next = self._emit(held, start, next_j, t_next, rotation)
                                yield out
                        held = (frame, start, frames_decoded - 1)
                        if bar is not None and float(start) - shown >= 1.0:
                            bar.update(float(start) - shown)
                            shown = float(start)
            finally:
                if bar is not None:
                    bar.close()

            if frames_decoded == 0:
                why = f" (decoding failed: {error})" if error else ""
                raise VideoDecodeError(path, f"contains no decodable video frame{why}")

            # the last frame stays on screen for its stated duration, else for the previous interval
            frame, start, _ = held
            d = None
            if frame.duration and frame.time_base is not None and frame.duration > 0:
                d = Fraction(frame.duration) * frame.time_base
            if d is None:
                d = last_interval if last_interval is not None else (
                    Fraction(1) / Fraction(info.average_rate).limit_denominator(1_000_000) if info.average_rate else Fraction(1, 25))
            end = start + d
            if t_next < end:
                out, next_j, t_next = self._emit(held, end, next_j, t_next, rotation)
                yield out

            interval = float(last_interval if last_interval is not None else d)
            tol = max(_MIN_DURATION_TOLERANCE_S, _FRAME_INTERVAL_TOLERANCE * interval)
            decoded_end = float(end)
            reasons = []
            if error is not None:
                reasons.append(f"decoding failed after {frames_decoded} frames ({decoded_end:.2f} s): {error}")
            if info.stated_frames and frames_decoded < info.stated_frames - _FRAME_COUNT_TOLERANCE:
                reasons.append(f"only {frames_decoded} of the {info.stated_frames} frames its container states could be decoded")
            if info.stated_duration is not None and decoded_end < info.stated_duration - tol:
                reasons.append(
                    f"its frames end at {decoded_end:.2f} s but its container states a duration of {info.stated_duration:.2f} s"
                )
            partial = bool(reasons)
            if partial and not self.allow_partial:
                raise VideoDecodeError(
                    path, "the file is truncated or damaged: " + "; ".join(reasons) + ". Features of the part before the "
                    "damage would be passed off as the whole video; repair the file (e.g. re-mux it with ffmpeg) or pass "
                    "allow_partial=True to use the decoded part explicitly",
                )
            if not partial and info.stated_duration is not None and abs(decoded_end - info.stated_duration) <= tol:
                duration, source = info.stated_duration, "container"
            else:
                duration, source = decoded_end, "last_frame"
            self.result = VideoDecodeResult(
                frames_decoded=frames_decoded, num_features=next_j, decoded_end=decoded_end, duration=duration,
                duration_source=source, partial=partial, partial_reason="; ".join(reasons) if partial else None,
            )

    @staticmethod
    def _frame_start(frame, stream, origin, held, last_interval) -> Fraction:
        pts = frame.pts
        tb = frame.time_base or stream.time_base
        if pts is None:
            # no timestamp (rare raw streams): one stated frame interval after the previous frame
            if held is None:
                return Fraction(0) if origin is not None else Fraction(0)
            rate = stream.average_rate or stream.guessed_rate
            step = last_interval if last_interval is not None else (Fraction(1) / Fraction(rate) if rate else Fraction(1, 25))
            return held[1] + step
        t = Fraction(pts) * tb
        return t - origin if origin is not None else t

    def _emit(self, held, until: Fraction, next_j: int, t_next: Fraction, rotation: int):
        """Assign the held frame to every feature time before ``until``."""
        frame, start, number = held
        first = next_j
        while t_next < until:
            next_j += 1
            t_next = feature_time(next_j, self.fps, self.clip_size, self.clip_stride)
        image = self._convert(frame, rotation)
        return SampledFrame(image=image, indices=range(first, next_j), time=float(start), frame_number=number), next_j, t_next


def read_frames_at(path: str, times: Sequence[float], *, threads: int = 0) -> List[np.ndarray]:
    """The frames on screen at ``times`` (seconds, any order), as display-rotated ``(H, W, 3)`` uint8 RGB.

    One sequential pass with the same rule as the sampler (frame ``k`` is shown on ``[s_k, s_{k+1})``; a time
    past the last frame gets the last frame). For thumbnails and checks, e.g. frames of predicted moments.
    """
    av = import_av()
    path = os.fspath(path)
    wanted = sorted((Fraction(float(t)), i) for i, t in enumerate(times))
    out: List[Optional[np.ndarray]] = [None] * len(wanted)
    if not wanted:
        return []
    sampler = VideoFrameSampler(path, 1.0, threads=threads)  # for its converter only
    with _open(path, av) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = int(threads)
        origin = Fraction(stream.start_time) * stream.time_base if stream.start_time is not None else None
        held, rotation, pos = None, 0, 0
        for frame in container.decode(stream):
            start = Fraction(frame.pts if frame.pts is not None else 0) * (frame.time_base or stream.time_base)
            if origin is None:
                origin = start
            start -= origin
            if held is None:
                rotation = _rotation_of(stream, frame)
            else:
                image = None
                while pos < len(wanted) and wanted[pos][0] < start:
                    if image is None:
                        image = sampler._convert(held, rotation)
                    out[wanted[pos][1]] = image
                    pos += 1
            held = frame
            if pos == len(wanted):
                break
        if held is None:
            raise VideoDecodeError(path, "contains no decodable video frame")
        if pos < len(wanted):
            image = sampler._convert(held, rotation)
            for _, i in wanted[pos:]:
                out[i] = image
    return out  # type: ignore[return-value]
