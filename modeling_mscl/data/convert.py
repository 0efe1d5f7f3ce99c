# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Convert public temporal-grounding annotations + feature files into the mscl parquet format.

Command line::

    python -m modeling_mscl.data.convert --format tacos-2dtan --annotations tacos/train.json \\
        --video-features feats/c3d/ --preset tacos_c3d --output data/tacos --split train

Formats (``--format``):

=================  ===========================================================================================
``snag``           SnAG video-centric JSON ``{split: {vid: {fps, num_frames, [duration], annotations:
                   [{segment: [s, e], sentence, [sentence_id]}]}}}``; ``--source-split`` picks the top-level
                   key (default: ``--split``). fps per video from the file.
``charades-sta``   ``VID START END##sentence`` lines (seconds); durations from the ``length`` column of
                   ``Charades_v1_{train,test}.csv`` (``--durations``, default: both CSVs next to the txt).
``tacos-2dtan``    2D-TAN JSON ``{"sXX-dYY.avi": {timestamps (frames), sentences, fps, num_frames}}``:
                   seconds = frame / fps, duration = num_frames / fps, the video's fps from the file.
                   Video ids drop the ``.avi``; features are looked up as ``sXX-dYY`` then ``sXX-dYY.avi``.
``activitynet``    ActivityNet Captions ``{v_id: {duration, timestamps (s), sentences}}``; features are
                   looked up as ``v_id`` then ``id``.
``qvhighlights``   Moment-DETR jsonl (``qid``, ``query``, ``vid``, ``duration``, ``relevant_windows``). A query
                   with several windows becomes one query per window, ``query_id = "{qid}_{k}"`` (k = window
                   index); text feature files are looked up as ``{qid}_{k}`` then ``{qid}``.
``mad``            MAD JSON ``{query_id: {movie, movie_duration, ext_timestamps, sentence}}`` grouped by movie;
                   video features from an HDF5 file keyed by movie, text from an HDF5 file keyed by query id
                   (or folders of per-file features).
``ego4d-nlq``      Ego4D NLQ JSON (``videos -> clips -> annotations -> language_queries``). **One row per
                   clip** (``video_id = clip_uid``); times are clip-relative (``clip_start_sec``,
                   ``clip_end_sec`` of each query), ``duration = clip_end_sec - clip_start_sec`` of the clip.
                   Features: a per-clip file ``<clip_uid>`` if present (the SnAG / VSLNet setup), otherwise the
                   video-level file ``<video_uid>`` sliced to the clip: feature indices
                   ``floor(video_start_sec * fps / clip_stride)`` to ``ceil(video_end_sec * fps / clip_stride)``
                   (exclusive; clamped to the available features). ``query_id =
                   "{annotation_uid}_{k}"`` (``{clip_uid}_{a}_{k}`` without an annotation uid).
=================  ===========================================================================================

Features: ``--video-features`` is a folder of ``<key>.npy`` / ``<key>.pt`` files (several folders are
concatenated along channels, SnAG-style: a length difference of 1 is padded by repeating the last
vector, more is an error) or an ``.h5``/``.hdf5`` file keyed by video. ``.npy`` is read with
``allow_pickle=False`` and ``.pt`` with ``torch.load(weights_only=True)``; nothing is unpickled, and a
pickled file is an error that says so. Text: ``--text-features`` (folder of ``<query_id>.npy/.pt``
token features, or HDF5), none (sentences kept and embedded later), or, from Python, a
``text_encoder(list_of_sentences) -> list of (L, Dt) arrays`` hook.

Time mapping: ``--fps --clip-size --clip-stride --downsample-rate``, defaulting to ``--preset``
(``MSCLConfig.from_preset``); per-video fps in the file (SnAG JSON, TACoS) wins over both.

Anomaly policy (every case is counted and printed in the summary; none is silent)
----------------------------------------------------------------------------------
* ``--policy clip`` (default, SnAG's): start < 0 → 0 and end > duration → duration (counted as
  ``clipped_start`` / ``clipped_end``), then a segment with end <= start is dropped. Inverted segments
  (end < start in the file) are dropped as ``dropped_inverted``, zero-length ones (end == start) as
  ``dropped_zero_length``, segments that become empty only through clipping (entirely outside the
  video) as ``dropped_outside_video``; non-finite times as ``dropped_nonfinite_time``.
* ``--policy drop``: any segment not inside ``[0, duration]`` is dropped (``dropped_out_of_range``).
* Either policy: a start or end outside the video by at most 1e-6 s is float noise from the file
  (ANet: end 70.29 vs duration 70.28999999999999); it is clipped and counted as
  ``clipped_float_noise`` rather than as an anomaly.
* Counting order: non-finite, then inverted, then zero-length, then out-of-range; a segment is
  counted once, under the first rule it meets (Charades-STA train has 3 inverted segments whose end
  is also past the video: they count as ``dropped_inverted``, not ``clipped_end``).
* Empty sentence with no text features: query dropped (``dropped_empty_sentence``).
* Missing text-feature file (with ``--text-features``): query dropped (``dropped_missing_text_features``).
* A video left with no queries is dropped (``videos_dropped_no_queries``).
* Missing video-feature file: video dropped (``videos_dropped_missing_features``), or an error with
  ``--strict``. The first missing ids are listed in the summary.
