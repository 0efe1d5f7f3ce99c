# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``video-temporal-grounding``: a :class:`transformers.Pipeline` that grounds sentences in a video.

Usage::

    from transformers import pipeline

    pipe = pipeline(model="path/or/repo", trust_remote_code=True)   # works without the package installed
    pipe("movie.npy", ["a man opens the door", "the car drives away"], fps=5.0)
    # [{"query": "a man opens the door", "moments": [{"start": 12.4, "end": 17.0, "score": 0.83}, ...]},
    #  {"query": "the car drives away",  "moments": [...]}]
    pipe("movie.mp4", "a man opens the door")   # a video file (checkpoints with a video_feature_source)

With the package imported (``import modeling_mscl``) the task is also registered by name:
``pipeline("video-temporal-grounding", model=model)``.

Inputs
------
``pipe(video, queries, **params)`` grounds ``queries`` in one video; ``pipe({"video": ..., "queries": ...,
"duration": ...})`` does the same from a dict (per-video time fields in the dict win over call params);
``pipe([dict, dict, ...])`` grounds several videos and returns one result per video (a generator of dicts gives
a lazy iterator of results).

* ``video``: ``(T, video_input_dim)`` features (NumPy array or torch tensor, time-major) or a path to a
  ``.npy`` / ``.pt`` file holding that array (``.pt`` is read with ``torch.load(weights_only=True)``).
  Any length works: the video is encoded once and never cropped or padded to the training length.
* ``video`` may also be a **video file** (any other path: mp4, mkv, webm, mov, avi, ...), for checkpoints
  whose ``config.video_feature_source`` names a Hugging Face image model (``mad_clip``,
  ``custom_clip_b32``): the file is decoded (PyAV, ``pip install mscl[video]``), one frame per feature is
  sampled at the times of the checkpoint's time mapping and embedded, and the features are cached on disk,
  so a second question about the same file decodes nothing (:mod:`.video_features_mscl`,
  :mod:`.video_processing_mscl`). Moments are in seconds of the file's own timeline; ``duration`` defaults to
  the file's (the container's, or the end of its last frame when the container states none or lies). A
  file given to a checkpoint whose features have no Hugging Face extractor (C3D, I3D, SlowFast, EgoVLP) is
  an error that says which features it needs and how to produce them. Time-mapping parameters other than
  ``duration`` must equal the checkpoint's for a file (the sampling is fixed by the extractor).
* ``queries``: one query or a list of them. A query is a sentence (``str``, embedded by the checkpoint's
  text encoder, see :mod:`.text_embedding_mscl`), precomputed token features (array ``(L, text_input_dim)``),
  or a dict with ``"sentence"`` and/or ``"text_features"`` (and optionally ``"query_id"``), e.g. the query
  rows of the package's datasets; token features win over the sentence when both are given.

Parameters (call or constructor)
--------------------------------
* Time mapping: ``fps``, ``clip_size`` (frames per feature), ``clip_stride`` (frames between stored
  features), ``downsample_rate`` (keep every k-th stored feature, ``features[::k]``, as the data pipeline
  does) default to the checkpoint's config (the preset's values); ``duration`` (seconds) defaults to the
  end of the last clip, ``((T - 1) * clip_stride + clip_size) / fps``. Giving only ``duration`` keeps the
  preset's feature rate and clamps the moments to ``[0, duration]``. ``time_mapping`` (a ``TimeMapping`` or
  its dict) sets all of them at once; explicit parameters override its fields.
* ``top_k``: moments kept per query (default ``config.max_segments``; Soft-NMS keeps that many).
* ``threshold``: drop moments whose score is below it (default: keep all).
* ``query_chunk_size``: queries encoded and decoded at once (default: the model's choice).
* Video files only: ``allow_partial`` (default ``False``: a truncated or damaged file is an error; ``True``
  grounds in the decodable part and marks every result ``"partial": True`` with ``"decoded_duration"``),
  ``progress`` (tqdm bar while decoding; default: files longer than a minute, on a terminal).

Precision: the model's dtype. ``pipeline(..., dtype=torch.bfloat16)`` runs the model in bfloat16 (fast on
CPUs with AMX or AVX-512-BF16 and on GPUs, slower than float32 on AVX2-only CPUs); float32 is the default.

