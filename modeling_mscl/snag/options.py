# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Translate SnAG option dicts (``opts/*.yaml``) into an :class:`~modeling_mscl.MSCLConfig` and a
:class:`~modeling_mscl.training.TrainingRecipe`, and back.

SnAG (fmu2/snag_release) configures a run with one nested dict: ``model`` (``text_net``, ``vid_net``,
``fusion``, ``cls_head``, ``reg_head``), ``pt_gen``, ``train`` (with ``data``, ``optimizer``,
``scheduler``), ``eval`` (with ``data``, ``nms``), ``log`` and ``seed``. Two forms are accepted:

* the **yaml form**, as users keep it on disk: missing keys take SnAG's values, first its global
  defaults and then the defaults of the module that reads the key (reference notes §9);
* the **merged form** SnAG builds at run time (yaml + defaults + derived copies such as
  ``model.max_vid_len`` or ``train.data.max_vid_len``); every derived copy is checked against the
  option it was derived from.

Every option SnAG's model, label assignment, losses, optimiser, data sampling and decoding read is
mapped. An option value this package does not implement (another backbone, hard NMS, a decaying
lr schedule, external scores, …) raises ``ValueError`` naming the option, and so does any key that
is neither mapped nor on the documented allow-list of operational keys (:data:`OPERATIONAL_OPTIONS`),
so nothing is dropped silently.

Units: SnAG's ``model.vid_net.max_seq_len`` (copied to ``model.max_vid_len`` and ``pt_gen.max_seq_len``)
counts **model-grid** steps, i.e. steps after the input stride; ``train.data.max_vid_len`` counts
**input** features (``vid_stride × grid``: 8192 for MAD). :attr:`MSCLConfig.max_video_length` is in
grid steps, so it takes ``vid_net.max_seq_len``.

:func:`config_kwargs_from_snag_opt` returns one flat dict (model and recipe keys);
:func:`config_from_snag_opt` / :func:`recipe_from_snag_opt` split it between the two objects
(:data:`SNAG_MODEL_FIELDS`, :data:`SNAG_RECIPE_FIELDS`). Converter code: it never travels with a
checkpoint.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Iterable, List, Mapping, Tuple

__all__ = [
    "OPERATIONAL_OPTIONS",
    "SNAG_DEFAULTS",
    "SNAG_MAPPED_FIELDS",
    "SNAG_MODEL_FIELDS",
    "SNAG_RECIPE_FIELDS",
    "config_from_snag_opt",
    "config_kwargs_from_snag_opt",
    "merge_snag_defaults",
    "recipe_from_snag_opt",
    "snag_opt_from_config",
    "split_snag_kwargs",
]

# --------------------------------------------------------------------------------------------
# SnAG's defaults (values of its global default dict, restated; reference notes §9)
# --------------------------------------------------------------------------------------------