* Feature count vs the count expected from the duration,
  ``(duration * fps - clip_size) / clip_stride + 1``: a difference above ``max(2, 10 %)`` is only
  counted (``videos_feature_length_mismatch``); features are stored as they are.
* Wrong feature dim, NaN/inf, a non-2-D array or a pickled file: ``ValueError`` naming the file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .schema import DEFAULT_MAX_SHARD_BYTES, GroundingDatasetWriter, plan_num_shards

FORMATS = ("snag", "charades-sta", "tacos-2dtan", "activitynet", "qvhighlights", "mad", "ego4d-nlq")
POLICIES = ("clip", "drop")
_MAX_LISTED = 20
# Seconds by which a segment may poke outside the video before it counts as an anomaly.
_NOISE = 1e-6

TextEncoder = Callable[[List[str]], Sequence[Any]]


# ----------------------------------------------------------------------------------------------------
# Parsed annotations
# ----------------------------------------------------------------------------------------------------
@dataclass
class QueryRecord:
    """One query of a video as read from the annotation file (seconds, not yet checked)."""

    query_id: str
    sentence: str
    start: float
    end: float
    text_keys: Tuple[str, ...] = ()  # keys tried, in order, in the text-feature source (default: query_id)


@dataclass
class VideoRecord:
    """One video as read from the annotation file.

    ``feature_keys`` are tried in order in the video-feature source; each is ``(key, window)`` where
    ``window`` is ``None`` (use the whole array) or ``(start_s, end_s)`` to slice a longer array
    (Ego4D clips cut from video-level features).
    """

    video_id: str
    duration: float
    queries: List[QueryRecord] = field(default_factory=list)
    fps: Optional[float] = None  # per-video fps from the file (SnAG JSON, TACoS); else the CLI/preset fps
    feature_keys: Tuple[Tuple[str, Optional[Tuple[float, float]]], ...] = ()

    def keys(self) -> Tuple[Tuple[str, Optional[Tuple[float, float]]], ...]:
        return self.feature_keys or ((self.video_id, None),)


@dataclass
class ParsedAnnotations:
    videos: List[VideoRecord]
    counts: Dict[str, int] = field(default_factory=dict)  # format-specific facts (e.g. multi-window queries)


# ----------------------------------------------------------------------------------------------------
# Parsers
# ----------------------------------------------------------------------------------------------------
def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def parse_snag(path: str, source_split: Optional[str] = None) -> ParsedAnnotations:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{split: {{video_id: entry}}}}")
    if source_split is None:
        if len(data) != 1:
            raise ValueError(f"{path}: several splits ({', '.join(data)}); pass --source-split")
        source_split = next(iter(data))
    if source_split not in data:
        raise ValueError(f"{path}: no split {source_split!r}; the file has {', '.join(data)}")
    videos = []
    for vid, entry in data[source_split].items():
        try:
            fps = float(entry["fps"])
            duration = float(entry["duration"]) if entry.get("duration") is not None else float(entry["num_frames"]) / fps
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: video {vid!r} needs fps and num_frames or duration ({err})") from None
        queries = []
        for k, ann in enumerate(entry.get("annotations") or []):
            seg = ann.get("segment") or [float("nan"), float("nan")]
            qid = ann.get("sentence_id") or f"{vid}_{k:04d}"
            queries.append(QueryRecord(str(qid), ann.get("sentence") or "", _float(seg[0]), _float(seg[1])))
        videos.append(VideoRecord(str(vid), duration, queries, fps=fps))
    return ParsedAnnotations(videos)


def _charades_durations(paths: Sequence[str]) -> Dict[str, float]:
    durations: Dict[str, float] = {}
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "id" not in reader.fieldnames or "length" not in reader.fieldnames:
                raise ValueError(f"{path}: expected a Charades CSV with 'id' and 'length' columns")
            for row in reader:
                durations[row["id"]] = float(row["length"])
    return durations


def parse_charades_sta(path: str, durations: Optional[Sequence[str]] = None) -> ParsedAnnotations:
    if not durations:
        folder = os.path.dirname(os.path.abspath(path))
        durations = [os.path.join(folder, n) for n in ("Charades_v1_train.csv", "Charades_v1_test.csv")
                     if os.path.isfile(os.path.join(folder, n))]
        if not durations:
            raise ValueError(f"{path}: Charades-STA needs video durations; pass --durations Charades_v1_*.csv")
    lengths = _charades_durations(durations)
    videos: "OrderedDict[str, VideoRecord]" = OrderedDict()
    counts = {"videos_dropped_unknown_duration": 0}
    missing = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'VIDEO START END##sentence', got {line[:80]!r}")
            vid, s, e = parts
            if vid not in lengths:
                missing.add(vid)
                continue
            rec = videos.setdefault(vid, VideoRecord(vid, lengths[vid]))
            rec.queries.append(QueryRecord(f"{vid}_{len(rec.queries):04d}", sentence.strip(), _float(s), _float(e)))
    counts["videos_dropped_unknown_duration"] = len(missing)
    return ParsedAnnotations(list(videos.values()), counts)