Constructor-only: ``text_encoder`` (a callable ``str -> (L, D)`` array), ``text_feature_source`` (a dict
replacing ``config.text_feature_source``; written into the config by ``save_pretrained``) and
``word_vectors_path`` (GloVe-format text file for word-vector checkpoints); for video files
``video_feature_source`` (a dict replacing ``config.video_feature_source``, saved likewise),
``video_cache_dir`` (feature cache folder; default ``$MSCL_VIDEO_FEATURES_CACHE`` or
``<HF_HOME>/mscl/video_features``; ``False`` disables the cache) and ``video_batch_size`` (frames embedded
per forward pass, default 32).

Fixed-length checkpoints (``config.fixed_length``, Charades / ANet) resample the (subsampled) video to that
many steps and map moments back with the per-video stride, exactly as evaluation does.

Output
------
Per query a dict ``{"query": <sentence or None>, "moments": [{"start": s, "end": s, "score": p}, ...]}``
(plus ``"query_id"`` when the query dict had one). Moments are in seconds, inside ``[0, duration]``, sorted
by decreasing score. A single (non-list) query gives one such dict, a list gives a list of them; a list of
video dicts gives a list with one such result per video.

This file travels with checkpoints (``custom_pipelines``), so it imports only its flat siblings, relatively.
"""

from __future__ import annotations

import math
import os
import types
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from transformers import Pipeline

from .processing_mscl import (
    TimeMapping,
    as_feature_tensor,
    resample_to_fixed_length,
    validate_query_features,
    validate_video_features,
)
from .video_processing_mscl import is_video_file_path

__all__ = ["MSCLGroundingPipeline", "TASK_NAME"]

TASK_NAME = "video-temporal-grounding"

_TIME_FIELDS = ("fps", "clip_size", "clip_stride", "downsample_rate", "duration")
_VIDEO_KEYS = ("video", "video_features")
_PREPROCESS_PARAMS = ("fps", "clip_size", "clip_stride", "downsample_rate", "duration", "time_mapping", "allow_partial",
                      "progress")
_FORWARD_PARAMS = ("top_k", "query_chunk_size")
_POSTPROCESS_PARAMS = ("threshold",)


def _as_video_dict(item) -> Dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError(f"a generator input must yield one dict per video, got {type(item).__name__}")
    return dict(item)


class MSCLGroundingPipeline(Pipeline):
    """Video temporal grounding with an MSCL checkpoint (see the module docstring for inputs and output)."""

    # no tokenizer / processor is loaded from the checkpoint folder: sentences go through the text encoder
    # named in config.text_feature_source, which is built lazily on the first sentence
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(
        self,
        model,
        *args,
        text_encoder=None,
        text_feature_source: Optional[Mapping[str, Any]] = None,
        word_vectors_path: Optional[str] = None,
        video_feature_source: Optional[Mapping[str, Any]] = None,
        video_cache_dir=None,
        video_batch_size: int = 32,
        **kwargs,
    ):
        if text_encoder is not None and not callable(text_encoder):
            raise ValueError(f"text_encoder must be a callable str -> (L, D) features, got {type(text_encoder).__name__}")
        self._text_encoder = text_encoder
        self._text_source_override = None if text_feature_source is None else dict(text_feature_source)
        self._word_vectors_path = None if word_vectors_path is None else os.fspath(word_vectors_path)
        self._video_source_override = None if video_feature_source is None else dict(video_feature_source)
        self._video_extractor = None
        self._video_cache_dir = video_cache_dir
        if isinstance(video_batch_size, bool) or not isinstance(video_batch_size, int) or video_batch_size < 1:
            raise ValueError(f"video_batch_size must be a positive integer, got {video_batch_size!r}")
        self._video_batch_size = video_batch_size
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        super().__init__(model, *args, **kwargs)
        # `pipeline(model=<folder>, dtype=...)` loads the weights in that dtype; a model *instance* passed with
        # an explicit dtype is converted here (the base class would ignore it), so both give the same pipeline
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype, None)
        if isinstance(dtype, torch.dtype) and dtype.is_floating_point and self.model.dtype != dtype:
            self.model.to(dtype)
        self.model.eval()

    # ------------------------------------------------------------------------------------------------
    # parameters
    # ------------------------------------------------------------------------------------------------
    def _sanitize_parameters(self, **kwargs):
        unknown = sorted(k for k in kwargs if k not in _PREPROCESS_PARAMS + _FORWARD_PARAMS + _POSTPROCESS_PARAMS)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for the {TASK_NAME} pipeline; expected some of "
                f"{', '.join(_PREPROCESS_PARAMS + _FORWARD_PARAMS + _POSTPROCESS_PARAMS)}"
            )
        pre = {k: kwargs[k] for k in _PREPROCESS_PARAMS if kwargs.get(k) is not None}
        for flag in ("allow_partial", "progress"):
            if flag in pre and not isinstance(pre[flag], bool):
                raise ValueError(f"{flag} must be True or False, got {pre[flag]!r}")
        fwd = {k: kwargs[k] for k in _FORWARD_PARAMS if kwargs.get(k) is not None}
        post = {k: kwargs[k] for k in _POSTPROCESS_PARAMS if kwargs.get(k) is not None}
        if "top_k" in fwd:
            top_k = fwd["top_k"]
            if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
            fwd["top_k"] = int(top_k)
        if "query_chunk_size" in fwd:
            q = fwd["query_chunk_size"]
            if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
                raise ValueError(f"query_chunk_size must be a positive integer, got {q!r}")
        if "threshold" in post:
            t = post["threshold"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 1.0:
                raise ValueError(f"threshold must be a score in [0, 1], got {t!r}")
            post["threshold"] = float(t)
        return pre, fwd, post

    # ------------------------------------------------------------------------------------------------
    # entry point
    # ------------------------------------------------------------------------------------------------
    def __call__(self, video=None, queries=None, **kwargs):
        """Ground ``queries`` in ``video`` (or every video of a list of dicts); see the module docstring."""
        if video is None:
            raise ValueError("no video given: pass (T, D) video features, a .npy/.pt path, or a dict with 'video'")
        if isinstance(video, Mapping):
            if queries is not None:
                raise ValueError("give the queries inside the video dict ('queries') or as the second argument, not both")
            return super().__call__(dict(video), **kwargs)
        if isinstance(video, (list, tuple)):
            if not video or not all(isinstance(v, Mapping) for v in video):
                raise ValueError(
                    "a list input must hold one dict per video ({'video': ..., 'queries': ...}); pass a single video's "
                    "features as a NumPy array or torch tensor, not a nested list"
                )
            if queries is not None:
                raise ValueError("with a list of video dicts, put each video's queries in its dict ('queries')")
            # the base class runs a list item by item (batch_size 1: each video is already a batch of queries)
            return super().__call__([dict(v) for v in video], **kwargs)
        if isinstance(video, types.GeneratorType):
            if queries is not None:
                raise ValueError("with a generator of video dicts, put each video's queries in its dict ('queries')")
            # streamed lazily by the base class: returns an iterator of per-video results
            return super().__call__((_as_video_dict(v) for v in video), **kwargs)
        return super().__call__({"video": video, "queries": queries}, **kwargs)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # one video per forward: its queries are batched inside `model.ground`, and videos of different
        # lengths cannot be stacked without changing what the encoder sees
        return super().get_iterator(inputs, num_workers, 1, preprocess_params, forward_params, postprocess_params)

    # ------------------------------------------------------------------------------------------------
    # preprocess: features, time mapping, queries
    # ------------------------------------------------------------------------------------------------
    def preprocess(self, inputs: Dict[str, Any], **params) -> Dict[str, Any]:
        cfg = self.model.config
        inputs = dict(inputs)
        video_key = next((k for k in _VIDEO_KEYS if k in inputs), None)
        if video_key is None:
            raise ValueError(f"the video dict needs a 'video' entry (features or a path); got keys {sorted(inputs)}")
        video = inputs[video_key]
        from_file = None
        if is_video_file_path(video):
            from_file = self.extract_video_features(
                video, allow_partial=bool(params.get("allow_partial", False)), progress=params.get("progress")
            )
            features = self._load_video(from_file.features)
        else:
            features = self._load_video(video)
        mapping = self._time_mapping(features.shape[0], inputs, params, from_file)

        k = int(mapping.downsample_rate)
        if k > 1:
            # stride subsampling, as the data pipeline does (SnAG §8.9: no averaging)
            features = features[::k]
        if cfg.fixed_length is not None:
            num_features = int(features.shape[0])
            features = resample_to_fixed_length(features, int(cfg.fixed_length))
            mapping = mapping.with_fixed_length(num_features, int(cfg.fixed_length))

        queries, info, single = self._collect_queries(inputs.get("queries"))
        out = {"video": features.contiguous(), "queries": queries, "query_info": info, "single": single, "mapping": mapping}
        if from_file is not None and from_file.partial:
            out["partial"] = {"partial": True, "decoded_duration": float(from_file.decoded_end)}
        return out

    def _load_video(self, video) -> torch.Tensor:
        cfg = self.model.config
        source = ""
        if isinstance(video, (str, os.PathLike)):
            path = os.fspath(video)
            source = f" (from {path!r})"
            if not os.path.isfile(path):
                raise ValueError(f"video feature file not found: {path!r}")
            ext = os.path.splitext(path)[1].lower()
            if ext == ".npy":
                video = np.load(path, allow_pickle=False)
            elif ext in (".pt", ".pth"):
                video = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(video, Mapping):
                    tensors = [v for v in video.values() if isinstance(v, torch.Tensor)]
                    if len(tensors) != 1:
                        raise ValueError(f"{path!r} holds a dict with {len(tensors)} tensors; expected one (T, D) tensor")
                    video = tensors[0]
            else:
                raise ValueError(f"unsupported video feature file {path!r}: expected a .npy or .pt file")
        if not isinstance(video, (torch.Tensor, np.ndarray)):
            raise ValueError(
                f"video features must be a NumPy array, a torch tensor or a .npy/.pt path, got {type(video).__name__}"
            )
        tensor = as_feature_tensor(video, "video features", device="cpu", source=source)
        validate_video_features(tensor, cfg, source=source)
        return tensor

    def _time_mapping(self, num_stored: int, inputs: Mapping[str, Any], params: Mapping[str, Any], from_file=None) -> TimeMapping:
        cfg = self.model.config
        values: Dict[str, Any] = {"fps": cfg.fps, "clip_size": cfg.clip_size, "clip_stride": cfg.clip_stride,
                                  "downsample_rate": cfg.downsample_rate, "duration": None}
        # precedence: config < time_mapping param < explicit params < the same fields in the video dict
        for layer in (params.get("time_mapping"), params, inputs.get("time_mapping"), inputs):
            if layer is None:
                continue
            if isinstance(layer, TimeMapping) or hasattr(layer, "to_dict"):
                layer = layer.to_dict()
            if not isinstance(layer, Mapping):
                raise ValueError(f"time_mapping must be a TimeMapping or a dict, got {type(layer).__name__}")
            for name in _TIME_FIELDS:
                if layer.get(name) is not None:
                    values[name] = layer[name]
        for name in _TIME_FIELDS:
            v = values[name]
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if int(values["downsample_rate"]) != values["downsample_rate"]:
            raise ValueError(f"downsample_rate must be a positive integer, got {values['downsample_rate']!r}")
        if from_file is not None:
            # the extractor fixed the sampling: other time mappings would read the features at wrong times
            fixed = {**from_file.sampling, "downsample_rate": cfg.downsample_rate}
            wrong = [f"{k}={values[k]!r}" for k in fixed if abs(float(values[k]) - float(fixed[k])) > 1e-9 * max(1.0, abs(float(fixed[k])))]
            if wrong:
                raise ValueError(
                    f"{from_file.path!r}: features extracted from a video file follow the checkpoint's sampling "
                    f"({', '.join(f'{k}={v:g}' for k, v in fixed.items())}); got {', '.join(wrong)}"
                )
            if values["duration"] is None:
                values["duration"] = from_file.duration
        fps, clip_size, clip_stride = float(values["fps"]), float(values["clip_size"]), float(values["clip_stride"])
        duration = values["duration"]
        if duration is None:
            # the end of the last stored clip
            duration = ((num_stored - 1) * clip_stride + clip_size) / fps
        return TimeMapping(
            fps=fps, clip_size=clip_size, clip_stride=clip_stride, downsample_rate=int(values["downsample_rate"]),
            input_stride=int(cfg.video_input_stride), duration=float(duration),
        )

    def _collect_queries(self, queries):
        if queries is None:
            raise ValueError("no query given: pass a sentence, token features (L, D), or a list of them")
        single = not isinstance(queries, (list, tuple))
        if single:
            if isinstance(queries, (np.ndarray, torch.Tensor)) and queries.ndim == 3:
                queries, single = list(queries), False  # (N, L, D): N unpadded queries
            else:
                queries = [queries]
        if len(queries) == 0:
            raise ValueError("the list of queries is empty")
        items, info = [], []
        for i, q in enumerate(queries):
            query_id = None
            sentence = None
            features = None
            if isinstance(q, Mapping):
                query_id = q.get("query_id")
                sentence = q.get("sentence", q.get("query"))
                features = q.get("text_features")
                if sentence is None and features is None:
                    raise ValueError(f"query {i}: a query dict needs 'sentence' or 'text_features', got keys {sorted(q)}")
            elif isinstance(q, str):
                sentence = q
            else:
                features = q
            if sentence is not None and not isinstance(sentence, str):
                raise ValueError(f"query {i}: the sentence must be a str, got {type(sentence).__name__}")
            if features is not None:
                items.append(self._check_text_features(features, i))
            else:
                if not sentence.strip():
                    raise ValueError(f"query {i} is an empty sentence")
                items.append(sentence)
            entry = {"query": sentence}
            if query_id is not None:
                entry["query_id"] = query_id
            info.append(entry)
        return items, info, single

    def _check_text_features(self, features, index: int) -> torch.Tensor:
        t = as_feature_tensor(features, f"query {index}: token features", device="cpu")
        validate_query_features(t, self.model.config, index)
        return t

    # ------------------------------------------------------------------------------------------------
    # text encoder
    # ------------------------------------------------------------------------------------------------
    @property
    def text_feature_source(self) -> Optional[Dict[str, Any]]:
        """The sentence encoder in use: the constructor override, else ``config.text_feature_source``."""
        if self._text_source_override is not None:
            return self._text_source_override
        return getattr(self.model.config, "text_feature_source", None)

    @property
    def text_encoder(self):
        """The sentence → token-features callable (built on first use from :attr:`text_feature_source`)."""
        if self._text_encoder is None:
            from .text_embedding_mscl import build_text_encoder

            self._text_encoder = build_text_encoder(
                self.text_feature_source, int(self.model.config.text_input_dim),
                word_vectors_path=self._word_vectors_path, device=self.device,
            )
        return self._text_encoder

    def embed_sentence(self, sentence: str) -> torch.Tensor:
        """Token features ``(L, text_input_dim)`` of one sentence, checked against the checkpoint."""
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"cannot embed an empty sentence ({sentence!r})")
        feats = self.text_encoder(sentence)
        if not isinstance(feats, torch.Tensor):
            feats = torch.as_tensor(np.asarray(feats, dtype=np.float32))
        dim = int(self.model.config.text_input_dim)
        if feats.ndim != 2 or feats.shape[1] != dim:
            raise ValueError(
                f"the text encoder returned token features of shape {tuple(feats.shape)} for {sentence!r}, but the "
                f"checkpoint expects (L, text_input_dim={dim})"
            )
        if feats.shape[0] == 0:
            raise ValueError(f"the text encoder returned no token for {sentence!r}")
        return feats.detach().to(torch.float32)

    # ------------------------------------------------------------------------------------------------
    # video files
    # ------------------------------------------------------------------------------------------------
    @property
    def video_feature_source(self) -> Optional[Dict[str, Any]]:
        """How video files become features: the constructor override, else ``config.video_feature_source``."""
        if self._video_source_override is not None:
            return self._video_source_override
        return getattr(self.model.config, "video_feature_source", None)

    @property
    def video_extractor(self):
        """The frame-feature extractor (built on first use from :attr:`video_feature_source`)."""
        if self._video_extractor is None:
            from .video_features_mscl import (
                build_video_extractor,
                check_video_source_matches_config,
                normalize_video_feature_source,
            )

            cfg = self.model.config
            source = normalize_video_feature_source(self.video_feature_source)
            if source["type"] == "hf":
                check_video_source_matches_config(source, cfg)
            self._video_extractor = build_video_extractor(source, int(cfg.video_input_dim), device=self.device)
        return self._video_extractor

    def extract_video_features(self, path, *, allow_partial: bool = False, progress: Optional[bool] = None):
        """Features of a video file as this checkpoint reads them (cached): a ``VideoFeatures`` with
        ``features`` ``(T, video_input_dim)``, ``duration``, ``partial``, ``from_cache``, ..."""
        from .video_features_mscl import NoVideoExtractorError, extract_video_features, normalize_video_feature_source

        path = os.fspath(path)
        cfg = self.model.config
        if not os.path.isfile(path):
            raise ValueError(f"video file not found: {path!r}" if not os.path.exists(path) else f"not a file: {path!r}")
        if normalize_video_feature_source(self.video_feature_source)["type"] != "hf":
            from .video_features_mscl import describe_missing_extractor

            raise NoVideoExtractorError(describe_missing_extractor(
                self.video_feature_source, int(cfg.video_input_dim),
                what=f"{path!r} is a video file (not a .npy or .pt feature file), but ",
            ))
        extractor = self.video_extractor
        cache_dir = self._video_cache_dir
        result = extract_video_features(
            path, extractor, batch_size=self._video_batch_size, cache_dir=cache_dir or None,
            use_cache=cache_dir is not False, allow_partial=allow_partial, progress=progress,
        )
        if result.features.shape[1] != cfg.video_input_dim:
            raise ValueError(
                f"the video extractor {extractor.source['name_or_path']!r} produces {result.features.shape[1]}-d features but "
                f"the checkpoint expects video_input_dim={cfg.video_input_dim}"
            )
        return result

    # ------------------------------------------------------------------------------------------------
    # forward / postprocess
    # ------------------------------------------------------------------------------------------------
    def _forward(self, model_inputs: Dict[str, Any], top_k: Optional[int] = None, query_chunk_size: Optional[int] = None):
        cache: Dict[str, torch.Tensor] = {}
        queries = []
        for q in model_inputs["queries"]:
            if isinstance(q, str):
                if q not in cache:
                    cache[q] = self.embed_sentence(q).to(self.device)
                q = cache[q]
            queries.append(q)
        # one call: the video is encoded once, the queries are fused in memory-bounded chunks and the
        # moments come back in seconds (post_process_grounding with this video's time mapping)
        moments = self.model.ground(
            model_inputs["video"], queries, max_segments=top_k, query_chunk_size=query_chunk_size,
            time_mapping=model_inputs["mapping"],
        )
        return {
            "moments": [m.detach().cpu() for m in moments],
            "query_info": model_inputs["query_info"],
            "single": model_inputs["single"],
            "partial": model_inputs.get("partial"),
        }

    def postprocess(self, model_outputs: Dict[str, Any], threshold: Optional[float] = None):
        results = []
        for pred, info in zip(model_outputs["moments"], model_outputs["query_info"]):
            pred = pred.double().numpy().reshape(-1, 3)  # (start s, end s, score), best first
            moments = [
                {"start": float(start), "end": float(end), "score": float(score)}
                for start, end, score in pred
                if threshold is None or score >= threshold
            ]
            results.append({**info, "moments": moments, **(model_outputs.get("partial") or {})})
        return results[0] if model_outputs["single"] else results

    # ------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, **kwargs):
        """Save the model, its code and this pipeline's code (``custom_pipelines``) into ``save_directory``.

        A ``text_feature_source`` / ``video_feature_source`` given to the constructor is written into the saved
        config so the folder reproduces this pipeline; ``word_vectors_path``, a ``text_encoder`` callable and
        the video cache settings are not saved.
        """
        if self._text_source_override is not None:
            self.model.config.text_feature_source = dict(self._text_source_override)
        if self._video_source_override is not None:
            self.model.config.video_feature_source = dict(self._video_source_override)
        return super().save_pretrained(save_directory, **kwargs)