SNAG_DEFAULTS: Dict[str, Any] = {
    "seed": 1234567891,
    "model": {
        "text_net": {"name": "transformer", "in_dim": 300, "embd_dim": 128, "max_seq_len": 24},
        "vid_net": {
            "name": "transformer", "in_dim": 500, "embd_dim": 128, "n_heads": 4, "max_seq_len": 256,
            "stride": 1, "arch": [2, 0, 7], "mha_win_size": 5, "attn_pdrop": 0.0, "proj_pdrop": 0.1,
            "path_pdrop": 0.1, "use_abs_pe": True,
        },
        "fusion": {
            "name": "xattn", "n_layers": 2, "n_heads": 4, "attn_pdrop": 0.0, "proj_pdrop": 0.1,
            "path_pdrop": 0.1, "xattn_mode": "adaln",
        },
        "cls_head": {"name": "cls", "n_layers": 2, "prior_prob": 0.0},
        "reg_head": {"name": "reg", "n_layers": 2},
    },
    "pt_gen": {"regression_range": 4, "sigma": 0.5},
    "train": {
        "data": {"split": "train", "downsample_rate": 1, "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0]},
        "batch_size": 16,
        "num_workers": 4,
        "epochs": 5,
        "warmup_epochs": 5,
        "ema_beta": 0.999,
        "center_sampling": "radius",
        "center_sampling_radius": 1.5,
        "loss_norm": 160,
        "loss_norm_momentum": 0.9,
        "loss_weight": 1.0,
        "reg_loss": "diou",
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        "clip_grad_norm": 1.0,
        "scheduler": {"name": "multistep", "steps": [-1], "gamma": 0.1},
    },
    "eval": {
        "data": {"split": "test"},
        "ranks": [1, 5],
        "iou_threshs": [0.3, 0.5],
        "pre_nms_thresh": 0.001,
        "pre_nms_topk": 2000,
        "seg_len_thresh": 0.1,
        "nms": {
            "mode": "soft_nms", "iou_thresh": 0.1, "min_score": 0.001, "max_num_segs": 5, "sigma": 0.9,
            "voting_thresh": 0.95,
        },
    },
    "log": {"log_interval": 100, "checkpoint_epochs": [6, 7, 8, 9, 10]},
}

# Behaviour SnAG hard-codes (not options), which MSCLConfig exposes as fields.
_SNAG_CONSTANTS: Dict[str, Any] = {
    "layer_scale_init": 1e-4,  # LayerScale init in every block
    "focal_alpha": 0.5,  # trainer's focal loss
    "focal_gamma": 2.0,
    "label_smoothing": 0.2,
}

# --------------------------------------------------------------------------------------------
# keys that are read but deliberately not mapped (documented allow-list)
# --------------------------------------------------------------------------------------------

#: Option paths that are accepted and ignored, with the reason. ``*`` matches one path element.
#: Keys starting with ``_`` (``_root``, ``_resume``, ``_distributed``, ``_world_size``, ``_ckpt``,
#: run-time state SnAG adds) are ignored at every level as well.
OPERATIONAL_OPTIONS: Dict[str, str] = {
    "log": "logging / checkpoint schedule of SnAG's trainer",
    "train.num_workers": "DataLoader workers",
    "train.data.split": "which annotation split to train on (a data path, given to the training script)",
    "train.data.anno_file": "path",
    "train.data.vid_feat_dir": "path",
    "train.data.text_feat_dir": "path (whether text features are precomputed is told by tokenizer)",
    "train.data.normalize_scores": "only used with external scores (ext_score_dir), which must be unset",
    "train.data.temperature": "only used with external scores (ext_score_dir), which must be unset",
    "train.scheduler.gamma": "irrelevant: the accepted schedules never decay",
    "train.scheduler.itrs_per_epoch": "run-time value SnAG stores (batches per epoch)",
    "train.optimizer.momentum": "SGD-only; SnAG's AdamW ignores it",
    "eval.data.*": "merged eval form: copies of train.data (checked: name and split only)",
    "eval.nms.iou_thresh": "ignored by SnAG's Gaussian Soft-NMS",
    "eval.max_vid_len": "size of SnAG's inference point buffer; MSCL has no such limit",
}

#: MSCLConfig and TrainingRecipe fields that a SnAG option (or SnAG's fixed behaviour) determines.
SNAG_MAPPED_FIELDS = (
    "video_input_dim", "hidden_size", "video_input_stride", "max_video_length", "num_embedding_convs",
    "num_stem_blocks", "num_pyramid_levels", "attention_window", "video_use_abs_pe", "num_attention_heads",
    "attention_dropout", "hidden_dropout", "drop_path", "layer_scale_init",
    "text_input_dim", "text_hidden_size", "text_encoder_type", "text_num_layers", "max_text_length",
    "text_use_abs_pe", "text_use_background_token",
    "fusion_num_layers", "fusion_mode", "head_num_layers", "head_prior_prob",
    "regression_range", "regression_range_sigma", "center_sampling_radius", "focal_alpha", "focal_gamma",
    "label_smoothing", "regression_loss_type", "regression_loss_weight", "loss_normalizer_init",
    "loss_normalizer_momentum", "within_loss_weight", "cross_loss_weight",
    "pre_nms_threshold", "pre_nms_topk", "min_segment_length", "nms_sigma", "nms_min_score", "max_segments",
    "voting_threshold",
    "clip_size", "clip_stride", "downsample_rate", "fixed_length", "max_queries_per_video", "query_grouping",
    "crop_ratio", "truncation_threshold",
    "learning_rate", "module_learning_rates", "weight_decay", "batch_size", "gradient_accumulation_steps",
    "num_epochs", "warmup_epochs", "ema_decay", "max_grad_norm", "seed",
    "eval_ranks", "eval_thresholds", "eval_split",
)

#: The training-recipe part of :data:`SNAG_MAPPED_FIELDS` (:class:`~modeling_mscl.training.TrainingRecipe`).
SNAG_RECIPE_FIELDS = (
    "max_queries_per_video", "query_grouping", "crop_ratio", "truncation_threshold",
    "learning_rate", "module_learning_rates", "weight_decay", "batch_size", "gradient_accumulation_steps",
    "num_epochs", "warmup_epochs", "ema_decay", "max_grad_norm", "seed",
    "eval_ranks", "eval_thresholds", "eval_split",
)
#: The model part of :data:`SNAG_MAPPED_FIELDS` (:class:`~modeling_mscl.MSCLConfig`).
SNAG_MODEL_FIELDS = tuple(f for f in SNAG_MAPPED_FIELDS if f not in SNAG_RECIPE_FIELDS)

# SnAG per-module lr options -> MSCL top-level module names
_MODULE_LR = {
    "vid_net_lr": "video_encoder",
    "text_net_lr": "text_encoder",
    "fusion_lr": "fusion",
    "cls_head_lr": "cls_head",
    "reg_head_lr": "reg_head",
}

_GLOVE_SOURCE = {
    "type": "word_vectors",
    "tokenizer": "basic_english",
    "dim": 300,
    "name": "glove.6B.300d",
    "note": "GloVe 6B 300-d, one vector per word, lower-case fallback, OOV -> zeros (SnAG).",
}

_MISSING = object()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _fail(path: str, value: Any, why: str) -> ValueError:
    return ValueError(f"SnAG option {path} = {value!r} is not supported: {why}")


def _deep_merge_defaults(defaults: Mapping[str, Any], target: Dict[str, Any]) -> None:
    """Fill keys missing from ``target`` (a present key, even ``None``, wins), recursively."""
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            _deep_merge_defaults(value, target[key])


def merge_snag_defaults(opt: Mapping[str, Any]) -> Dict[str, Any]:
    """A deep copy of ``opt`` with SnAG's global defaults filled in for missing keys (yaml → merged)."""
    if not isinstance(opt, Mapping):
        raise ValueError(f"a SnAG options dict is expected, got {type(opt).__name__}")
    out = copy.deepcopy(dict(opt))
    for name in ("model", "pt_gen", "train", "eval"):
        if name in out and not isinstance(out[name], Mapping):
            raise ValueError(f"SnAG option {name} must be a section (dict), got {out[name]!r}")
    _deep_merge_defaults(SNAG_DEFAULTS, out)
    return out


class _Section:
    """Reads one option section, remembering which keys were used, to reject unknown ones."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"SnAG option {path} must be a section (dict), got {data!r}")
        self.data, self.path, self.used = dict(data), path, set()

    def full(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise ValueError(f"SnAG option {self.full(key)} is required but missing")
        return default

    def section(self, key: str) -> "_Section":
        return _Section(self.raw(key, {}), self.full(key))

    def ignore(self, *keys: str) -> None:
        self.used.update(keys)

    def number(self, key: str, default: Any = _MISSING, *, integer: bool = False, allow_none: bool = False):
        value = self.raw(key, default)
        if value is None and allow_none:
            return None
        if isinstance(value, bool):
            raise ValueError(f"SnAG option {self.full(key)} must be a number, got {value!r}")
        try:
            number = float(value)  # yaml 1.1 reads '1e-3' (no dot) as a string
        except (TypeError, ValueError):
            raise ValueError(f"SnAG option {self.full(key)} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"SnAG option {self.full(key)} must be finite, got {value!r}")
        if integer:
            if number != int(number):
                raise ValueError(f"SnAG option {self.full(key)} must be an integer, got {value!r}")
            return int(number)
        return number

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ValueError(f"SnAG option {self.full(key)} must be true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: Iterable[Any], default: Any = _MISSING, why: str = "") -> Any:
        value = self.raw(key, default)
        choices = tuple(choices)
        if value not in choices:
            detail = why or f"this package implements {' / '.join(repr(c) for c in choices)}"
            raise _fail(self.full(key), value, detail)
        return value

    def numbers(self, key: str, default: Any = _MISSING, *, integer: bool = False) -> List[Any]:
        value = self.raw(key, default)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"SnAG option {self.full(key)} must be a list of numbers, got {value!r}")
        probe = _Section({str(i): v for i, v in enumerate(value)}, self.full(key))
        return [probe.number(str(i), integer=integer) for i in range(len(value))]

    def finish(self, allowed: Mapping[str, str] = OPERATIONAL_OPTIONS) -> None:
        unknown = []
        for key in self.data:
            if key in self.used or str(key).startswith("_"):
                continue
            full = self.full(key)
            wildcard = f"{self.path}.*" if self.path else "*"
            if full in allowed or wildcard in allowed:
                continue
            unknown.append(full)
        if unknown:
            raise ValueError(
                "unknown SnAG option(s): " + ", ".join(sorted(unknown)) + " (neither mapped onto MSCLConfig nor "
                "on the operational allow-list in modeling_mscl/snag/options.py)"
            )


def _check_copy(section: _Section, key: str, expected: Any, source: str) -> None:
    """A derived copy SnAG stores (merged form) must equal the option it was derived from."""
    if not section.has(key):
        section.ignore(key)
        return
    value = section.raw(key)
    if isinstance(expected, (list, tuple)) and isinstance(value, (list, tuple)):
        same = list(value) == list(expected)
    else:
        same = value == expected
    if not same:
        raise ValueError(
            f"SnAG option {section.full(key)} = {value!r} contradicts {source} = {expected!r} (SnAG derives it "
            "from that option)"
        )


def _single_split(section: _Section, key: str, default: Any = _MISSING) -> str:
    value = section.raw(key, default)
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _fail(section.full(key), value, "MSCL evaluates one split at a time (eval_split is a string)")
        value = value[0]
    if not isinstance(value, str):
        raise ValueError(f"SnAG option {section.full(key)} must be a split name, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# SnAG opt -> MSCLConfig kwargs
# --------------------------------------------------------------------------------------------


def config_kwargs_from_snag_opt(opt: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings equivalent to a SnAG options dict (yaml or merged form), model and recipe keys in one
    flat dict (:func:`split_snag_kwargs` separates them).

    The result covers :data:`SNAG_MAPPED_FIELDS` (plus ``text_feature_source`` for GloVe tokens); fields
    SnAG has no notion of (``fps``, contrastive temperature, …) are left to their defaults. SnAG trains
    without the contrastive terms, so ``within_loss_weight`` and ``cross_loss_weight`` are 0: the
    config reproduces SnAG. ``batch_size`` is SnAG's micro-batch (``microbatch_size``) and
    ``gradient_accumulation_steps`` is ``batch_size / microbatch_size``.

    Raises:
        ValueError: naming the option, for a value this package does not implement, an unknown key,
            or a derived copy that contradicts its source.
    """
    merged = merge_snag_defaults(opt)
    root = _Section(merged, "")
    kw: Dict[str, Any] = dict(_SNAG_CONSTANTS)
    kw["seed"] = root.number("seed", integer=True)
    root.ignore("log")

    # ---------------------------------------------------------------- model
    model = root.section("model")
    vid, txt, fus = model.section("vid_net"), model.section("text_net"), model.section("fusion")
    cls, reg = model.section("cls_head"), model.section("reg_head")

    vid.choice("name", ("transformer",))
    kw["video_input_dim"] = vid.number("in_dim", integer=True)
    kw["hidden_size"] = vid.number("embd_dim", integer=True)
    kw["max_video_length"] = vid.number("max_seq_len", integer=True)
    stride = vid.number("stride", 1, integer=True)
    if stride not in (1, 2):
        raise _fail(vid.full("stride"), stride, "this package implements input strides 1 and 2")
    kw["video_input_stride"] = stride
    arch = vid.numbers("arch", integer=True)
    if len(arch) != 3 or min(arch) < 0:
        raise _fail(vid.full("arch"), arch, "expected three non-negative counts (embedding convs, stem, branch)")
    if arch[2] < 1:
        raise _fail(vid.full("arch"), arch, "the branch (pyramid) needs at least one block")
    if stride == 2 and arch[0] < 1:
        raise _fail(vid.full("arch"), arch, "input stride 2 needs at least one embedding conv")
    kw["num_embedding_convs"], kw["num_stem_blocks"], kw["num_pyramid_levels"] = arch
    window = vid.number("mha_win_size", integer=True)
    if window <= 0 or window % 2 == 0:
        raise _fail(vid.full("mha_win_size"), window, "this package implements local attention with an odd window "
                    "(0, global video attention, is not implemented)")
    kw["attention_window"] = window
    kw["video_use_abs_pe"] = vid.flag("use_abs_pe", False)
    heads = {vid.full("n_heads"): vid.number("n_heads", integer=True)}
    dropouts = {name: {vid.full(name): vid.number(name, 0.0)} for name in ("attn_pdrop", "proj_pdrop", "path_pdrop")}
    vid.finish()

    text_kind = txt.choice("name", ("transformer", "identity"))
    kw["text_encoder_type"] = text_kind
    kw["text_input_dim"] = txt.number("in_dim", integer=True)
    embd = txt.number("embd_dim", integer=True, allow_none=True)
    kw["max_text_length"] = txt.number("max_seq_len", integer=True)
    if text_kind == "transformer":
        if embd is None:
            raise _fail(txt.full("embd_dim"), None, "the transformer text net needs an embedding width")
        kw["text_hidden_size"] = embd
        heads[txt.full("n_heads")] = txt.number("n_heads", integer=True)
        kw["text_num_layers"] = txt.number("n_layers", 5, integer=True)
        for name in dropouts:
            dropouts[name][txt.full(name)] = txt.number(name, 0.0)
        kw["text_use_abs_pe"] = txt.flag("use_abs_pe", True)
        kw["text_use_background_token"] = txt.flag("use_bkgd_token", True)
    else:
        if embd is None or embd != kw["text_input_dim"]:
            raise _fail(txt.full("embd_dim"), embd, "the identity text net is implemented with a token projection "
                        f"that keeps the width (embd_dim = in_dim = {kw['text_input_dim']})")
        kw["text_hidden_size"] = embd
        heads[txt.full("n_heads")] = txt.number("n_heads", 4, integer=True)
        kw["text_num_layers"] = 0
        if txt.flag("use_abs_pe", False):
            raise _fail(txt.full("use_abs_pe"), True, "the identity text net is implemented without position encoding")
        if not txt.flag("use_bkgd_token", True):
            raise _fail(txt.full("use_bkgd_token"), False, "the identity text net is implemented with its "
                        "attention-pooled background token")
        kw["text_use_abs_pe"] = False
        kw["text_use_background_token"] = True
    txt.finish()

    fus.choice("name", ("xattn",))
    kw["fusion_num_layers"] = fus.number("n_layers", 2, integer=True)
    heads[fus.full("n_heads")] = fus.number("n_heads", 4, integer=True)
    for name in dropouts:
        dropouts[name][fus.full(name)] = fus.number(name, 0.0)
    kw["fusion_mode"] = fus.choice("xattn_mode", ("adaln", "affine"), "adaln")
    _check_copy(fus, "vid_dim", kw["hidden_size"], "model.vid_net.embd_dim")
    _check_copy(fus, "text_dim", kw["text_hidden_size"], "model.text_net.embd_dim")
    fus.finish()

    if len(set(heads.values())) != 1:
        raise ValueError(
            "SnAG options " + ", ".join(f"{k} = {v}" for k, v in heads.items()) + " are not supported: MSCL uses one "
            "head count (num_attention_heads) for the video, text and fusion attention"
        )
    kw["num_attention_heads"] = next(iter(heads.values()))
    for name, field in (("attn_pdrop", "attention_dropout"), ("proj_pdrop", "hidden_dropout"), ("path_pdrop", "drop_path")):
        values = dropouts[name]
        if len(set(values.values())) != 1:
            raise ValueError(
                "SnAG options " + ", ".join(f"{k} = {v}" for k, v in values.items()) + f" are not supported: MSCL "
                f"uses one rate ({field}) for the video encoder, text encoder and fusion"
            )
        kw[field] = next(iter(values.values()))

    cls.choice("name", ("cls",))
    reg.choice("name", ("reg",))
    cls_layers = cls.number("n_layers", 2, integer=True)
    reg_layers = reg.number("n_layers", 2, integer=True)
    if cls_layers != reg_layers:
        raise ValueError(
            f"SnAG options model.cls_head.n_layers = {cls_layers} and model.reg_head.n_layers = {reg_layers} are "
            "not supported: MSCL uses one depth (head_num_layers) for both heads"
        )
    kw["head_num_layers"] = cls_layers
    prior = cls.number("prior_prob", 0.0)
    if not 0.0 <= prior < 1.0:
        raise _fail(cls.full("prior_prob"), prior, "a probability in [0, 1) is required")
    kw["head_prior_prob"] = prior
    for head in (cls, reg):
        _check_copy(head, "embd_dim", kw["hidden_size"], "model.vid_net.embd_dim")
    _check_copy(reg, "num_fpn_levels", kw["num_pyramid_levels"], "model.vid_net.arch[2]")
    cls.finish()
    reg.finish()

    _check_copy(model, "max_text_len", kw["max_text_length"], "model.text_net.max_seq_len")
    _check_copy(model, "max_vid_len", kw["max_video_length"], "model.vid_net.max_seq_len")
    _check_copy(model, "vid_stride", stride, "model.vid_net.stride")
    _check_copy(model, "num_fpn_levels", kw["num_pyramid_levels"], "model.vid_net.arch[2]")
    _check_copy(model, "mha_win_size", window, "model.vid_net.mha_win_size")
    model.finish()

    # ---------------------------------------------------------------- point generator
    pt = root.section("pt_gen")
    kw["regression_range"] = pt.number("regression_range")
    sigma = pt.number("sigma", 1.0)
    if not 0.0 < sigma <= 1.0:
        raise _fail(pt.full("sigma"), sigma, "SnAG requires 0 < sigma <= 1")
    kw["regression_range_sigma"] = sigma
    if pt.flag("use_offset", False):
        raise _fail(pt.full("use_offset"), True, "points are left-aligned on the grid (use_offset false)")
    _check_copy(pt, "num_fpn_levels", kw["num_pyramid_levels"], "model.vid_net.arch[2]")
    if pt.has("max_seq_len"):
        # train: max_vid_len; eval: max_vid_len * ceil(eval.max_vid_len / max_vid_len) (the point buffer)
        buffer = pt.number("max_seq_len", integer=True)
        if buffer < kw["max_video_length"] or buffer % kw["max_video_length"]:
            raise ValueError(
                f"SnAG option pt_gen.max_seq_len = {buffer} contradicts model.vid_net.max_seq_len = "
                f"{kw['max_video_length']} (SnAG derives it as a multiple of that option)"
            )
    pt.finish()

    # ---------------------------------------------------------------- training
    train = root.section("train")
    data = train.section("data")
    data.choice("name", ("video_centric",), why="MSCL trains video-centric (one video + a group of its queries)")
    kw["clip_size"] = data.number("clip_size")
    kw["clip_stride"] = data.number("clip_stride")
    kw["downsample_rate"] = data.number("downsample_rate", 1, integer=True)
    if kw["downsample_rate"] < 1:
        raise _fail(data.full("downsample_rate"), kw["downsample_rate"], "a positive integer is required")
    fixed = data.flag("to_fixed_len", False)
    kw["fixed_length"] = stride * kw["max_video_length"] if fixed else None
    crop = data.raw("crop_ratio", [0.9, 1.0])
    if crop is not None:
        crop = data.numbers("crop_ratio")
        if len(crop) != 2 or not 0.0 < crop[0] <= crop[1] <= 1.0:
            raise _fail(data.full("crop_ratio"), crop, "expected null or [low, high] with 0 < low <= high <= 1")
    kw["crop_ratio"] = crop
    kw["truncation_threshold"] = data.number("trunc_thresh", 0.5)
    max_num_text = data.number("max_num_text", None, integer=True, allow_none=True)
    if max_num_text is None or max_num_text < 1:
        raise _fail(data.full("max_num_text"), max_num_text, "a positive number of queries per training sample is "
                    "required")
    kw["max_queries_per_video"] = max_num_text
    kw["query_grouping"] = data.choice("group_method", ("greedy", "random"), "greedy")
    if data.raw("ext_score_dir", None) is not None:
        raise _fail(data.full("ext_score_dir"), data.raw("ext_score_dir"), "external proposal scores are not "
                    "implemented")
    for key in ("normalize_vid", "normalize_text"):
        if data.flag(key, False):
            raise _fail(data.full(key), True, "unit-normalised features are not implemented; normalise them when "
                        "extracting")
    tokenizer = data.raw("tokenizer", None)
    if tokenizer is not None:
        if tokenizer != "glove":
            raise _fail(data.full("tokenizer"), tokenizer, "the only on-the-fly tokenizer is 'glove'")
        if kw["text_input_dim"] == _GLOVE_SOURCE["dim"]:  # (shrunken test models keep the tokenizer key)
            kw["text_feature_source"] = dict(_GLOVE_SOURCE)
    _check_copy(data, "max_text_len", kw["max_text_length"], "model.text_net.max_seq_len")
    _check_copy(data, "max_vid_len", stride * kw["max_video_length"],
                "model.vid_net.stride * model.vid_net.max_seq_len (input features)")
    data.finish()

    batch = train.number("batch_size", integer=True)
    micro = train.number("microbatch_size", batch, integer=True)
    if batch < 1 or micro < 1 or batch % micro:
        raise ValueError(
            f"SnAG options train.batch_size = {batch} and train.microbatch_size = {micro} are not supported: the "
            "batch must be a positive multiple of the micro-batch"
        )
    kw["batch_size"], kw["gradient_accumulation_steps"] = micro, batch // micro
    kw["num_epochs"] = train.number("epochs", integer=True)
    kw["warmup_epochs"] = train.number("warmup_epochs", integer=True)
    kw["ema_decay"] = train.number("ema_beta", 0.999)
    train.choice("center_sampling", ("radius",), "radius",
                 why="label assignment is implemented with radius centre sampling only")
    kw["center_sampling_radius"] = train.number("center_sampling_radius")
    kw["loss_normalizer_init"] = train.number("loss_norm")
    kw["loss_normalizer_momentum"] = train.number("loss_norm_momentum", 0.9)
    kw["regression_loss_weight"] = train.number("loss_weight", 1.0)
    # SnAG: 'diou' selects DIoU, anything else its centre-GIoU, which equals 1 - IoU for offsets >= 0
    reg_loss = train.choice("reg_loss", ("diou", "iou", "giou"), "diou")
    kw["regression_loss_type"] = "diou" if reg_loss == "diou" else "iou"
    clip = train.number("clip_grad_norm", None, allow_none=True)
    kw["max_grad_norm"] = float(clip) if clip else 0.0  # SnAG: None / 0 = no clipping

    optim = train.section("optimizer")
    optim.choice("name", ("adamw",), why="MSCL trains with AdamW (betas 0.9/0.999, eps 1e-8) as SnAG's configs do")
    kw["learning_rate"] = optim.number("lr")
    kw["weight_decay"] = optim.number("weight_decay", 0.0)
    kw["module_learning_rates"] = {
        module: optim.number(key) for key, module in _MODULE_LR.items() if optim.has(key)
    }
    optim.finish()

    sched = train.section("scheduler")
    name = sched.choice("name", ("multistep",), why="MSCL's schedule is linear warmup then a constant lr "
                        "(SnAG's multistep schedule without decay steps)")
    steps = sched.numbers("steps", [-1])
    gamma = sched.number("gamma", 0.1)
    # a milestone fires only at a positive iteration after warmup; steps <= 0 (SnAG's [-1]) never decay
    if any(s > 0 for s in steps) and gamma != 1.0:
        raise _fail(sched.full("steps"), steps, f"{name} decay steps are not implemented (the lr is constant after "
                    "warmup); use steps: [-1]")
    _check_copy(sched, "epochs", kw["num_epochs"], "train.epochs")
    _check_copy(sched, "warmup_epochs", kw["warmup_epochs"], "train.warmup_epochs")
    sched.finish()
    train.finish()

    # ---------------------------------------------------------------- evaluation
    ev = root.section("eval")
    edata = ev.section("data")
    edata.choice("name", ("video_centric",), why="MSCL evaluates video by video")
    kw["eval_split"] = _single_split(edata, "split", "test")
    edata.finish()
    kw["eval_ranks"] = ev.numbers("ranks", integer=True)
    kw["eval_thresholds"] = ev.numbers("iou_threshs")
    kw["pre_nms_threshold"] = ev.number("pre_nms_thresh")
    kw["pre_nms_topk"] = ev.number("pre_nms_topk", integer=True)
    kw["min_segment_length"] = ev.number("seg_len_thresh")
    for key in ("window_size", "window_stride"):
        if ev.raw(key, None) is not None:
            raise _fail(ev.full(key), ev.raw(key), "sliding-window inference is not implemented (MSCL encodes the "
                        "whole video at once)")
    nms = ev.section("nms")
    nms.choice("mode", ("soft_nms",), why="decoding is implemented with Gaussian Soft-NMS + voting only")
    kw["nms_min_score"] = nms.number("min_score")
    kw["max_segments"] = nms.number("max_num_segs", integer=True)
    if kw["max_segments"] < 1:
        raise _fail(nms.full("max_num_segs"), kw["max_segments"], "a positive number of segments is required")
    kw["nms_sigma"] = nms.number("sigma", 0.5)
    kw["voting_threshold"] = nms.number("voting_thresh", 0.75)
    nms.finish()
    ev.finish()
    root.finish()

    # SnAG has no contrastive terms: the converted config reproduces SnAG's training objective
    kw["within_loss_weight"] = 0.0
    kw["cross_loss_weight"] = 0.0
    return kw


def split_snag_kwargs(kwargs: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``config_kwargs_from_snag_opt``'s flat dict -> (``MSCLConfig`` kwargs, ``TrainingRecipe`` kwargs)."""
    model = {k: v for k, v in kwargs.items() if k not in SNAG_RECIPE_FIELDS}
    recipe = {k: v for k, v in kwargs.items() if k in SNAG_RECIPE_FIELDS}
    return model, recipe


def config_from_snag_opt(opt: Mapping[str, Any]):
    """The :class:`~modeling_mscl.MSCLConfig` of a SnAG options dict (yaml or merged form).

    Every option SnAG's model uses is mapped; a value the package does not implement raises.
    """
    from ..configuration_mscl import MSCLConfig

    return MSCLConfig(**split_snag_kwargs(config_kwargs_from_snag_opt(opt))[0])


def recipe_from_snag_opt(opt: Mapping[str, Any]):
    """The :class:`~modeling_mscl.training.TrainingRecipe` of a SnAG options dict (optimiser, schedule,
    EMA, training-sample grouping and crops, evaluation protocol)."""
    from ..training.recipe import TrainingRecipe

    return TrainingRecipe(**split_snag_kwargs(config_kwargs_from_snag_opt(opt))[1])


# --------------------------------------------------------------------------------------------
# MSCLConfig + TrainingRecipe -> SnAG opt (inverse, yaml form)
# --------------------------------------------------------------------------------------------


def snag_opt_from_config(config: Any, recipe: Any = None) -> Dict[str, Any]:
    """SnAG options (yaml form) that describe ``config`` + ``recipe`` (:data:`SNAG_MAPPED_FIELDS`).

    ``config`` is an :class:`MSCLConfig` or a dict of its fields, ``recipe`` a
    :class:`~modeling_mscl.training.TrainingRecipe` or a dict of its fields. Recipe fields missing from
    both take the ``TrainingRecipe`` defaults. Fields SnAG cannot express (the contrastive terms,
    ``fps``, …) are left out; SnAG constants that differ raise ``ValueError``.
    """
    from ..training.recipe import TrainingRecipe

    c = dict(config) if isinstance(config, Mapping) else config.to_dict()
    if recipe is not None:
        c.update(dict(recipe) if isinstance(recipe, Mapping) else recipe.to_dict())
    c = {**TrainingRecipe().to_dict(), **c}
    for field, value in _SNAG_CONSTANTS.items():
        if field in c and float(c[field]) != value:
            raise ValueError(f"MSCLConfig.{field} = {c[field]!r} cannot be expressed in SnAG (fixed at {value})")
    stride = int(c["video_input_stride"])
    fixed = c.get("fixed_length")
    if fixed is not None and int(fixed) != stride * int(c["max_video_length"]):
        raise ValueError(
            f"MSCLConfig.fixed_length = {fixed} cannot be expressed in SnAG (it resamples to "
            f"video_input_stride * max_video_length = {stride * int(c['max_video_length'])})"
        )
    drop = {"attn_pdrop": c["attention_dropout"], "proj_pdrop": c["hidden_dropout"], "path_pdrop": c["drop_path"]}
    heads = int(c["num_attention_heads"])
    if c["text_encoder_type"] == "transformer":
        text_net = {
            "name": "transformer", "in_dim": c["text_input_dim"], "embd_dim": c["text_hidden_size"], "n_heads": heads,
            "max_seq_len": c["max_text_length"], "n_layers": c["text_num_layers"], **drop,
            "use_abs_pe": c["text_use_abs_pe"], "use_bkgd_token": c["text_use_background_token"],
        }
    else:
        text_net = {
            "name": "identity", "in_dim": c["text_input_dim"], "embd_dim": c["text_hidden_size"], "n_heads": heads,
            "max_seq_len": c["max_text_length"], "use_abs_pe": False, "use_bkgd_token": True,
        }
    accumulation = int(c.get("gradient_accumulation_steps", 1))
    train: Dict[str, Any] = {
        "data": {
            "name": "video_centric", "split": "train", "clip_size": c["clip_size"], "clip_stride": c["clip_stride"],
            "downsample_rate": c["downsample_rate"], "to_fixed_len": fixed is not None,
            "crop_ratio": None if c.get("crop_ratio") is None else list(c["crop_ratio"]),
            "max_num_text": c["max_queries_per_video"], "group_method": c["query_grouping"],
            "trunc_thresh": c["truncation_threshold"], "ext_score_dir": None,
        },
        "batch_size": int(c["batch_size"]) * accumulation,
        "epochs": c["num_epochs"],
        "warmup_epochs": c["warmup_epochs"],
        "ema_beta": c["ema_decay"],
        "center_sampling": "radius",
        "center_sampling_radius": c["center_sampling_radius"],
        "loss_norm": c["loss_normalizer_init"],
        "loss_norm_momentum": c["loss_normalizer_momentum"],
        "loss_weight": c["regression_loss_weight"],
        "reg_loss": c["regression_loss_type"],
        "optimizer": {"name": "adamw", "lr": c["learning_rate"], "weight_decay": c["weight_decay"]},
        "clip_grad_norm": c["max_grad_norm"] if c["max_grad_norm"] else None,
        "scheduler": {"name": "multistep", "steps": [-1]},
    }
    if accumulation > 1:
        train["microbatch_size"] = int(c["batch_size"])
    source = c.get("text_feature_source") or {}
    if source.get("type") == "word_vectors" and str(source.get("name", "")).startswith("glove"):
        train["data"]["tokenizer"] = "glove"
    inverse_lr = {module: key for key, module in _MODULE_LR.items()}
    for module, lr in (c.get("module_learning_rates") or {}).items():
        if module not in inverse_lr:
            raise ValueError(
                f"MSCLConfig.module_learning_rates[{module!r}] cannot be expressed in SnAG (its per-module lrs are "
                f"{', '.join(sorted(inverse_lr))})"
            )
        train["optimizer"][inverse_lr[module]] = lr
    return {
        "seed": c["seed"],
        "model": {
            "text_net": text_net,
            "vid_net": {
                "name": "transformer", "in_dim": c["video_input_dim"], "embd_dim": c["hidden_size"], "n_heads": heads,
                "max_seq_len": c["max_video_length"], "stride": stride,
                "arch": [c["num_embedding_convs"], c["num_stem_blocks"], c["num_pyramid_levels"]],
                "mha_win_size": c["attention_window"], **drop, "use_abs_pe": c["video_use_abs_pe"],
            },
            "fusion": {"name": "xattn", "n_layers": c["fusion_num_layers"], "n_heads": heads, **drop,
                       "xattn_mode": c["fusion_mode"]},
            "cls_head": {"name": "cls", "n_layers": c["head_num_layers"], "prior_prob": c["head_prior_prob"]},
            "reg_head": {"name": "reg", "n_layers": c["head_num_layers"]},
        },
        "pt_gen": {"regression_range": c["regression_range"], "sigma": c["regression_range_sigma"]},
        "train": train,
        "eval": {
            "data": {"name": "video_centric", "split": c["eval_split"]},
            "ranks": list(c["eval_ranks"]),
            "iou_threshs": list(c["eval_thresholds"]),
            "pre_nms_topk": c["pre_nms_topk"],
            "pre_nms_thresh": c["pre_nms_threshold"],
            "seg_len_thresh": c["min_segment_length"],
            "nms": {
                "mode": "soft_nms", "iou_thresh": 0.1, "min_score": c["nms_min_score"],
                "max_num_segs": c["max_segments"], "sigma": c["nms_sigma"], "voting_thresh": c["voting_threshold"],
            },
        },
    }
