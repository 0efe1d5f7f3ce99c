# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Configuration of MSCL: SnAG's backbone + the paper's multi-scale contrastive losses.

Every hyperparameter that defines the model lives here: architecture, losses, decoding, time mapping and
feature sources. How a model is *trained* (learning rates, batch size, epochs, EMA, seed, the sampling of
training samples, the evaluation protocol) is the training recipe,
:class:`modeling_mscl.training.TrainingRecipe`, which never travels with a checkpoint. Per-dataset
settings are JSON presets in ``modeling_mscl/presets/`` with a ``model`` section (loaded by
:meth:`MSCLConfig.from_preset`) and a ``training`` section (loaded by ``TrainingRecipe.from_preset``).
Choices where the paper and SnAG are silent are documented in the README's "Implementation notes" and in
the field comments below.

Folders saved before the recipe moved out of the configuration carry recipe keys (``learning_rate``,
``batch_size``, ...) in their ``config.json``. :meth:`MSCLConfig.from_dict` (hence ``from_pretrained``,
``AutoConfig`` and ``AutoModel``) drops them: they describe how that model was trained, not the model,
and keeping them as stray attributes would re-save them with every copy. Passing one to the constructor
is an error that names the recipe.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Dict, List, Optional

from transformers import PretrainedConfig

logger = logging.getLogger(__name__)

PRESET_NAMES = (
    "tacos_c3d",
    "mad_clip",
    "ego4d_slowfast_bert",
    "ego4d_egovlp",
    "charades_i3d",
    "charades_c3d",
    "anet_c3d",
    "custom_clip_b32",
    "quickstart",
)

#: Presets that were renamed: old name -> new name (``config.json`` files may still record the old one).
RENAMED_PRESETS = {"debug": "quickstart"}

#: Keys of a preset file: its two sections (``_``-prefixed keys are comments).
PRESET_SECTIONS = ("model", "training")

#: Training-recipe keys that ``config.json`` files saved before the recipe left the configuration carry.
#: ``from_dict``/``from_pretrained`` drop them; the constructor refuses them (see the module docstring).
LEGACY_RECIPE_KEYS = frozenset({
    "learning_rate", "module_learning_rates", "weight_decay", "batch_size", "gradient_accumulation_steps",
    "num_epochs", "warmup_epochs", "ema_decay", "max_grad_norm", "seed", "max_queries_per_video",
    "query_grouping", "crop_ratio", "truncation_threshold", "eval_ranks", "eval_thresholds", "eval_split",
})

_CHOICES = {
    "text_encoder_type": ("transformer", "identity"),
    "fusion_mode": ("affine", "adaln"),
    "regression_loss_type": ("diou", "iou"),
    "contrastive_reduction": ("mean", "sum"),
}


def preset_path(name: str) -> str:
    """The JSON file of preset ``name``."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets", f"{name}.json")


def load_preset(name: str) -> Dict[str, Dict[str, Any]]:
    """Both sections of preset ``name``: ``{"model": {...}, "training": {...}}`` (comments removed)."""
    if name not in PRESET_NAMES:
        hint = f" (renamed to {RENAMED_PRESETS[name]!r})" if name in RENAMED_PRESETS else ""
        raise ValueError(f"unknown preset {name!r}{hint}; available presets: {', '.join(PRESET_NAMES)}")
    path = preset_path(name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"preset file for {name!r} is missing: {path}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    unknown = sorted(k for k in data if k not in PRESET_SECTIONS)
    missing = [k for k in PRESET_SECTIONS if not isinstance(data.get(k), dict)]
    if unknown or missing:
        raise ValueError(
            f"preset file {path}: expected the sections {', '.join(PRESET_SECTIONS)} (objects)"
            + (f"; unknown key(s) {', '.join(unknown)}" if unknown else "")
            + (f"; missing {', '.join(missing)}" if missing else "")
        )
    return {k: {kk: vv for kk, vv in data[k].items() if not kk.startswith("_")} for k in PRESET_SECTIONS}


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
    * **Time mapping** — ``fps``, ``clip_size``, ``clip_stride``, ``downsample_rate``,
      ``fixed_length`` (``None`` or 256).
    * **Feature sources** — ``text_feature_source`` (how sentences become token features for the pipeline),
      ``video_feature_source`` (how a video file becomes video features: a Hugging Face image model and
      its sampling, or ``"precomputed"`` features with how to produce them; see :mod:`.video_features_mscl`).
    * ``preset`` — the preset the configuration came from (informational; picks the model card).

    The training recipe (learning rates, batch size, epochs, EMA, seed, training-sample grouping and
    crops, the evaluation protocol) is :class:`modeling_mscl.training.TrainingRecipe`.
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
        # feature sources
        text_feature_source: Optional[Dict[str, Any]] = None,
        video_feature_source: Optional[Dict[str, Any]] = None,
        preset: Optional[str] = None,
        **kwargs,
    ):
        recipe_keys = sorted(LEGACY_RECIPE_KEYS & set(kwargs))
        if recipe_keys:
            raise ValueError(
                f"MSCLConfig: {', '.join(recipe_keys)} belong(s) to the training recipe, not to the model "
                "configuration; set them on modeling_mscl.training.TrainingRecipe (or the preset's 'training' section)"
            )
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
    def level_strides(self) -> List[int]:
        """Stride of each pyramid level on the model grid: level ``l`` has stride ``2^l`` (the first
        branch block keeps the length, every later one halves it). The only place this rule is written;
        the model, the losses, decoding and the data pipeline read it from here."""
        return [2**level for level in range(self.num_pyramid_levels)]

    @property
    def pyramid_stride(self) -> int:
        """Stride of the coarsest level on the model grid."""
        return self.level_strides[-1]

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
    @classmethod
    def from_dict(cls, config_dict: Dict[str, Any], **kwargs) -> "MSCLConfig":
        """As ``PretrainedConfig.from_dict``, dropping the training-recipe keys of folders saved before the
        recipe left the configuration (:data:`LEGACY_RECIPE_KEYS`)."""
        stale = sorted(LEGACY_RECIPE_KEYS & set(config_dict))
        if stale:
            logger.info("config.json carries training-recipe keys the model ignores: %s", ", ".join(stale))
            config_dict = {k: v for k, v in config_dict.items() if k not in LEGACY_RECIPE_KEYS}
        return super().from_dict(config_dict, **kwargs)

    @staticmethod
    def preset_path(name: str) -> str:
        return preset_path(name)

    @classmethod
    def load_preset_dict(cls, name: str) -> Dict[str, Any]:
        """The ``model`` section of preset ``name``."""
        return load_preset(name)["model"]

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MSCLConfig":
        """Build the model configuration of a named setting (``tacos_c3d``, ``mad_clip``, …, ``quickstart``):
        the preset's ``model`` section.

        Keyword overrides replace preset values; unknown keys are an error (a training-recipe key names
        :class:`~modeling_mscl.training.TrainingRecipe`).
        """
        values = cls.load_preset_dict(name)
        known = set(cls().to_dict()) | set(values)
        recipe = sorted(k for k in overrides if k in LEGACY_RECIPE_KEYS)
        if recipe:
            raise ValueError(
                f"{', '.join(recipe)}: training-recipe field(s), not MSCLConfig fields; use "
                "modeling_mscl.training.TrainingRecipe.from_preset(name, ...)"
            )
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            raise ValueError(f"unknown MSCLConfig field(s) in overrides: {', '.join(unknown)}")
        values.update(overrides)
        values["preset"] = name
        return cls(**values)
