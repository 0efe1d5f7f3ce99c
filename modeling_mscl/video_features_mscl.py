# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Video file → ``(T, D)`` frame features with a Hugging Face image model, and an on-disk feature cache.

A checkpoint records how its video features were made in ``config.video_feature_source`` (the twin of
``text_feature_source``). Two kinds:

* ``{"type": "hf", ...}``: one frame per stored feature, embedded by a Hugging Face image model::

    {
      "type": "hf",
      "name_or_path": "openai/clip-vit-base-patch32",   # Hub id or local folder
      "revision": null,                                  # optional: branch, tag or commit to pin
      "model_class": "CLIPVisionModelWithProjection",    # the transformers class that is loaded
      "output": "image_embeds",                          # which output is the feature (see OUTPUTS)
      "normalize": null,                                 # null (as extracted) or "l2"
      "image_processor_backend": "pil",                  # transformers image-processor backend
      "resize": "image_processor",                       # or "decoder" (see below)
      "dtype": "float32",                                # precision of the extractor ("float32", "bfloat16")
      "sampling": {"fps": 5.0, "clip_size": 1, "clip_stride": 1},
      "dim": 512,
      "note": "free text"
    }

  ``sampling`` is the checkpoint's time mapping (it must equal the config's ``fps`` / ``clip_size`` /
  ``clip_stride``): stored feature ``j`` is the frame on screen at ``(j * clip_stride + clip_size / 2) / fps``
  seconds (see :mod:`.video_processing_mscl`).

  Outputs (``output``): ``"image_embeds"`` (``CLIPVisionModelWithProjection``: the projected CLS token,
  i.e. OpenAI's ``encode_image``, not L2-normalised — what MAD's released CLIP features are),
  ``"pooler_output"`` (e.g. ``SiglipVisionModel``: SigLIP's attention-pooled image embedding; or
  ``CLIPVisionModel``: the unprojected CLS token), ``"image_features"`` (``model.get_image_features`` of a
  dual image–text model such as ``CLIPModel`` / ``SiglipModel``), ``"cls_token"`` and ``"mean_tokens"``
  (first / mean token of ``last_hidden_state``, for plain ViT-style encoders).

  Preprocessing is the checkpoint's own image processor (``AutoImageProcessor``), always with the **PIL
  backend** (``image_processor_backend: "pil"``): PIL's antialiased bicubic resize is what OpenAI's CLIP
  preprocessing (and so MAD's features) used, and fixing the backend keeps the features independent of
  whether torchvision happens to be installed (transformers 5 picks its torchvision backend when it is,
  whose resize differs slightly). With ``resize: "image_processor"`` (default) the decoder only converts
  the sampled frames to RGB at their stored resolution and the processor resizes them, so the features
  equal the model's output on the processor's output for those frames. ``resize: "decoder"`` moves the
  resize into the decoder (FFmpeg's ``swscale``, bicubic, to the size the processor would resize to; the
  processor then only crops and normalises): several times cheaper per frame, at the price of pixels
  that differ slightly from PIL's (see ``benchmarks/bench_video_extraction.py``).

* ``{"type": "precomputed", "features": ..., "how_to_extract": ..., "dim": ...}``: features no Hugging
  Face model produces (C3D, I3D, SlowFast, EgoVLP, synthetic). A video file given to such a checkpoint is
  an error that names the features it needs and how to produce them.

Frames are decoded, sampled, preprocessed and embedded as they arrive, ``batch_size`` at a time, so memory
does not grow with the video's length (only the ``(T, D)`` result does).

Cache: features of a file are stored under ``<HF_HOME>/mscl/video_features/`` (override with
``$MSCL_VIDEO_FEATURES_CACHE`` or ``cache_dir=``), one ``<key>.npz`` per (file, extractor, sampling). The key
hashes the file's identity (size, mtime and a BLAKE2 hash of its first and last MiB) and everything that
changes the features: the extractor's id, resolved revision (the Hub commit, or a fingerprint of a local
folder's files), class, output, normalisation, dtype, resize mode and the image processor's full settings,
the sampling, and the version of this code. An entry is written to a temporary file and renamed into
place (``os.replace``, atomic), so an extraction killed midway never leaves an entry that looks complete.
:func:`clear_video_feature_cache` empties it. Partial results (``allow_partial``) are not cached.

This file travels with checkpoints (``trust_remote_code``), so it imports only its flat siblings.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from .video_processing_mscl import VideoDecodeError, VideoFrameSampler

__all__ = [
    "CACHE_ENV",
    "HFImageFeatureExtractor",
    "NoVideoExtractorError",
    "OUTPUTS",
    "VideoFeatureCache",
    "VideoFeatures",
    "build_video_extractor",
    "check_video_source_matches_config",
    "clear_video_feature_cache",
    "default_video_cache_dir",
    "extract_video_features",
    "file_identity",
    "normalize_video_feature_source",
]

OUTPUTS = ("image_embeds", "pooler_output", "image_features", "cls_token", "mean_tokens")
RESIZE_MODES = ("image_processor", "decoder")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CACHE_ENV = "MSCL_VIDEO_FEATURES_CACHE"
# bump when the decoding / sampling / embedding semantics change: old cache entries stop matching
FEATURE_CODE_VERSION = 1
DEFAULT_BATCH_SIZE = 32
_HEAD_TAIL_BYTES = 1 << 20


class NoVideoExtractorError(ValueError):
    """The checkpoint's video features cannot be made from a video file with a Hugging Face model."""


# ----------------------------------------------------------------------------------------------------
# the config field
# ----------------------------------------------------------------------------------------------------
def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"video_feature_source.{name} must be a positive number, got {value!r}")
    return float(value)