def parse_tacos_2dtan(path: str) -> ParsedAnnotations:
    data = _load_json(path)
    videos = []
    for key, entry in data.items():
        fps = float(entry["fps"])
        vid = key[:-4] if key.endswith(".avi") else key
        stamps, sentences = entry["timestamps"], entry["sentences"]
        if len(stamps) != len(sentences):
            raise ValueError(f"{path}: video {key!r} has {len(stamps)} timestamps but {len(sentences)} sentences")
        queries = [
            QueryRecord(f"{vid}_{k:04d}", (sent or "").strip(), _float(ts[0]) / fps, _float(ts[1]) / fps)
            for k, (ts, sent) in enumerate(zip(stamps, sentences))
        ]
        videos.append(VideoRecord(vid, float(entry["num_frames"]) / fps, queries, fps=fps, feature_keys=((vid, None), (key, None))))
    return ParsedAnnotations(videos)


def parse_activitynet(path: str) -> ParsedAnnotations:
    data = _load_json(path)
    videos = []
    for vid, entry in data.items():
        stamps, sentences = entry["timestamps"], entry["sentences"]
        if len(stamps) != len(sentences):
            raise ValueError(f"{path}: video {vid!r} has {len(stamps)} timestamps but {len(sentences)} sentences")
        queries = [
            QueryRecord(f"{vid}_{k:04d}", (sent or "").strip(), _float(ts[0]), _float(ts[1]))
            for k, (ts, sent) in enumerate(zip(stamps, sentences))
        ]
        keys = ((vid, None),) + (((vid[2:], None),) if vid.startswith("v_") else ())
        videos.append(VideoRecord(vid, float(entry["duration"]), queries, feature_keys=keys))
    return ParsedAnnotations(videos)


def parse_qvhighlights(path: str) -> ParsedAnnotations:
    videos: "OrderedDict[str, VideoRecord]" = OrderedDict()
    counts = {"source_queries": 0, "source_queries_multi_window": 0}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            try:
                qid, vid, windows = item["qid"], item["vid"], item["relevant_windows"]
            except KeyError as err:
                raise ValueError(f"{path}:{lineno}: missing field {err} (test splits have no windows)") from None
            counts["source_queries"] += 1
            counts["source_queries_multi_window"] += int(len(windows) > 1)
            rec = videos.setdefault(vid, VideoRecord(vid, float(item["duration"])))
            for k, (s, e) in enumerate(windows):
                rec.queries.append(QueryRecord(f"{qid}_{k}", (item.get("query") or "").strip(), _float(s), _float(e),
                                               text_keys=(f"{qid}_{k}", str(qid))))
    return ParsedAnnotations(list(videos.values()), counts)


def parse_mad(path: str) -> ParsedAnnotations:
    data = _load_json(path)
    videos: "OrderedDict[str, VideoRecord]" = OrderedDict()
    for qid, entry in data.items():
        movie = str(entry["movie"])
        rec = videos.setdefault(movie, VideoRecord(movie, float(entry["movie_duration"])))
        s, e = entry["ext_timestamps"]
        rec.queries.append(QueryRecord(str(qid), (entry.get("sentence") or "").strip(), _float(s), _float(e)))
    return ParsedAnnotations(list(videos.values()))


def parse_ego4d_nlq(path: str) -> ParsedAnnotations:
    data = _load_json(path)
    if not isinstance(data, dict) or "videos" not in data:
        raise ValueError(f"{path}: expected the Ego4D NLQ JSON with a top-level 'videos' list")
    videos = []
    counts = {"ego4d_clips_without_queries": 0}
    for video in data["videos"]:
        video_uid = video["video_uid"]
        for clip in video.get("clips", []):
            clip_uid = clip["clip_uid"]
            duration = float(clip["clip_end_sec"]) - float(clip["clip_start_sec"])
            window = (float(clip["video_start_sec"]), float(clip["video_end_sec"])) if "video_start_sec" in clip else None
            queries = []
            for a, ann in enumerate(clip.get("annotations", [])):
                prefix = ann.get("annotation_uid") or f"{clip_uid}_{a}"
                for k, q in enumerate(ann.get("language_queries", [])):
                    queries.append(QueryRecord(f"{prefix}_{k}", (q.get("query") or "").strip(),
                                               _float(q.get("clip_start_sec")), _float(q.get("clip_end_sec"))))
            if not queries:
                counts["ego4d_clips_without_queries"] += 1
            keys: Tuple[Tuple[str, Optional[Tuple[float, float]]], ...] = ((clip_uid, None),)
            if window is not None:
                keys += ((video_uid, window),)
            videos.append(VideoRecord(clip_uid, duration, queries, feature_keys=keys))
    return ParsedAnnotations(videos, counts)


def read_annotations(format: str, path: str, *, source_split: Optional[str] = None,
                     durations: Optional[Sequence[str]] = None) -> ParsedAnnotations:
    """Parse an annotation file of ``format`` into :class:`VideoRecord` objects (nothing dropped yet)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise ValueError(f"annotation file not found: {path}")
    if format == "snag":
        return parse_snag(path, source_split)
    if format == "charades-sta":
        return parse_charades_sta(path, durations)
    if format == "tacos-2dtan":
        return parse_tacos_2dtan(path)
    if format == "activitynet":
        return parse_activitynet(path)
    if format == "qvhighlights":
        return parse_qvhighlights(path)
    if format == "mad":
        return parse_mad(path)
    return parse_ego4d_nlq(path)


# ----------------------------------------------------------------------------------------------------
# Feature sources
# ----------------------------------------------------------------------------------------------------
class FeatureSource:
    """Where features come from. ``get(key)`` returns a 2-D array or ``None`` when ``key`` is absent."""

    def get(self, key: str) -> Optional[np.ndarray]:
        raise NotImplementedError

    def shape(self, key: str) -> Optional[Tuple[int, ...]]:
        """The array's shape without loading it, or ``None`` if unknown/absent (used to plan shards)."""
        return None

    def describe(self, key: str) -> str:
        return key


