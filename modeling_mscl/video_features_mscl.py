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
      "dtype_mode": "weights",                           # bf16/fp16: cast the weights, or "autocast"
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
does not grow with the video's length (only the ``(T, D)`` result does). Decoding and preprocessing run on a
background thread a bounded number of batches ahead of the model (:class:`_FrameBatches`; the same batches
in the same order as one thread would make, so the same features); the standard PIL preprocessing of CLIP /
SigLIP processors goes through :class:`ExactPilPreprocessing` (bit-identical, several times cheaper).

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

import collections
import contextlib
import glob
import hashlib
import io
import json
import logging
import math
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .video_processing_mscl import VideoDecodeError, VideoFrameSampler

__all__ = [
    "CACHE_ENV",
    "ExactPilPreprocessing",
    "HFImageFeatureExtractor",
    "NoVideoExtractorError",
    "OUTPUTS",
    "VideoFeatureCache",
    "VideoFeatures",
    "atomic_path",
    "atomic_write",
    "build_video_extractor",
    "check_video_source_matches_config",
    "clear_video_feature_cache",
    "default_video_cache_dir",
    "extract_video_features",
    "file_identity",
    "mscl_home_folder",
    "normalize_video_feature_source",
]

OUTPUTS = ("image_embeds", "pooler_output", "image_features", "cls_token", "mean_tokens")
RESIZE_MODES = ("image_processor", "decoder")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# how a reduced-precision dtype is applied: "weights" (the model's weights and inputs in that dtype, every op
# runs in it: fast on AMX / AVX-512-BF16 CPUs and GPUs) or "autocast" (fp32 weights, torch.autocast casts
# the matmuls' inputs per op; the other ops stay fp32)
DTYPE_MODES = ("weights", "autocast")
CACHE_ENV = "MSCL_VIDEO_FEATURES_CACHE"
# bump when the decoding / sampling / embedding semantics change: old cache entries stop matching
FEATURE_CODE_VERSION = 1
DEFAULT_BATCH_SIZE = 32
# batches decoded and preprocessed ahead of the model (the background thread's bounded queue)
PREFETCH_BATCHES = 2
_HEAD_TAIL_BYTES = 1 << 20

logger = logging.getLogger(__name__)


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
    src.setdefault("dtype_mode", "weights")
    if src["output"] not in OUTPUTS:
        raise ValueError(f"video_feature_source.output must be one of {OUTPUTS}, got {src['output']!r}")
    if src["normalize"] not in (None, "l2"):
        raise ValueError(f"video_feature_source.normalize must be null or 'l2', got {src['normalize']!r}")
    if src["resize"] not in RESIZE_MODES:
        raise ValueError(f"video_feature_source.resize must be one of {RESIZE_MODES}, got {src['resize']!r}")
    if src["dtype"] not in DTYPES:
        raise ValueError(f"video_feature_source.dtype must be one of {tuple(DTYPES)}, got {src['dtype']!r}")
    if src["dtype_mode"] not in DTYPE_MODES:
        raise ValueError(f"video_feature_source.dtype_mode must be one of {DTYPE_MODES}, got {src['dtype_mode']!r}")
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


