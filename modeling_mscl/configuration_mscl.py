# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Configuration of MSCL: SnAG's backbone + the paper's multi-scale contrastive losses.

Every hyperparameter of the model, its losses, decoding, data sampling and training recipe lives here;
per-dataset settings are JSON presets in ``modeling_mscl/presets/`` (loaded by
:meth:`MSCLConfig.from_preset`). Choices where the paper and SnAG are silent are documented in the
README's "Implementation notes" and in the field comments below.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from transformers import PretrainedConfig

PRESET_NAMES = (
    "tacos_c3d",
    "mad_clip",
    "ego4d_slowfast_bert",
    "ego4d_egovlp",
    "charades_i3d",
    "charades_c3d",
    "anet_c3d",
    "custom_clip_b32",
    "debug",
)

_CHOICES = {
    "text_encoder_type": ("transformer", "identity"),
    "fusion_mode": ("affine", "adaln"),
    "regression_loss_type": ("diou", "iou"),
    "contrastive_reduction": ("mean", "sum"),
    "query_grouping": ("greedy", "random"),
}


class MSCLConfig(PretrainedConfig):
    r"""Configuration for :class:`~modeling_mscl.MSCLForTemporalGrounding`.

    Groups of fields (SnAG option names in brackets):

    * **Video encoder** — ``video_input_dim`` [vid_net.in_dim], ``hidden_size`` (C) [vid_net.embd_dim],
      ``video_input_stride`` [vid_stride], ``max_video_length`` (model-grid steps) [max_vid_len],
      ``num_embedding_convs`` / ``num_stem_blocks`` / ``num_pyramid_levels`` [arch],
      ``attention_window`` [mha_win_size], ``video_use_abs_pe``, ``num_attention_heads``,
      ``attention_dropout`` / ``hidden_dropout`` / ``drop_path`` [attn/proj/path_pdrop].
    * **Text encoder** — ``text_input_dim``, ``text_hidden_size`` (D), ``text_encoder_type``
      (``"transformer"`` or ``"identity"`` with attention pooling), ``text_num_layers``,
      ``max_text_length``, ``text_use_abs_pe``, ``text_use_background_token``.
    * **Fusion / heads** — ``fusion_num_layers``, ``fusion_mode`` (``"affine"``/``"adaln"``),
      ``head_num_layers``, ``head_prior_prob``.
    * **Label assignment and grounding losses** — ``regression_range``, ``regression_range_sigma``,
      ``center_sampling_radius``, ``focal_alpha``, ``focal_gamma``, ``label_smoothing``,
      ``regression_loss_type``, ``regression_loss_weight`` (ρ_reg), ``loss_normalizer_init``,
      ``loss_normalizer_momentum``.
    * **Contrastive losses (paper Eq. 10–12)** — ``within_loss_weight`` (ρ_within),
      ``cross_loss_weight`` (ρ_cross), ``contrastive_temperature``, ``contrastive_normalize``,
      ``contrastive_reduction``, ``contrastive_negative_ratio`` (|N(l)| / |P(l)|),
      ``contrastive_radius`` (α).
    * **Decoding** — ``pre_nms_threshold``, ``pre_nms_topk``, ``min_segment_length``,
      ``nms_sigma``, ``nms_min_score``, ``max_segments``, ``voting_threshold``,
      ``inference_query_chunk_size``.
    * **Data / time mapping** — ``fps``, ``clip_size``, ``clip_stride``, ``downsample_rate``,
      ``fixed_length`` (``None`` or 256), ``max_queries_per_video``, ``query_grouping``,
      ``crop_ratio``, ``truncation_threshold``.
    * **Training recipe** — ``learning_rate``, ``module_learning_rates``, ``weight_decay``,
      ``batch_size``, ``gradient_accumulation_steps``, ``num_epochs``, ``warmup_epochs``,
      ``ema_decay``, ``max_grad_norm``, ``seed``.
    * **Evaluation / text features** — ``eval_ranks``, ``eval_thresholds``, ``eval_split``,
      ``text_feature_source`` (how sentences become token features for the pipeline),
      ``video_feature_source`` (how a video file becomes video features: a Hugging Face image model and
      its sampling, or ``"precomputed"`` features with how to produce them; see
      :mod:`.video_features_mscl`).
    """

    model_type = "mscl"

    def __init__(
        self,
        # video encoder
        video_input_dim: int = 4096,
        hidden_size: int = 256,
        video_input_stride: int = 1,
        max_video_length: int = 2304,
        num_embedding_convs: int = 2,
        num_stem_blocks: int = 0,
        num_pyramid_levels: int = 8,
        attention_window: int = 19,
        video_use_abs_pe: bool = True,
        num_attention_heads: int = 4,
        attention_dropout: float = 0.0,
        hidden_dropout: float = 0.1,
        drop_path: float = 0.1,
        layer_scale_init: float = 1e-4,
        # text encoder
        text_input_dim: int = 300,
        text_hidden_size: int = 128,
        text_encoder_type: str = "transformer",
        text_num_layers: int = 5,
        max_text_length: int = 48,
        text_use_abs_pe: bool = True,
        text_use_background_token: bool = True,
        # fusion and heads
        fusion_num_layers: int = 2,
        fusion_mode: str = "affine",
        head_num_layers: int = 2,
        head_prior_prob: float = 0.0,
        # label assignment and grounding losses
        regression_range: float = 4.0,
        regression_range_sigma: float = 0.5,
        center_sampling_radius: float = 1.5,
        focal_alpha: float = 0.5,
        focal_gamma: float = 2.0,
        label_smoothing: float = 0.2,
        regression_loss_type: str = "diou",
        regression_loss_weight: float = 1.0,
        loss_normalizer_init: float = 100.0,
        loss_normalizer_momentum: float = 0.9,
        # contrastive losses
        within_loss_weight: float = 1.0,
        cross_loss_weight: float = 1.0,
        contrastive_temperature: float = 0.1,
        contrastive_normalize: bool = True,
        contrastive_reduction: str = "mean",
        contrastive_negative_ratio: float = 1.0,
        contrastive_radius: float = 1.5,
        # decoding
        pre_nms_threshold: float = 1e-3,
        pre_nms_topk: int = 2000,
        min_segment_length: float = 0.1,
        nms_sigma: float = 0.9,
        nms_min_score: float = 1e-3,
        max_segments: int = 5,
        voting_threshold: float = 0.95,
        inference_query_chunk_size: int = 16,
        # data / time mapping
        fps: float = 30.0,
        clip_size: float = 16.0,
        clip_stride: float = 4.0,
        downsample_rate: int = 1,
        fixed_length: Optional[int] = None,
        max_queries_per_video: int = 4,
        query_grouping: str = "greedy",
        crop_ratio: Optional[Sequence[float]] = (0.9, 1.0),
        truncation_threshold: float = 0.5,
        # training recipe
        learning_rate: float = 1e-3,
        module_learning_rates: Optional[Dict[str, float]] = None,
        weight_decay: float = 0.05,
        batch_size: int = 4,
        gradient_accumulation_steps: int = 1,
        num_epochs: int = 10,
        warmup_epochs: int = 5,
        ema_decay: float = 0.999,
        max_grad_norm: float = 1.0,
        seed: int = 1234567891,
        # evaluation / text features
        eval_ranks: Sequence[int] = (1, 5),
        eval_thresholds: Sequence[float] = (0.3, 0.5),
        eval_split: str = "test",
        text_feature_source: Optional[Dict[str, Any]] = None,
        video_feature_source: Optional[Dict[str, Any]] = None,
        preset: Optional[str] = None,
        **kwargs,
    ):
        self.video_input_dim = int(video_input_dim)
        self.hidden_size = int(hidden_size)
        self.video_input_stride = int(video_input_stride)
        self.max_video_length = int(max_video_length)
        self.num_embedding_convs = int(num_embedding_convs)
        self.num_stem_blocks = int(num_stem_blocks)
        self.num_pyramid_levels = int(num_pyramid_levels)
        self.attention_window = int(attention_window)
        self.video_use_abs_pe = bool(video_use_abs_pe)
        self.num_attention_heads = int(num_attention_heads)
        self.attention_dropout = float(attention_dropout)
        self.hidden_dropout = float(hidden_dropout)
        self.drop_path = float(drop_path)
        self.layer_scale_init = float(layer_scale_init)

        self.text_input_dim = int(text_input_dim)
        self.text_hidden_size = int(text_hidden_size)
        self.text_encoder_type = text_encoder_type
        self.text_num_layers = int(text_num_layers)
        self.max_text_length = int(max_text_length)
        self.text_use_abs_pe = bool(text_use_abs_pe)
        self.text_use_background_token = bool(text_use_background_token)

        self.fusion_num_layers = int(fusion_num_layers)
        self.fusion_mode = fusion_mode
        self.head_num_layers = int(head_num_layers)
        self.head_prior_prob = float(head_prior_prob)

        self.regression_range = float(regression_range)
        self.regression_range_sigma = float(regression_range_sigma)
        self.center_sampling_radius = float(center_sampling_radius)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.label_smoothing = float(label_smoothing)
        self.regression_loss_type = regression_loss_type
        self.regression_loss_weight = float(regression_loss_weight)
        self.loss_normalizer_init = float(loss_normalizer_init)
        self.loss_normalizer_momentum = float(loss_normalizer_momentum)

        self.within_loss_weight = float(within_loss_weight)
        self.cross_loss_weight = float(cross_loss_weight)
        self.contrastive_temperature = float(contrastive_temperature)
        self.contrastive_normalize = bool(contrastive_normalize)
        self.contrastive_reduction = contrastive_reduction
        self.contrastive_negative_ratio = float(contrastive_negative_ratio)
        self.contrastive_radius = float(contrastive_radius)

        self.pre_nms_threshold = float(pre_nms_threshold)
        self.pre_nms_topk = int(pre_nms_topk)
        self.min_segment_length = float(min_segment_length)
        self.nms_sigma = float(nms_sigma)
        self.nms_min_score = float(nms_min_score)
        self.max_segments = int(max_segments)
        self.voting_threshold = float(voting_threshold)
        self.inference_query_chunk_size = int(inference_query_chunk_size)

        self.fps = float(fps)
        self.clip_size = float(clip_size)
        self.clip_stride = float(clip_stride)
        self.downsample_rate = int(downsample_rate)
        self.fixed_length = None if fixed_length is None else int(fixed_length)
        self.max_queries_per_video = int(max_queries_per_video)
        self.query_grouping = query_grouping
        self.crop_ratio = None if crop_ratio is None else [float(c) for c in crop_ratio]
        self.truncation_threshold = float(truncation_threshold)

        self.learning_rate = float(learning_rate)
        self.module_learning_rates = dict(module_learning_rates or {})
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)
        self.gradient_accumulation_steps = int(gradient_accumulation_steps)
        self.num_epochs = int(num_epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.ema_decay = float(ema_decay)
        self.max_grad_norm = float(max_grad_norm)
        self.seed = int(seed)

        self.eval_ranks = [int(r) for r in eval_ranks]
        self.eval_thresholds = [float(t) for t in eval_thresholds]
        self.eval_split = eval_split
        self.text_feature_source = dict(text_feature_source) if text_feature_source else None
        self.video_feature_source = dict(video_feature_source) if video_feature_source else None
        self.preset = preset
        super().__init__(**kwargs)
        self.validate_mscl()

    # ------------------------------------------------------------------------------------------
    def validate_mscl(self) -> None:
        """Reject inconsistent settings with an error that names the field."""
        for field, choices in _CHOICES.items():
            if getattr(self, field) not in choices:
                raise ValueError(f"MSCLConfig.{field} must be one of {choices}, got {getattr(self, field)!r}")
        for field in ("video_input_dim", "hidden_size", "text_input_dim", "text_hidden_size",
                      "num_pyramid_levels", "num_attention_heads", "max_video_length", "max_text_length"):
            if getattr(self, field) < 1:
                raise ValueError(f"MSCLConfig.{field} must be >= 1, got {getattr(self, field)}")
        if self.attention_window < 1 or self.attention_window % 2 == 0:
            raise ValueError(f"MSCLConfig.attention_window must be a positive odd number, got {self.attention_window}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MSCLConfig.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.text_hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MSCLConfig.text_hidden_size ({self.text_hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.text_encoder_type == "identity" and self.text_hidden_size != self.text_input_dim:
            raise ValueError(
                "MSCLConfig: the 'identity' text encoder keeps the token width, so text_hidden_size "
                f"({self.text_hidden_size}) must equal text_input_dim ({self.text_input_dim})"
            )
        if self.video_input_stride not in (1, 2):
            raise ValueError(f"MSCLConfig.video_input_stride must be 1 or 2, got {self.video_input_stride}")
        if self.video_input_stride == 2 and self.num_embedding_convs < 1:
            raise ValueError("MSCLConfig: video_input_stride 2 needs at least one embedding conv")
        if self.contrastive_temperature <= 0:
            raise ValueError(f"MSCLConfig.contrastive_temperature must be > 0, got {self.contrastive_temperature}")
        if self.contrastive_negative_ratio <= 0:
            raise ValueError(f"MSCLConfig.contrastive_negative_ratio must be > 0, got {self.contrastive_negative_ratio}")
        if self.max_video_length % self.pyramid_stride:
            raise ValueError(
                f"MSCLConfig.max_video_length ({self.max_video_length}) must be divisible by the top "
                f"pyramid stride 2^(num_pyramid_levels-1) = {self.pyramid_stride}"
            )

    # ------------------------------------------------------------------------------------------
    @property
    def pyramid_stride(self) -> int:
        """Stride of the coarsest level on the model grid."""
        return 2 ** (self.num_pyramid_levels - 1)

    @property
    def regression_ranges(self) -> List[List[float]]:
        """Per-level ``[lo, hi)`` ranges on ``max(d_s, d_e)`` in grid units (SnAG §2.1)."""
        ranges: List[List[float]] = []
        hi_prev = None
        for level in range(self.num_pyramid_levels):
            if level == 0:
                lo, hi = 0.0, self.regression_range
            else:
                lo, hi = self.regression_range_sigma * hi_prev, 2.0 * hi_prev
            hi_prev = hi
            ranges.append([lo, hi])
        if self.num_pyramid_levels > 1:
            ranges[-1][1] = max(ranges[-1][1], float(self.max_video_length + 1))
        else:
            ranges[-1][1] = math.inf
        return ranges

    @property
    def use_contrastive(self) -> bool:
        return self.within_loss_weight > 0 or self.cross_loss_weight > 0

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def preset_path(name: str) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets", f"{name}.json")

    @classmethod
    def load_preset_dict(cls, name: str) -> Dict[str, Any]:
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESET_NAMES)}")
        path = cls.preset_path(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"preset file for {name!r} is missing: {path}")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data.pop("_comment", None)
        return data

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MSCLConfig":
        """Build the configuration of a named dataset setting (``tacos_c3d``, ``mad_clip``, …, ``debug``).

        Keyword overrides replace preset values; unknown keys are an error.
        """
        values = cls.load_preset_dict(name)
        known = set(cls().to_dict()) | set(values)
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            raise ValueError(f"unknown MSCLConfig field(s) in overrides: {', '.join(unknown)}")
        values.update(overrides)
        values["preset"] = name
        return cls(**values)

    @classmethod
    def from_snag_opt(cls, opt: Dict[str, Any]) -> "MSCLConfig":
        """Map a merged SnAG options dict (``opt.yaml`` + code defaults) onto an :class:`MSCLConfig`.

        Every option SnAG's model uses is mapped; a value the package does not implement raises.
        """
        from .snag_options_mscl import config_kwargs_from_snag_opt

        return cls(**config_kwargs_from_snag_opt(opt))