def _load_feature_file(path: str) -> np.ndarray:
    """A ``.npy`` / ``.pt`` / ``.npz`` feature file as a numpy array; never unpickles anything."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            if "pickle" in str(err).lower():
                raise ValueError(f"{path}: holds a pickled object array; only plain numeric .npy arrays are read "
                                 "(nothing is unpickled)") from None
            raise ValueError(f"{path}: unreadable .npy file ({err})") from None
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise ValueError(f"{path}: .npz must hold exactly one array, has {z.files}")
                return z[z.files[0]]
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    if ext in (".pt", ".pth"):
        import pickle

        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as err:
            raise ValueError(
                f"{path}: not a plain tensor file; .pt features are read with torch.load(weights_only=True), which "
                f"refuses pickled Python objects (nothing is unpickled). Save a tensor with torch.save(tensor). ({type(err).__name__})"
            ) from None
        if isinstance(obj, dict):
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            for name in ("features", "feats", "feature"):
                if isinstance(obj.get(name), torch.Tensor):
                    tensors = [obj[name]]
            if len(tensors) != 1:
                raise ValueError(f"{path}: a dict of tensors must hold exactly one tensor (or a 'features' entry)")
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"{path}: expected a tensor, got {type(obj).__name__}")
        return obj.detach().cpu().float().numpy()
    raise ValueError(f"{path}: unsupported feature file type {ext!r} (use .npy, .npz or .pt)")


class FeatureDirectory(FeatureSource):
    """``<dir>/<key>.{npy,pt,pth,npz}``; several folders are concatenated along channels (SnAG)."""

    EXTENSIONS = (".npy", ".pt", ".pth", ".npz")

    def __init__(self, dirs: Union[str, Sequence[str]]):
        self.dirs = [dirs] if isinstance(dirs, (str, os.PathLike)) else list(dirs)
        for d in self.dirs:
            if not os.path.isdir(d):
                raise ValueError(f"feature folder not found: {d}")

    def _path(self, folder: str, key: str) -> Optional[str]:
        for ext in self.EXTENSIONS:
            p = os.path.join(folder, key + ext)
            if os.path.isfile(p):
                return p
        return None

    def describe(self, key: str) -> str:
        paths = [self._path(d, key) or os.path.join(d, key + ".npy") for d in self.dirs]
        return " + ".join(paths)

    def shape(self, key: str) -> Optional[Tuple[int, ...]]:
        total = 0
        length = None
        for d in self.dirs:
            p = self._path(d, key)
            if p is None or not p.endswith(".npy"):
                return None
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except ValueError:
                return None
            if arr.ndim != 2:
                return None
            length = arr.shape[0] if length is None else max(length, arr.shape[0])
            total += arr.shape[1]
        return (length, total)

    def get(self, key: str) -> Optional[np.ndarray]:
        paths = [self._path(d, key) for d in self.dirs]
        if any(p is None for p in paths):
            return None
        arrays = []
        for p in paths:
            arr = _load_feature_file(p)
            if arr.ndim != 2:
                raise ValueError(f"{p}: video features must be a 2-D (T, D) array, got shape {arr.shape}")
            arrays.append(arr)
        if len(arrays) == 1:
            return arrays[0]
        length = max(a.shape[0] for a in arrays)
        for p, a in zip(paths, arrays):
            if length - a.shape[0] > 1:
                raise ValueError(f"{p}: {a.shape[0]} time steps, but another stream has {length} (only a difference of 1 is padded)")
        # SnAG pads a stream that is one step short by repeating its last vector.
        arrays = [a if a.shape[0] == length else np.concatenate([a, a[-1:]], axis=0) for a in arrays]
        return np.concatenate(arrays, axis=1)


class HDF5Features(FeatureSource):
    """An HDF5 file with one dataset per key (MAD: ``CLIP_L14_frames_features_5fps.h5``)."""

    def __init__(self, path: str):
        try:
            import h5py
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError("reading HDF5 features needs h5py (pip install 'mscl[hdf5]')") from err
        if not os.path.isfile(path):
            raise ValueError(f"HDF5 feature file not found: {path}")
        self.path = path
        self._file = h5py.File(path, "r")

    def describe(self, key: str) -> str:
        return f"{self.path}[{key}]"

    def shape(self, key: str) -> Optional[Tuple[int, ...]]:
        return tuple(self._file[key].shape) if key in self._file else None

    def get(self, key: str) -> Optional[np.ndarray]:
        if key not in self._file:
            return None
        return np.asarray(self._file[key][()])

    def close(self) -> None:
        self._file.close()


class ArrayFeatures(FeatureSource):
    """In-memory features: a mapping key -> array, or a callable ``key -> array or None`` (tests, custom loaders)."""

    def __init__(self, arrays: Union[Mapping[str, Any], Callable[[str], Any]],
                 shapes: Optional[Callable[[str], Optional[Tuple[int, ...]]]] = None):
        self._arrays = arrays
        self._shapes = shapes

    def get(self, key: str) -> Optional[np.ndarray]:
        if callable(self._arrays):
            value = self._arrays(key)
        else:
            value = self._arrays.get(key)
        if value is None:
            return None
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        return np.asarray(value)

    def shape(self, key: str) -> Optional[Tuple[int, ...]]:
        if self._shapes is not None:
            return self._shapes(key)
        if not callable(self._arrays) and key in self._arrays:
            return tuple(np.shape(self._arrays[key]))
        return None


def open_feature_source(spec: Union[None, str, Sequence[str], FeatureSource, Mapping[str, Any]]) -> Optional[FeatureSource]:
    """A :class:`FeatureSource` from a folder, several folders, an ``.h5`` file, a mapping, or a source."""
    if spec is None or isinstance(spec, FeatureSource):
        return spec
    if isinstance(spec, Mapping) or callable(spec):
        return ArrayFeatures(spec)
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if len(specs) == 1 and os.path.splitext(str(specs[0]))[1].lower() in (".h5", ".hdf5"):
        return HDF5Features(str(specs[0]))
    return FeatureDirectory([str(s) for s in specs])


# ----------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------
_SUMMARY_ORDER = (
    "videos_in", "annotations_in", "clipped_start", "clipped_end", "clipped_float_noise", "dropped_inverted", "dropped_zero_length",
    "dropped_outside_video", "dropped_out_of_range", "dropped_nonfinite_time", "dropped_empty_sentence",
    "dropped_missing_text_features", "videos_dropped_no_queries", "videos_dropped_missing_features",
    "queries_dropped_with_videos", "videos_feature_length_mismatch", "videos_out", "queries_out",
)


@dataclass
class ConversionSummary:
    """Counts of everything the converter did; ``counts`` keys are documented in the module docstring."""

    format: str
    split: str
    policy: str
    counts: Dict[str, int] = field(default_factory=dict)
    examples: Dict[str, List[str]] = field(default_factory=dict)  # a few ids per anomaly
    output: Optional[str] = None
    video_dim: Optional[int] = None
    text_dim: Optional[int] = None
    num_shards: Optional[int] = None

    def add(self, key: str, n: int = 1, example: Optional[str] = None) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        if example is not None:
            lst = self.examples.setdefault(key, [])
            if len(lst) < _MAX_LISTED:
                lst.append(example)

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": self.format, "split": self.split, "policy": self.policy, "output": self.output,
            "video_dim": self.video_dim, "text_dim": self.text_dim, "num_shards": self.num_shards,
            "counts": dict(self.counts), "examples": {k: list(v) for k, v in self.examples.items()},
        }

    def format_table(self) -> str:
        keys = [k for k in _SUMMARY_ORDER if k in self.counts] + sorted(k for k in self.counts if k not in _SUMMARY_ORDER)
        width = max(len(k) for k in keys) if keys else 10
        lines = [f"Conversion summary: format={self.format} split={self.split} policy={self.policy}"]
        if self.output:
            lines.append(f"  output: {self.output} ({self.num_shards} shard(s), video_dim={self.video_dim}, text_dim={self.text_dim})")
        for k in keys:
            line = f"  {k:<{width}}  {self.counts[k]:>9,d}"
            if self.examples.get(k) and self.counts[k]:
                shown = ", ".join(self.examples[k][:5])
                more = " ..." if self.counts[k] > 5 else ""
                line += f"   e.g. {shown}{more}"
            lines.append(line)
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------
def expected_num_features(duration: float, fps: float, clip_size: float, clip_stride: float) -> int:
    """Stored feature count a clip extractor gives for ``duration`` seconds (clips fully inside the video)."""
    return max(1, int(math.floor((duration * fps - clip_size) / clip_stride)) + 1)


def _check_segments(video: VideoRecord, policy: str, summary: ConversionSummary) -> List[QueryRecord]:
    kept = []
    dur = video.duration
    for q in video.queries:
        s, e = q.start, q.end
        tag = f"{q.query_id} ({s:g}, {e:g})"
        if not (math.isfinite(s) and math.isfinite(e)):
            summary.add("dropped_nonfinite_time", example=tag)
            continue
        if e < s:
            summary.add("dropped_inverted", example=tag)
            continue
        if e == s:
            summary.add("dropped_zero_length", example=tag)
            continue
        # Float noise (e.g. ANet's end 70.29 vs duration 70.28999999999999) is clipped under either
        # policy and counted apart, so the real anomalies stay visible in the summary.
        if -_NOISE <= s < 0:
            summary.add("clipped_float_noise", example=tag)
            s = 0.0
        if dur < e <= dur + _NOISE:
            summary.add("clipped_float_noise", example=f"{tag} > {dur!r}")
            e = dur
        if policy == "drop":
            if s < 0 or e > dur:
                summary.add("dropped_out_of_range", example=f"{tag} > {dur:g}" if e > dur else tag)
                continue
        else:
            if s < 0:
                summary.add("clipped_start", example=tag)
                s = 0.0
            if e > dur:
                summary.add("clipped_end", example=f"{tag} > {dur:g}")
                e = dur
        if e <= s:
            summary.add("dropped_outside_video", example=f"{tag} vs duration {dur:g}")
            continue
        kept.append(QueryRecord(q.query_id, q.sentence, float(s), float(e), q.text_keys))
    return kept


def _as_text_array(value: Any, where: str, text_dim: Optional[int]) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 1:
        raise ValueError(f"{where}: text features must be token-level (L, D), got a vector of shape {arr.shape}")
    if arr.ndim != 2:
        raise ValueError(f"{where}: text features must be a 2-D (L, D) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: text features have no tokens")
    if text_dim is not None and arr.shape[1] != text_dim:
        raise ValueError(f"{where}: text feature dim is {arr.shape[1]}, expected {text_dim}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: text features contain NaN/inf values")
    return arr


def _slice_window(arr: np.ndarray, window: Tuple[float, float], fps: float, clip_stride: float) -> np.ndarray:
    lo = max(0, int(math.floor(window[0] * fps / clip_stride)))
    hi = min(arr.shape[0], int(math.ceil(window[1] * fps / clip_stride)))
    return arr[lo:hi]


def convert(
    format: str,
    annotations: Union[str, ParsedAnnotations],
    video_features: Union[str, Sequence[str], FeatureSource, Mapping[str, Any]],
    output: str,
    split: str,
    *,
    text_features: Union[None, str, Sequence[str], FeatureSource, Mapping[str, Any]] = None,
    text_encoder: Optional[TextEncoder] = None,
    fps: Optional[float] = None,
    clip_size: Optional[float] = None,
    clip_stride: Optional[float] = None,
    downsample_rate: Optional[int] = None,
    preset: Optional[str] = None,
    video_dim: Optional[int] = None,
    text_dim: Optional[int] = None,
    policy: str = "clip",
    strict: bool = False,
    source_split: Optional[str] = None,
    durations: Optional[Sequence[str]] = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    min_shards: int = 1,
    num_shards: Optional[int] = None,
    compression: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    limit: Optional[int] = None,
) -> ConversionSummary:
    """Convert one annotation file + features into split ``split`` of the dataset folder ``output``.

    ``annotations`` is a path (parsed per ``format``) or an already parsed :class:`ParsedAnnotations`.
    ``video_features`` / ``text_features`` accept a folder (or list of folders), an HDF5 file, a
    mapping ``key -> array``, a callable ``key -> array | None`` or a :class:`FeatureSource`.
    ``text_encoder`` (exclusive with ``text_features``) maps a list of sentences to token features.
    Time-mapping values default to ``preset``; per-video fps in the file wins. ``limit`` converts only
    the first ``limit`` videos (smoke tests). Returns the :class:`ConversionSummary` (also stored in
    ``mscl_dataset.json``). See the module docstring for the anomaly policy.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose 'clip' (SnAG default) or 'drop'")
    if text_features is not None and text_encoder is not None:
        raise ValueError("pass text_features or text_encoder, not both")
    params = _time_params(format, preset, fps, clip_size, clip_stride, downsample_rate)
    if text_dim is None and preset is not None and text_features is None and text_encoder is None:
        from ..configuration_mscl import MSCLConfig

        text_dim = int(MSCLConfig.load_preset_dict(preset).get("text_input_dim", 0)) or None

    parsed = (annotations if isinstance(annotations, ParsedAnnotations)
              else read_annotations(format, annotations, source_split=source_split, durations=durations))
    vsource = open_feature_source(video_features)
    if vsource is None:
        raise ValueError("video features are required (--video-features)")
    tsource = open_feature_source(text_features)
    videos = parsed.videos[:limit] if limit is not None else parsed.videos

    summary = ConversionSummary(format=format, split=split, policy=policy)
    for k, v in parsed.counts.items():
        summary.add(k, v)
    summary.add("videos_in", len(videos))
    summary.add("annotations_in", sum(len(v.queries) for v in videos))
    for key in ("clipped_start", "clipped_end", "clipped_float_noise", "dropped_inverted", "dropped_zero_length", "dropped_outside_video",
                "dropped_empty_sentence", "videos_dropped_no_queries", "videos_dropped_missing_features",
                "videos_feature_length_mismatch"):
        summary.add(key, 0)
    if policy == "drop":
        summary.add("dropped_out_of_range", 0)

    if num_shards is None:
        num_shards = _plan_shards(videos, vsource, params, max_shard_bytes, min_shards)

    writer: Optional[GroundingDatasetWriter] = None
    iterator: Iterable[VideoRecord] = videos
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(videos, desc=f"{format}:{split}", unit="video", file=sys.stderr)
        iterator = bar
    try:
        for video in iterator:
            queries = _check_segments(video, policy, summary)
            # Text: files, an encoder, or none (sentences only).
            texts: List[Optional[np.ndarray]] = [None] * len(queries)
            if tsource is not None:
                keep = []
                for q in queries:
                    arr = None
                    for key in q.text_keys or (q.query_id,):
                        arr = tsource.get(key)
                        if arr is not None:
                            arr = _as_text_array(arr, tsource.describe(key), text_dim)
                            break
                    if arr is None:
                        if strict:
                            raise ValueError(f"video {video.video_id!r}, query {q.query_id!r}: text features not found "
                                             f"({tsource.describe(q.query_id)})")
                        summary.add("dropped_missing_text_features", example=q.query_id)
                        continue
                    text_dim = text_dim or arr.shape[1]
                    keep.append((q, arr))
                queries, texts = [q for q, _ in keep], [a for _, a in keep]
            else:
                keep_q = []
                for q in queries:
                    if not q.sentence.strip():
                        summary.add("dropped_empty_sentence", example=q.query_id)
                        continue
                    keep_q.append(q)
                queries, texts = keep_q, [None] * len(keep_q)
                if text_encoder is not None and queries:
                    encoded = list(text_encoder([q.sentence for q in queries]))
                    if len(encoded) != len(queries):
                        raise ValueError(f"text_encoder returned {len(encoded)} arrays for {len(queries)} sentences")
                    texts = [_as_text_array(a, f"text_encoder output for query {q.query_id!r}", text_dim) for q, a in zip(queries, encoded)]
                    text_dim = text_dim or texts[0].shape[1]
            if not queries:
                summary.add("videos_dropped_no_queries", example=video.video_id)
                continue

            feats, where = _load_video(video, vsource, params, video_dim)
            if feats is None:
                if strict:
                    raise ValueError(f"video {video.video_id!r}: features not found ({where})")
                summary.add("videos_dropped_missing_features", example=video.video_id)
                summary.add("queries_dropped_with_videos", len(queries))
                continue
            video_dim = video_dim or feats.shape[1]
            v_fps = float(video.fps or params["fps"])
            expected = expected_num_features(video.duration, v_fps, params["clip_size"], params["clip_stride"])
            if abs(feats.shape[0] - expected) > max(2, 0.1 * expected):
                summary.add("videos_feature_length_mismatch", example=f"{video.video_id} ({feats.shape[0]} vs ~{expected})")

            if writer is None:
                if text_dim is None:
                    raise ValueError("text_dim is unknown: pass --text-dim (or --preset) when no text features are given")
                writer = GroundingDatasetWriter(
                    output, split, video_dim, text_dim, max_shard_bytes=max_shard_bytes, min_shards=min_shards,
                    num_shards=num_shards, compression=compression, overwrite=overwrite,
                )
            writer.add(
                {
                    "video_id": video.video_id, "duration": float(video.duration), "fps": v_fps,
                    "clip_size": params["clip_size"], "clip_stride": params["clip_stride"],
                    "downsample_rate": params["downsample_rate"], "video_features": feats,
                    "queries": [
                        {"query_id": q.query_id, "sentence": q.sentence, "text_features": t, "start": q.start, "end": q.end}
                        for q, t in zip(queries, texts)
                    ],
                }
            )
            summary.add("videos_out")
            summary.add("queries_out", len(queries))
        summary.counts.setdefault("videos_out", 0)
        summary.counts.setdefault("queries_out", 0)
        if writer is None:
            raise ValueError(f"{format}:{split}: no video survived conversion; nothing written\n{summary.format_table()}")
        summary.output, summary.video_dim, summary.text_dim = os.path.abspath(output), video_dim, text_dim
        summary.num_shards = writer.num_shards or None
        writer.summary = summary.to_dict()
        meta = writer.close()
        summary.num_shards = meta["num_shards"]
        return summary
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
        # Close only the HDF5 files this call opened, not sources the caller passed in.
        for src, spec in ((vsource, video_features), (tsource, text_features)):
            if isinstance(src, HDF5Features) and not isinstance(spec, FeatureSource):
                src.close()