def normalize_video_feature_source(source: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Check a ``video_feature_source`` dict and fill the defaults of an ``"hf"`` source (returns a copy)."""
    if not source:
        return {"type": "precomputed"}
    if not isinstance(source, Mapping):
        raise ValueError(f"video_feature_source must be a dict, got {type(source).__name__}")
    src = dict(source)
    kind = src.get("type")
    if kind == "precomputed":
        return src
    if kind != "hf":
        raise ValueError(f"unknown video_feature_source type {kind!r}; expected 'hf' or 'precomputed'")
    if not src.get("name_or_path") or not isinstance(src["name_or_path"], str):
        raise ValueError("video_feature_source of type 'hf' needs 'name_or_path' (a Hub id or a local folder)")
    src.setdefault("revision", None)
    src.setdefault("model_class", "CLIPVisionModelWithProjection")
    src.setdefault("output", "image_embeds")
    src.setdefault("normalize", None)
    src.setdefault("image_processor_backend", "pil")
    src.setdefault("resize", "image_processor")
    src.setdefault("dtype", "float32")
    if src["output"] not in OUTPUTS:
        raise ValueError(f"video_feature_source.output must be one of {OUTPUTS}, got {src['output']!r}")
    if src["normalize"] not in (None, "l2"):
        raise ValueError(f"video_feature_source.normalize must be null or 'l2', got {src['normalize']!r}")
    if src["resize"] not in RESIZE_MODES:
        raise ValueError(f"video_feature_source.resize must be one of {RESIZE_MODES}, got {src['resize']!r}")
    if src["dtype"] not in DTYPES:
        raise ValueError(f"video_feature_source.dtype must be one of {tuple(DTYPES)}, got {src['dtype']!r}")
    sampling = src.get("sampling")
    if not isinstance(sampling, Mapping) or "fps" not in sampling:
        raise ValueError("video_feature_source of type 'hf' needs 'sampling': {'fps': F, 'clip_size': 1, 'clip_stride': 1}")
    src["sampling"] = {
        "fps": _positive("sampling.fps", sampling["fps"]),
        "clip_size": _positive("sampling.clip_size", sampling.get("clip_size", 1)),
        "clip_stride": _positive("sampling.clip_stride", sampling.get("clip_stride", 1)),
    }
    return src


def describe_missing_extractor(source: Optional[Mapping[str, Any]], video_input_dim: int, what: str = "") -> str:
    """The error text for a video file given to a checkpoint whose features have no HF extractor."""
    src = dict(source or {})
    features = src.get("features") or src.get("note") or "features of an unrecorded kind"
    how = src.get("how_to_extract")
    text = (
        f"{what}this checkpoint reads {features} ({int(src.get('dim') or video_input_dim)}-d), and no Hugging Face "
        "model produces them, so it cannot ground a video file directly (config.video_feature_source is "
        f"{'missing' if not source else repr(src.get('type'))})."
    )
    if how:
        text += f" How to produce them: {how}"
    text += (
        f" Then pass the (T, {video_input_dim}) features as an array or a .npy or .pt path instead of the video file. "
        "Checkpoints whose video_feature_source names a Hugging Face image model (e.g. the mad_clip and "
        "custom_clip_b32 presets) take video files."
    )
    return text


def check_video_source_matches_config(source: Mapping[str, Any], config) -> None:
    """An ``"hf"`` source's sampling and width must be the checkpoint's time mapping and input width."""
    s = source["sampling"]
    ours = {"fps": float(config.fps), "clip_size": float(config.clip_size), "clip_stride": float(config.clip_stride)}
    if any(abs(s[k] - ours[k]) > 1e-9 * max(1.0, abs(ours[k])) for k in ours):
        raise ValueError(
            f"video_feature_source.sampling {s} does not match the checkpoint's time mapping {ours} "
            "(fps / clip_size / clip_stride): features sampled differently would be read at the wrong times"
        )
    dim = source.get("dim")
    if dim is not None and int(dim) != int(config.video_input_dim):
        raise ValueError(
            f"video_feature_source.dim is {dim} but the checkpoint expects video_input_dim={config.video_input_dim}"
        )


# ----------------------------------------------------------------------------------------------------
# the extractor
# ----------------------------------------------------------------------------------------------------
def _quiet_transformers():
    """Context manager: transformers' loading report lists the text tower's weights as unexpected when the
    vision tower is loaded from a full CLIP checkpoint; that is expected here, so keep it quiet."""
    from contextlib import contextmanager

    from transformers.utils import logging as hf_logging

    @contextmanager
    def quiet():
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)

    return quiet()


def _local_folder_fingerprint(folder: str) -> str:
    """Config / processor file contents and weight-file sizes + mtimes of a local model folder."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        name = os.path.basename(path)
        if not os.path.isfile(path):
            continue
        if name.endswith(".json"):
            with open(path, "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
        elif name.endswith((".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")):
            st = os.stat(path)
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _resolved_revision(name_or_path: str, revision: Optional[str]) -> str:
    if os.path.isdir(name_or_path):
        return "local:" + _local_folder_fingerprint(name_or_path)
    try:
        from transformers.utils import cached_file
        from transformers.utils.hub import extract_commit_hash

        path = cached_file(name_or_path, "config.json", revision=revision)
        commit = extract_commit_hash(path, None) if path else None
    except Exception:  # resolution is best effort; the revision given is then the key
        commit = None
    return f"commit:{commit}" if commit else f"revision:{revision or 'main'}"


class HFImageFeatureExtractor:
    """Frames → features with the Hugging Face image model a ``video_feature_source`` dict describes.

    The image processor is loaded at construction (cheap: a JSON file), the model on first use, so a
    cache hit never loads the weights. ``device`` is where the model runs; ``dtype`` overrides the
    source's precision (``"bfloat16"`` runs under autocast).
    """

    def __init__(self, source: Mapping[str, Any], *, device: Optional[torch.device] = None, dtype: Optional[str] = None):
        self.source = normalize_video_feature_source(source)
        if self.source["type"] != "hf":
            raise NoVideoExtractorError(describe_missing_extractor(self.source, int(self.source.get("dim") or 0)))
        if dtype is not None:
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
            self.source["dtype"] = dtype
        from transformers import AutoImageProcessor

        kwargs: Dict[str, Any] = {}
        if self.source["revision"]:
            kwargs["revision"] = self.source["revision"]
        if self.source["image_processor_backend"]:
            kwargs["backend"] = self.source["image_processor_backend"]
        name = self.source["name_or_path"]
        with _quiet_transformers():
            self.processor = AutoImageProcessor.from_pretrained(name, **kwargs)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._model = None
        self._revision = _resolved_revision(name, self.source["revision"])
        if self.source["resize"] == "decoder":
            self._decoder_size_rule()  # fail early on a processor whose resize cannot move into the decoder

    # -------------------------------------------------------------------------------------------------
    @property
    def sampling(self) -> Dict[str, float]:
        return dict(self.source["sampling"])

    @property
    def fingerprint(self) -> Dict[str, Any]:
        """Everything about the extractor that changes its features (part of the cache key)."""
        s = self.source
        return {
            "name_or_path": s["name_or_path"] if not os.path.isdir(s["name_or_path"]) else os.path.abspath(s["name_or_path"]),
            "revision": self._revision,
            "model_class": s["model_class"],
            "output": s["output"],
            "normalize": s["normalize"],
            "dtype": s["dtype"],
            "resize": s["resize"],
            "image_processor_backend": s["image_processor_backend"],
            "image_processor": _jsonable(self.processor.to_dict()),
        }

    @property
    def model(self):
        if self._model is None:
            self._model = self._load_model()
        return self._model

    @property
    def dim(self) -> int:
        """Feature width (loads the model)."""
        cfg = self.model.config
        out = self.source["output"]
        if out in ("image_embeds", "image_features") and getattr(cfg, "projection_dim", None):
            return int(cfg.projection_dim)
        vision = getattr(cfg, "vision_config", None) or cfg
        return int(vision.hidden_size)

    def _load_model(self):
        import transformers
        from transformers import AutoConfig

        s = self.source
        cls = getattr(transformers, s["model_class"], None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise ValueError(f"video_feature_source.model_class {s['model_class']!r} is not a transformers model class")
        kwargs: Dict[str, Any] = {}
        if s["revision"]:
            kwargs["revision"] = s["revision"]
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(s["name_or_path"], **kwargs)
            config_class = getattr(cls, "config_class", None)
            if config_class is not None and not isinstance(config, config_class):
                # a vision tower loaded from a full image-text checkpoint (openai/clip-vit-base-patch32 is a
                # CLIPModel): take its vision config, with the projection width of the whole model
                sub = getattr(config, "vision_config", None)
                if isinstance(sub, config_class):
                    if getattr(config, "projection_dim", None) is not None and hasattr(sub, "projection_dim"):
                        sub.projection_dim = config.projection_dim
                    kwargs["config"] = sub
            model = cls.from_pretrained(s["name_or_path"], **kwargs)
        model.eval().to(self.device)
        if s["output"] == "image_embeds" and not hasattr(model, "visual_projection") and "WithProjection" not in type(model).__name__:
            raise ValueError("output 'image_embeds' needs a model with a projection (e.g. CLIPVisionModelWithProjection), "
                             f"not {type(model).__name__}")
        return model

    # -------------------------------------------------------------------------------------------------
    def _decoder_size_rule(self) -> Callable[[int, int], Tuple[int, int]]:
        size = getattr(self.processor, "size", None) or {}
        get = size.get if isinstance(size, Mapping) else (lambda k, d=None: getattr(size, k, d))
        shortest, height, width = get("shortest_edge"), get("height"), get("width")
        if shortest and not get("longest_edge"):
            s = int(shortest)

            def rule(h: int, w: int) -> Tuple[int, int]:
                # transformers' get_resize_output_image_size(default_to_square=False)
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = s, int(s * long / short)
                return (new_long, new_short) if w <= h else (new_short, new_long)

            return rule
        if height and width:
            return lambda h, w: (int(height), int(width))
        raise ValueError(
            f"resize 'decoder' needs an image processor that resizes to a shortest edge or a fixed height/width; "
            f"{type(self.processor).__name__} has size {size}"
        )

    @property
    def decoder_output_size(self) -> Optional[Callable[[int, int], Tuple[int, int]]]:
        """What the decoder resizes sampled frames to (``None``: stored resolution, the processor resizes)."""
        if self.source["resize"] != "decoder" or not getattr(self.processor, "do_resize", True):
            return None
        return self._decoder_size_rule()

    def preprocess(self, images: List[np.ndarray]) -> torch.Tensor:
        """``(H, W, 3)`` uint8 RGB frames → ``(N, 3, h, w)`` pixel values from the checkpoint's processor."""
        kwargs: Dict[str, Any] = {"return_tensors": "pt"}
        if self.decoder_output_size is not None:
            kwargs["do_resize"] = False  # already at the processor's resize size
        return self.processor(images=list(images), **kwargs)["pixel_values"]

    @torch.no_grad()
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` → ``(N, D)`` float32 features on the CPU."""
        model = self.model
        dtype = DTYPES[self.source["dtype"]]
        pv = pixel_values.to(self.device, torch.float32)
        autocast = torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)
        with autocast:
            out_name = self.source["output"]
            if out_name == "image_features":
                out = model.get_image_features(pixel_values=pv)
                feats = out if isinstance(out, torch.Tensor) else out.pooler_output
            else:
                out = model(pixel_values=pv)
                if out_name == "image_embeds":
                    feats = out.image_embeds
                elif out_name == "pooler_output":
                    feats = out.pooler_output
                elif out_name == "cls_token":
                    feats = out.last_hidden_state[:, 0]
                else:
                    feats = out.last_hidden_state.mean(dim=1)
        feats = feats.float()
        if self.source["normalize"] == "l2":
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.cpu()

    def __call__(self, images: List[np.ndarray]) -> torch.Tensor:
        return self.embed(self.preprocess(images))


def build_video_extractor(source: Optional[Mapping[str, Any]], video_input_dim: int, *, device=None, dtype=None) -> HFImageFeatureExtractor:
    """The extractor of a checkpoint's ``video_feature_source``; :class:`NoVideoExtractorError` when it has none."""
    src = normalize_video_feature_source(source)
    if src["type"] != "hf":
        raise NoVideoExtractorError(describe_missing_extractor(source, video_input_dim))
    return HFImageFeatureExtractor(src, device=device, dtype=dtype)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ----------------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------------
def default_video_cache_dir() -> str:
    """``$MSCL_VIDEO_FEATURES_CACHE``, else ``<HF_HOME>/mscl/video_features``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        try:
            from huggingface_hub import constants

            home = constants.HF_HOME
        except Exception:  # pragma: no cover - huggingface_hub is a transformers dependency
            home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return os.path.join(os.path.expanduser(home), "mscl", "video_features")


def file_identity(path: str) -> Dict[str, Any]:
    """Size, mtime (ns) and a BLAKE2 hash of the first and last MiB: cheap, and changes with the content."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(_HEAD_TAIL_BYTES))
        if st.st_size > _HEAD_TAIL_BYTES:
            f.seek(max(_HEAD_TAIL_BYTES, st.st_size - _HEAD_TAIL_BYTES))
            h.update(f.read(_HEAD_TAIL_BYTES))
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "head_tail_blake2b": h.hexdigest()}


@dataclass
class VideoFeatures:
    """Features of one video file and what decoding it found.

    ``features`` is ``(T, D)`` float32 (stored feature ``j`` ↔ time ``(j * clip_stride + clip_size/2) / fps``);
    ``duration`` is the video's length in seconds (container, or last frame when the container lies),
    ``partial`` marks features of a damaged file's decodable part (``allow_partial``).
    """

    features: np.ndarray
    path: str
    duration: float
    duration_source: str
    decoded_end: float
    frames_decoded: int
    sampling: Dict[str, float]
    info: Dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    partial_reason: Optional[str] = None
    from_cache: bool = False
    cache_path: Optional[str] = None

    def meta(self) -> Dict[str, Any]:
        return {
            "path": self.path, "duration": self.duration, "duration_source": self.duration_source,
            "decoded_end": self.decoded_end, "frames_decoded": self.frames_decoded, "sampling": self.sampling,
            "info": self.info, "num_features": int(self.features.shape[0]), "dim": int(self.features.shape[1]),
        }


class VideoFeatureCache:
    """Extracted features on disk, one atomic ``<key>.npz`` per (file identity, extractor, sampling)."""

    SUFFIX = ".npz"

    def __init__(self, cache_dir: Optional[str] = None):
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir else default_video_cache_dir()

    @staticmethod
    def key(path: str, extractor_fingerprint: Mapping[str, Any], sampling: Mapping[str, float]) -> str:
        payload = {
            "code_version": FEATURE_CODE_VERSION,
            "file": file_identity(path),
            "extractor": dict(extractor_fingerprint),
            "sampling": {k: float(sampling[k]) for k in ("fps", "clip_size", "clip_stride")},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def entry_path(self, key: str) -> str:
        return os.path.join(self.cache_dir, key[:2], key + self.SUFFIX)

    def get(self, key: str) -> Optional[VideoFeatures]:
        path = self.entry_path(key)
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                features = np.asarray(data["features"], dtype=np.float32)
            if meta.get("key") != key or features.shape != (meta["num_features"], meta["dim"]):
                raise ValueError("entry does not match its key")
        except Exception:
            # unreadable (a disk error, a foreign file): drop it and extract again
            try:
                os.remove(path)
            except OSError:
                pass
            return None
        return VideoFeatures(
            features=features, path=meta["path"], duration=float(meta["duration"]), duration_source=meta["duration_source"],
            decoded_end=float(meta["decoded_end"]), frames_decoded=int(meta["frames_decoded"]), sampling=meta["sampling"],
            info=meta.get("info", {}), from_cache=True, cache_path=path,
        )

    def put(self, key: str, result: VideoFeatures, extractor_fingerprint: Mapping[str, Any]) -> str:
        path = self.entry_path(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        meta = {**result.meta(), "key": key, "extractor": dict(extractor_fingerprint), "created": time.time(),
                "code_version": FEATURE_CODE_VERSION}
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                buf = io.BytesIO()
                np.savez(buf, features=np.ascontiguousarray(result.features, dtype=np.float32), meta=np.array(json.dumps(meta)))
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: readers see nothing or the whole entry
        except BaseException:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        return path

    def entries(self) -> List[str]:
        return sorted(glob.glob(os.path.join(self.cache_dir, "*", "*" + self.SUFFIX)))

    def clear(self) -> Tuple[int, int]:
        """Remove every entry (and leftovers of killed writes); returns ``(entries, bytes)`` removed."""
        removed, size = 0, 0
        shards = [os.path.join(self.cache_dir, d) for d in (os.listdir(self.cache_dir) if os.path.isdir(self.cache_dir) else [])]
        # os.listdir, not glob: the temporary files of killed writes are dot-files
        for path in [os.path.join(d, f) for d in shards if os.path.isdir(d) for f in os.listdir(d)]:
            if not (path.endswith(self.SUFFIX) or path.endswith(".tmp")):
                continue
            try:
                size += os.path.getsize(path)
                os.remove(path)
                removed += path.endswith(self.SUFFIX)
            except OSError:
                pass
        for folder in shards:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        return removed, size


def clear_video_feature_cache(cache_dir: Optional[str] = None) -> Tuple[int, int]:
    """Empty the video-feature cache (default location, or ``cache_dir``); returns ``(entries, bytes)`` removed."""
    return VideoFeatureCache(cache_dir).clear()


# ----------------------------------------------------------------------------------------------------
# file → features
# ----------------------------------------------------------------------------------------------------
def extract_video_features(
    path: str,
    extractor: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Optional[str] = None,
    use_cache: bool = True,
    allow_partial: bool = False,
    progress: Optional[bool] = None,
    threads: int = 0,
    device: Optional[torch.device] = None,
) -> VideoFeatures:
    """Decode ``path``, sample one frame per stored feature, embed, and cache the result.

    Args:
        path: a video file.
        extractor: an :class:`HFImageFeatureExtractor`, or a ``video_feature_source`` dict to build one.
        batch_size: frames embedded per forward pass.
        cache_dir / use_cache: where the feature cache lives (default :func:`default_video_cache_dir`) and
            whether to use it; a hit returns without decoding anything.
        allow_partial: see :class:`~.video_processing_mscl.VideoFrameSampler` (partial results are not cached).
        progress: tqdm bar while decoding (``None``: long files on a terminal).
        threads: decoder threads (0: FFmpeg's choice).

    Raises:
        VideoDecodeError (a ``ValueError``): missing, unreadable, empty, damaged or truncated file.
        NoVideoExtractorError: a ``"precomputed"`` source.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "video file not found" if not os.path.exists(path) else "not a file")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(extractor, HFImageFeatureExtractor):
        extractor = build_video_extractor(extractor, int((extractor or {}).get("dim") or 0), device=device)
    sampling = extractor.sampling
    cache = VideoFeatureCache(cache_dir) if use_cache else None
    key = None
    if cache is not None:
        key = cache.key(path, extractor.fingerprint, sampling)
        hit = cache.get(key)
        if hit is not None:
            hit.path = path
            return hit

    sampler = VideoFrameSampler(
        path, sampling["fps"], sampling["clip_size"], sampling["clip_stride"],
        output_size=extractor.decoder_output_size, threads=threads, allow_partial=allow_partial, progress=progress,
    )
    chunks: List[np.ndarray] = []
    pending: List[torch.Tensor] = []  # (1, 3, h, w) each: preprocessed at once, so no full-size frame is kept
    counts: List[int] = []

    def flush():
        if not pending:
            return
        emb = extractor.embed(torch.cat(pending)).numpy()  # (n, D)
        chunks.append(np.repeat(emb, counts, axis=0) if any(c != 1 for c in counts) else emb)
        pending.clear()
        counts.clear()

    for frame in sampler:
        pending.append(extractor.preprocess([frame.image]))
        counts.append(len(frame.indices))
        if len(pending) >= batch_size:
            flush()
    flush()
    res = sampler.result
    if not chunks:
        raise VideoDecodeError(path, f"is too short for one feature at {sampling['fps']:g} features per second")
    features = np.concatenate(chunks).astype(np.float32, copy=False)
    if not np.isfinite(features).all():
        raise ValueError(f"{path!r}: the extractor produced NaN or inf features")
    out = VideoFeatures(
        features=features, path=path, duration=float(res.duration), duration_source=res.duration_source,
        decoded_end=float(res.decoded_end), frames_decoded=int(res.frames_decoded), sampling=sampling,
        info=sampler.info.to_dict() if sampler.info is not None else {}, partial=res.partial, partial_reason=res.partial_reason,
    )
    if cache is not None and not out.partial:
        out.cache_path = cache.put(key, out, extractor.fingerprint)
    return out