class ExactPilPreprocessing:
    """A transformers PIL-backend image processor's standard pipeline, bit for bit, for uint8 RGB frames.

    transformers' PIL backend (``CLIPImageProcessorPil``, ``SiglipImageProcessorPil``, ...) turns an
    ``(H, W, 3)`` uint8 frame into pixel values by: copying it into a PIL image, PIL resize (the processor's
    ``resample``, e.g. bicubic) to a shortest edge or a fixed size, back to numpy, centre crop (integer
    offsets), rescale in float64 and cast to float32, and ``(x - mean) / std`` in float32, in Python-level
    steps that allocate a float64 and several float32 copies of the image. This class does the same PIL
    resize and crop, and replaces rescale + normalise — elementwise functions of a pixel's uint8 value and
    its channel — by a ``(3, 256)`` lookup table computed **by the processor's own** ``rescale`` and
    ``normalize`` on the 256 possible values. The result is identical by construction (same PIL call, same
    crop offsets, the processor's arithmetic on every value); :class:`HFImageFeatureExtractor` also checks
    it against the processor on its first frame.

    :meth:`from_processor` returns ``None`` for anything else (another backend, overridden steps, padding,
    ``longest_edge`` / ``max_height`` sizes, no normalisation), which then goes through the processor.
    """

    _STEPS = ("_preprocess", "resize", "center_crop", "rescale", "normalize", "pad", "process_image", "convert_to_rgb")

    def __init__(self, processor, lut: np.ndarray):
        self.processor = processor
        self.lut = lut  # (3, 256) float32: pixel value of channel c, uint8 value v
        self.resample = int(processor.resample)
        size = _size_dict(processor.size)
        self.shortest_edge = size.get("shortest_edge")
        self.fixed_size = (int(size["height"]), int(size["width"])) if not self.shortest_edge else None
        crop = _size_dict(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else {}
        self.crop = (int(crop["height"]), int(crop["width"])) if crop else None
        self.do_resize = bool(getattr(processor, "do_resize", True))

    @classmethod
    def from_processor(cls, processor) -> Optional["ExactPilPreprocessing"]:
        try:
            from transformers.image_processing_backends import PilBackend
        except ImportError:  # another transformers layout: use the processor
            return None
        if not isinstance(processor, PilBackend):
            return None
        if any(getattr(type(processor), step, None) is not getattr(PilBackend, step, None) for step in cls._STEPS):
            return None  # a processor that changes a step does something this class does not know
        if getattr(processor, "do_pad", False):
            return None
        if not (getattr(processor, "do_rescale", False) or getattr(processor, "do_normalize", False)):
            return None  # uint8 output
        size = _size_dict(getattr(processor, "size", None))
        shortest = size.get("shortest_edge")
        if any(size.get(k) for k in ("longest_edge", "max_height", "max_width")):
            return None
        if not shortest and not (size.get("height") and size.get("width")):
            return None
        if getattr(processor, "do_center_crop", False):
            crop = _size_dict(getattr(processor, "crop_size", None))
            if not (crop.get("height") and crop.get("width")):
                return None
        resample = getattr(processor, "resample", None)
        if isinstance(resample, bool) or not isinstance(resample, int):
            return None
        # the lookup table: a (2, 256, 3) uint8 image whose row holds every value in every channel, through the
        # processor's own rescale and normalise (channels-last input; two rows so that the channel axis is
        # inferred as the last one)
        values = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (2, 256, 3)).copy()
        try:
            out = processor(images=[values], do_resize=False, do_center_crop=False, return_tensors="np")["pixel_values"][0]
        except Exception:  # pragma: no cover - a processor that refuses this input: use it as it is
            return None
        out = np.asarray(out)
        if out.shape != (3, 2, 256) or out.dtype != np.float32:
            return None
        return cls(processor, np.ascontiguousarray(out[:, 0, :]))

    def _resize_size(self, height: int, width: int) -> Tuple[int, int]:
        if self.fixed_size is not None:
            return self.fixed_size
        # transformers' get_resize_output_image_size(size=shortest_edge, default_to_square=False)
        s = int(self.shortest_edge)
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = s, int(s * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def __call__(self, image: np.ndarray, do_resize: bool = True) -> Optional[np.ndarray]:
        """``(H, W, 3)`` uint8 → ``(3, h, w)`` float32; ``None`` for an input the processor handles differently."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] in (1, 3, 4):
            return None  # the processor would guess another channel layout for an image 1, 3 or 4 pixels high
        if do_resize and self.do_resize:
            from PIL import Image

            h, w = self._resize_size(image.shape[0], image.shape[1])
            pil = Image.fromarray(np.ascontiguousarray(image))
            image = np.asarray(pil.resize((w, h), resample=self.resample, reducing_gap=None))
        if self.crop is not None:
            ch, cw = self.crop
            top, left = (image.shape[0] - ch) // 2, (image.shape[1] - cw) // 2
            if top < 0 or left < 0:
                return None  # the processor pads images smaller than the crop
            image = image[top:top + ch, left:left + cw]
        out = np.empty((3,) + image.shape[:2], np.float32)
        for c in range(3):
            np.take(self.lut[c], image[:, :, c], out=out[c])
        return out


def _size_dict(size: Any) -> Dict[str, Any]:
    if not size:
        return {}
    if isinstance(size, Mapping):
        return {k: v for k, v in size.items() if v is not None}
    return {k: getattr(size, k) for k in ("shortest_edge", "longest_edge", "height", "width", "max_height", "max_width")
            if getattr(size, k, None) is not None}


class HFImageFeatureExtractor:
    """Frames → features with the Hugging Face image model a ``video_feature_source`` dict describes.

    The image processor is loaded at construction (cheap: a JSON file), the model on first use, so a
    cache hit never loads the weights. ``device`` is where the model runs; ``dtype`` overrides the
    source's precision and ``dtype_mode`` how a reduced precision is applied (``"weights"``, default: the
    model is cast to ``dtype``, so every op runs in it — on CPUs with AMX / AVX-512-BF16 and on GPUs the
    fast path; ``"autocast"``: fp32 weights under ``torch.autocast``). Both are part of the cache key.

    Preprocessing: frames go through the checkpoint's image processor, or — for the PIL backend's standard
    resize / centre-crop / rescale / normalise pipeline (CLIP, SigLIP, ...) — through
    :class:`ExactPilPreprocessing`, the same PIL resize followed by a per-channel lookup table built with the
    processor's own rescale and normalise, which gives bit-identical pixel values at a fraction of the cost.
    The first frame an extractor preprocesses is checked against the processor; a mismatch (e.g. another
    transformers version) switches the fast path off with a warning.
    """

    def __init__(self, source: Mapping[str, Any], *, device: Optional[torch.device] = None, dtype: Optional[str] = None,
                 dtype_mode: Optional[str] = None):
        self.source = normalize_video_feature_source(source)
        if self.source["type"] != "hf":
            raise NoVideoExtractorError(describe_missing_extractor(self.source, int(self.source.get("dim") or 0)))
        if dtype is not None:
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
            self.source["dtype"] = dtype
        if dtype_mode is not None:
            if dtype_mode not in DTYPE_MODES:
                raise ValueError(f"dtype_mode must be one of {DTYPE_MODES}, got {dtype_mode!r}")
            self.source["dtype_mode"] = dtype_mode
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
        self._fast = ExactPilPreprocessing.from_processor(self.processor)
        self._fast_verified = False

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
            # only for reduced precision, so that the keys of fp32 features are those of earlier versions
            **({"dtype_mode": s["dtype_mode"]} if s["dtype"] != "float32" else {}),
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
        if s["dtype"] != "float32" and s["dtype_mode"] == "weights":
            model.to(DTYPES[s["dtype"]])
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

    @property
    def fast_preprocessing(self) -> bool:
        """Whether frames go through :class:`ExactPilPreprocessing` (``False``: the image processor itself)."""
        return self._fast is not None

    def preprocess_frame(self, image: np.ndarray) -> np.ndarray:
        """One ``(H, W, 3)`` uint8 RGB frame → its ``(3, h, w)`` float32 pixel values (the processor's output)."""
        do_resize = self.decoder_output_size is None  # else the decoder already resized it
        if self._fast is not None:
            out = self._fast(image, do_resize=do_resize)
            if out is not None:
                if not self._fast_verified:
                    # prove the shortcut on this extractor's first frame: bit-identical to the processor, or off
                    ref = self._processor_frame(image, do_resize)
                    self._fast_verified = True
                    if out.shape != ref.shape or not np.array_equal(out, ref):
                        logger.warning(
                            "the fast PIL preprocessing of %s differs from its image processor (%s); using the "
                            "processor", self.source["name_or_path"], type(self.processor).__name__)
                        self._fast = None
                        return ref
                return out
        return self._processor_frame(image, do_resize)

    def _processor_frame(self, image: np.ndarray, do_resize: bool) -> np.ndarray:
        kwargs: Dict[str, Any] = {"return_tensors": "np"}
        if not do_resize:
            kwargs["do_resize"] = False  # already at the processor's resize size
        return np.asarray(self.processor(images=[image], **kwargs)["pixel_values"][0])

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """``(H, W, 3)`` uint8 RGB frames → ``(N, 3, h, w)`` pixel values, as the checkpoint's processor makes them."""
        return torch.from_numpy(np.stack([self.preprocess_frame(image) for image in images]))

    @torch.no_grad()
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` → ``(N, D)`` float32 features on the CPU."""
        model = self.model
        dtype = DTYPES[self.source["dtype"]]
        weights = dtype != torch.float32 and self.source["dtype_mode"] == "weights"
        pv = pixel_values.to(self.device, dtype if weights else torch.float32, non_blocking=True)
        autocast = torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32 and not weights)
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
                    feats = out.last_hidden_state.float().mean(dim=1)
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
def mscl_home_folder(name: str, env: Optional[str] = None) -> str:
    """``$<env>`` when set, else ``<HF_HOME>/mscl/<name>`` (``HF_HOME`` as ``huggingface_hub`` resolves it:
    ``~/.cache/huggingface`` unless set): where the package keeps what it writes for a user."""
    explicit = os.environ.get(env) if env else None
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        try:
            from huggingface_hub import constants

            home = constants.HF_HOME
        except Exception:  # pragma: no cover - huggingface_hub is a transformers dependency
            home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return os.path.join(os.path.expanduser(home), "mscl", name)


def default_video_cache_dir() -> str:
    """``$MSCL_VIDEO_FEATURES_CACHE``, else ``<HF_HOME>/mscl/video_features``."""
    return mscl_home_folder("video_features", CACHE_ENV)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".tmp", mode: Optional[int] = None) -> Iterator[str]:
    """A temporary file beside ``path`` (a dot-file ending in ``suffix``: a writer that picks its format
    from the extension gets the right one) that replaces ``path`` when the block ends without an
    exception, and is removed when it raises. Readers see no file or the whole file, never a part
    (``os.replace`` is atomic); ``mode`` sets the permissions first (``mkstemp`` makes files private)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """``write(f)`` to a binary file object whose content replaces ``path`` atomically once it is on disk
    (:func:`atomic_path`; flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


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
        buf = io.BytesIO()
        np.savez(buf, features=np.ascontiguousarray(result.features, dtype=np.float32), meta=np.array(json.dumps(meta)))
        atomic_write(path, lambda f: f.write(buf.getvalue()))  # readers see nothing or the whole entry
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
class _FrameBatches:
    """``(pixel_values (n, 3, h, w) float32, features per frame)`` batches of a sampler, in time order.

    ``iterate()`` does the work in the calling thread. ``start()`` moves it to a background thread that
    decodes, converts, resizes and normalises the next batches while the caller embeds the current one, and
    hands them over through a queue of at most ``depth`` batches (memory stays flat however long the video:
    the producer blocks when it is ``depth`` batches ahead). The thread's work (FFmpeg decoding and
    ``swscale``, PIL resize, numpy) releases the GIL, so it runs beside the model on another core; on a GPU
    it keeps the device fed. Batches are the same, in the same order, as ``iterate()``'s, so the features
    are identical. An exception in the thread (a damaged file, a processor error) is raised again in the
    caller, unchanged; :meth:`close` (also on the caller's errors) stops the thread and closes the file.
    """

    def __init__(self, sampler: VideoFrameSampler, preprocess: Callable[[np.ndarray], np.ndarray], batch_size: int,
                 *, pin_memory: bool = False, depth: int = PREFETCH_BATCHES):
        self.sampler, self.preprocess, self.batch_size = sampler, preprocess, batch_size
        self.pin_memory, self.depth = pin_memory, max(1, int(depth))
        self._stop = threading.Event()
        self._queue: Optional[queue.Queue] = None
        self._thread: Optional[threading.Thread] = None
        self._callbacks: "collections.deque[Tuple[Callable, tuple]]" = collections.deque()

    def iterate(self) -> Iterator[Tuple[torch.Tensor, List[int]]]:
        pending: List[np.ndarray] = []
        counts: List[int] = []
        frames = iter(self.sampler)
        try:
            for frame in frames:
                if self._stop.is_set():
                    return
                pending.append(self.preprocess(frame.image))  # (3, h, w): no full-size frame is kept
                counts.append(len(frame.indices))
                if len(pending) == self.batch_size:
                    yield self._tensor(pending), counts
                    pending, counts = [], []
            if pending:
                yield self._tensor(pending), counts
        finally:
            frames.close()  # closes the container, also when stopped early

    def _tensor(self, frames: List[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(frames))
        return batch.pin_memory() if self.pin_memory else batch

    # -- background thread ------------------------------------------------------------------------------
    def relay(self, fn: Callable) -> Callable:
        """Wrap a callback (a progress report) so that it runs in the consuming thread, not the decoder's."""
        def post(*args):
            self._callbacks.append((fn, args))
        return post

    def _run_callbacks(self) -> None:
        while self._callbacks:
            fn, args = self._callbacks.popleft()
            fn(*args)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for batch in self.iterate():
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except BaseException as err:  # re-raised in the consumer
            self._put(("error", err))

    def start(self) -> "_FrameBatches":
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._produce, name="mscl-video-decode", daemon=True)
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, List[int]]]:
        if self._thread is None:
            yield from self.iterate()
            return
        while True:
            try:
                kind, payload = self._queue.get(timeout=0.1)
            except queue.Empty:
                kind, payload = "wait", None
            self._run_callbacks()
            if kind == "wait":
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the video decoding thread ended without a result")
                continue
            if kind == "batch":
                yield payload
            elif kind == "end":
                return
            else:
                raise payload

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _threads_leaving_a_core() -> int:
    """torch threads that leave the decoder thread a core of its own (at least 1)."""
    return max(1, _usable_cores() - 1)


# `model_threads="auto"` leaves the decoder thread a core of its own from this many usable cores on. Below, the
# model keeps every core: the decoder needs a fraction of one (0.08-0.2 CPU-s per video second against CLIP's
# 0.3-0.6), so a reserved core would idle most of the time. Measured on 2 cores (docs/video_features.md,
# "Threads"): reserving cost 36% (fp32) and 18% (bf16) on an AMD EPYC, and gained 0-10% on an Intel Xeon.
_RESERVE_DECODER_CORE_FROM = 4


def _model_threads(setting: Any, pipeline: bool, device: torch.device) -> Optional[int]:
    """torch threads to set for the extraction (``None``: leave the current setting)."""
    if setting is None or device.type != "cpu":
        return None
    if setting == "auto":
        if not pipeline or _usable_cores() < _RESERVE_DECODER_CORE_FROM:
            return None
        current = torch.get_num_threads()
        n = min(current, _threads_leaving_a_core())
        return n if n != current else None
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"model_threads must be 'auto', None or a positive integer, got {setting!r}")
    return setting


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
    pipeline: bool = True,
    model_threads: Optional[Any] = "auto",
) -> VideoFeatures:
    """Decode ``path``, sample one frame per stored feature, embed, and cache the result.

    Args:
        path: a video file.
        extractor: an :class:`HFImageFeatureExtractor`, or a ``video_feature_source`` dict to build one.
        batch_size: frames embedded per forward pass.
        cache_dir / use_cache: where the feature cache lives (default :func:`default_video_cache_dir`) and
            whether to use it; a hit returns without decoding anything.
        allow_partial: see :class:`~.video_processing_mscl.VideoFrameSampler` (partial results are not cached).
        progress: tqdm bar while decoding (``None``: long files on a terminal), or a callable
            ``progress(seconds_decoded, stated_duration_or_None)`` (called in the calling thread).
        threads: decoder threads (0: FFmpeg's choice).
        pipeline: decode and preprocess on a background thread, ``PREFETCH_BATCHES`` batches ahead of the
            model (default); ``False``: one after the other in the calling thread. The features are
            identical either way.
        model_threads: torch's intra-op threads while the model runs on the CPU beside the decoder thread.
            ``"auto"`` (default): on 4 or more usable cores, one core fewer than this process may use (never
            more than the current setting), so that the decoder thread has a core of its own instead of
            preempting a thread of every GEMM (libgomp's spinning threads wait for the preempted one); on 2–3
            cores the current setting (the decoder needs a fraction of a core there, and a reserved core
            idles: measured in docs/video_features.md). The setting is restored afterwards. ``None``: leave
            ``torch.get_num_threads()``; an int: that many.

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
    torch_threads = _model_threads(model_threads, pipeline, extractor.device)
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
    batches = _FrameBatches(sampler, extractor.preprocess_frame, batch_size, pin_memory=extractor.device.type == "cuda")
    if pipeline:
        if callable(progress):
            sampler.progress = batches.relay(progress)
        _ = extractor.model  # load the weights before the decoder starts, so that the two do not compete
        batches.start()
    chunks: List[np.ndarray] = []
    threads_before = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        for pixel_values, counts in batches:
            emb = extractor.embed(pixel_values).numpy()  # (n, D)
            chunks.append(np.repeat(emb, counts, axis=0) if any(c != 1 for c in counts) else emb)
    finally:
        batches.close()
        if torch_threads is not None:
            torch.set_num_threads(threads_before)
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