def _time_params(format: str, preset: Optional[str], fps, clip_size, clip_stride, downsample_rate) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    if preset is not None:
        from ..configuration_mscl import MSCLConfig

        p = MSCLConfig.load_preset_dict(preset)
        values = {k: p.get(k) for k in ("fps", "clip_size", "clip_stride", "downsample_rate")}
    for k, v in (("fps", fps), ("clip_size", clip_size), ("clip_stride", clip_stride), ("downsample_rate", downsample_rate)):
        if v is not None:
            values[k] = v
    values.setdefault("downsample_rate", 1)
    # SnAG JSON and TACoS carry fps per video; the others need it from the command line or a preset.
    needed = ("clip_size", "clip_stride") if format in ("snag", "tacos-2dtan") else ("fps", "clip_size", "clip_stride")
    missing = [k for k in needed if values.get(k) is None]
    if missing:
        raise ValueError(f"{format}: missing time-mapping value(s) {', '.join(missing)}; pass --{missing[0].replace('_', '-')} or --preset")
    out = {
        "fps": None if values.get("fps") is None else float(values["fps"]),
        "clip_size": float(values["clip_size"]),
        "clip_stride": float(values["clip_stride"]),
        "downsample_rate": int(values["downsample_rate"]),
    }
    for k in ("fps", "clip_size", "clip_stride"):
        if out[k] is not None and not (math.isfinite(out[k]) and out[k] > 0):
            raise ValueError(f"{k} must be positive, got {out[k]}")
    if out["downsample_rate"] < 1:
        raise ValueError(f"downsample_rate must be >= 1, got {out['downsample_rate']}")
    return out


def _load_video(video: VideoRecord, source: FeatureSource, params: Dict[str, Any],
                video_dim: Optional[int]) -> Tuple[Optional[np.ndarray], str]:
    tried = []
    for key, window in video.keys():
        arr = source.get(key)
        where = source.describe(key)
        tried.append(where)
        if arr is None:
            continue
        if arr.ndim != 2:
            raise ValueError(f"{where}: video features must be a 2-D (T, D) array, got shape {arr.shape}")
        if video_dim is not None and arr.shape[1] != video_dim:
            raise ValueError(f"{where}: video feature dim is {arr.shape[1]}, expected {video_dim}")
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{where}: video features have non-numeric dtype {arr.dtype}")
        arr = np.asarray(arr, dtype=np.float32)
        if window is not None:
            arr = _slice_window(arr, window, float(video.fps or params["fps"]), params["clip_stride"])
        if arr.shape[0] == 0:
            raise ValueError(f"{where}: no feature vectors{' inside the clip window ' + str(window) if window else ''}")
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).any(axis=1).sum())
            raise ValueError(f"{where}: video features contain NaN/inf values ({bad} of {arr.shape[0]} time steps)")
        return arr, where
    return None, " or ".join(tried)


def _plan_shards(videos: Sequence[VideoRecord], source: FeatureSource, params: Dict[str, Any], max_shard_bytes: int,
                 min_shards: int) -> Optional[int]:
    """Exact shard count from the feature shapes, so that all shards get the same number of rows (±1)."""
    total = 0
    for video in videos:
        shape = None
        for key, window in video.keys():
            shape = source.shape(key)
            if shape is not None:
                if window is not None:
                    fps = float(video.fps or params["fps"])
                    shape = (max(1, int(math.ceil((window[1] - window[0]) * fps / params["clip_stride"]))),) + tuple(shape[1:])
                break
        if shape is None or len(shape) != 2:
            return None  # unknown sizes: fall back to size-based shard groups
        total += int(shape[0]) * int(shape[1]) * 4
    return plan_num_shards(total, max_shard_bytes, min_shards)


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modeling_mscl.data.convert",
        description="Convert temporal-grounding annotations + features into the mscl parquet dataset format.",
        epilog="Anomalies (clipped/dropped segments, missing features, ...) are counted and printed at the end.",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="annotation format")
    p.add_argument("--annotations", required=True, help="annotation file (json/jsonl/txt)")
    p.add_argument("--video-features", required=True, nargs="+",
                   help="feature folder(s) of <id>.npy/.pt (concatenated along channels) or one .h5 file")
    p.add_argument("--text-features", nargs="+", default=None, help="token-feature folder(s) of <query_id>.npy/.pt, or an .h5 file")
    p.add_argument("--text-encoder", choices=("none", "files"), default=None,
                   help="'files': read --text-features; 'none': keep sentences only (text embedded later). "
                        "Default: files if --text-features is given")
    p.add_argument("--output", required=True, help="dataset folder (other splits in it are kept)")
    p.add_argument("--split", required=True, help="output split name (train, test, val_1, ...)")
    p.add_argument("--source-split", default=None, help="snag: top-level key of the JSON to read (default: --split)")
    p.add_argument("--durations", nargs="+", default=None, help="charades-sta: Charades_v1_*.csv files (default: next to the txt)")
    p.add_argument("--preset", default=None,
                   help="take fps/clip-size/clip-stride/downsample-rate (and text dim) from this MSCLConfig preset")
    p.add_argument("--fps", type=float, default=None)
    p.add_argument("--clip-size", type=float, default=None, help="frames per feature vector")
    p.add_argument("--clip-stride", type=float, default=None, help="frames between stored feature vectors")
    p.add_argument("--downsample-rate", type=int, default=None, help="keep every k-th feature when loading (stored features are raw)")
    p.add_argument("--video-dim", type=int, default=None, help="expected video feature dim (default: from the first file)")
    p.add_argument("--text-dim", type=int, default=None, help="text feature dim (default: from files or the preset)")
    p.add_argument("--policy", choices=POLICIES, default="clip", help="out-of-range segments: clip to the video (SnAG) or drop")
    p.add_argument("--strict", action="store_true", help="missing feature files are errors instead of dropped videos")
    p.add_argument("--max-shard-mb", type=float, default=DEFAULT_MAX_SHARD_BYTES / 2**20)
    p.add_argument("--min-shards", type=int, default=1, help="shard count is a multiple of this (use the number of training processes)")
    p.add_argument("--num-shards", type=int, default=None, help="exact shard count (default: from feature sizes)")
    p.add_argument("--compression", default=None, help="parquet codec (default none: fastest decoding; zstd for upload)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing split of the same name")
    p.add_argument("--limit", type=int, default=None, help="convert only the first N videos (smoke test)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--summary-json", default=None, help="also write the summary to this JSON file")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    mode = args.text_encoder or ("files" if args.text_features else "none")
    if mode == "files" and not args.text_features:
        print("error: --text-encoder files needs --text-features", file=sys.stderr)
        return 2
    try:
        summary = convert(
            args.format, args.annotations, args.video_features, args.output, args.split,
            text_features=args.text_features if mode == "files" else None,
            fps=args.fps, clip_size=args.clip_size, clip_stride=args.clip_stride, downsample_rate=args.downsample_rate,
            preset=args.preset, video_dim=args.video_dim, text_dim=args.text_dim, policy=args.policy, strict=args.strict,
            source_split=args.source_split or (args.split if args.format == "snag" else None), durations=args.durations,
            max_shard_bytes=int(args.max_shard_mb * 2**20), min_shards=args.min_shards, num_shards=args.num_shards,
            compression=args.compression, overwrite=args.overwrite, progress=not args.no_progress, limit=args.limit,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.format_table())
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary.to_dict(), f, indent=2)
    return 0


__all__ = [
    "ArrayFeatures",
    "ConversionSummary",
    "FORMATS",
    "FeatureDirectory",
    "FeatureSource",
    "HDF5Features",
    "ParsedAnnotations",
    "QueryRecord",
    "VideoRecord",
    "build_parser",
    "convert",
    "expected_num_features",
    "main",
    "open_feature_source",
    "read_annotations",
]


if __name__ == "__main__":
    sys.exit(main())
