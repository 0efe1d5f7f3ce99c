# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Model cards for published checkpoints: one shared Jinja template, per-preset data, results from metrics only.

Layout of the card sources (the ``hub_cards/`` folder at the repository root):

* ``base.md.j2`` — the one template every card is rendered from (via ``huggingface_hub``'s
  ``ModelCard.from_template``);
* ``common.yaml`` — text shared by all cards (method summary, general limitations, code licence, citations);
* ``<preset>.yaml`` — the per-preset facts: dataset and splits, how the video and text features are
  produced, the data licences, and the paper's reported numbers with their table/column provenance.

Where the sources are looked up: ``hub_cards/`` next to the ``modeling_mscl`` package (a source
checkout or an editable install) first, then the copy that the wheel build places inside the package at
``modeling_mscl/hub/cards/`` (``setup.py``'s ``build_py`` copies ``hub_cards/`` there, so an installed
package renders the same cards). ``template_dir=`` overrides both.

What is measured and what is quoted never mix: the "Results" section and the ``model-index`` metadata are
built **only** from the metrics JSON that the evaluation wrote for the checkpoint (:func:`read_metrics`);
without one the card says "not evaluated" and has no ``model-index``. The paper's numbers appear only in a
separate table headed "Reported in the paper (not reproduced here)".
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..configuration_mscl import RENAMED_PRESETS, MSCLConfig

__all__ = [
    "BASE_TEMPLATE_NAME",
    "CheckpointMetrics",
    "TASK_TYPE",
    "available_card_presets",
    "card_source_dir",
    "eval_results_from_metrics",
    "load_card_spec",
    "read_metrics",
    "render_model_card",
]

BASE_TEMPLATE_NAME = "base.md.j2"
COMMON_DATA_NAME = "common.yaml"
CARDS_DIRNAME = "hub_cards"
#: ``task_type`` of the model-index entries (transformers has no temporal-grounding task of its own).
TASK_TYPE = "video-temporal-grounding"
TASK_NAME = "Video temporal grounding"

PathLike = Union[str, "os.PathLike[str]"]

# "R1@0.5", "R5@mean", "mIoU", optionally with a Trainer-style prefix ("eval_R1@0.5", "test_mIoU").
_METRIC_RE = re.compile(r"^(?:(?P<prefix>[A-Za-z]+)_)?(?P<key>R(?P<rank>\d+)@(?P<thr>mean|\d+(?:\.\d+)?)|mIoU)$")
_PREFIX_PREFERENCE = (None, "test", "eval", "validation", "val")


# ----------------------------------------------------------------------------------------------------
# Where the card sources live
# ----------------------------------------------------------------------------------------------------
def _candidate_dirs() -> List[Path]:
    here = Path(__file__).resolve().parent
    # modeling_mscl/hub/cards.py -> the package's parent folder holds hub_cards/ in a checkout
    return [here.parent.parent / CARDS_DIRNAME, here / "cards"]


def card_source_dir(template_dir: Optional[PathLike] = None) -> Path:
    """The folder holding ``base.md.j2``, ``common.yaml`` and the per-preset ``<preset>.yaml`` files.

    ``template_dir`` if given; else ``hub_cards/`` beside the package (source checkout, editable install);
    else the copy installed inside the package (``modeling_mscl/hub/cards/``).
    """
    if template_dir is not None:
        path = Path(template_dir)
        if not (path / BASE_TEMPLATE_NAME).is_file():
            raise ValueError(f"card template folder {path} has no {BASE_TEMPLATE_NAME}")
        return path
    for path in _candidate_dirs():
        if (path / BASE_TEMPLATE_NAME).is_file() and (path / COMMON_DATA_NAME).is_file():
            return path
    raise FileNotFoundError(
        "model-card templates not found: looked for "
        + " and ".join(str(p / BASE_TEMPLATE_NAME) for p in _candidate_dirs())
        + " (a source checkout has hub_cards/; an installed wheel has modeling_mscl/hub/cards/)"
    )


def available_card_presets(template_dir: Optional[PathLike] = None) -> List[str]:
    """Presets that have a card (``<preset>.yaml`` next to the base template)."""
    folder = card_source_dir(template_dir)
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != COMMON_DATA_NAME)


def _load_yaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None


def _require(mapping: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(mapping).__name__}")
    missing = [k for k in keys if mapping.get(k) in (None, "", [])]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


def load_card_spec(preset: str, template_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """The validated card data of ``preset`` (``<preset>.yaml``).

    Raises:
        ValueError: no card for this preset (the message lists the presets that have one), or a
            malformed card file (the message names the file and the missing or wrong field).
    """
    if not isinstance(preset, str) or not preset:
        raise ValueError(f"preset must be a non-empty string, got {preset!r}")
    folder = card_source_dir(template_dir)
    path = folder / f"{preset}.yaml"
    if preset == Path(COMMON_DATA_NAME).stem or not path.is_file():
        raise ValueError(
            f"no model-card template for preset {preset!r} (expected {path}); presets with a card: "
            f"{', '.join(available_card_presets(template_dir))}"
        )
    spec = _load_yaml(path)
    where = str(path)
    _require(spec, ("preset", "title", "dataset", "video_features", "text_features", "licence", "limitations"), where)
    if spec["preset"] != preset:
        raise ValueError(f"{where}: 'preset' is {spec['preset']!r} but the file is for {preset!r}")
    _require(spec["dataset"], ("name", "id", "description", "splits"), f"{where}: dataset")
    _require(spec["video_features"], ("short", "extractor", "produce"), f"{where}: video_features")
    _require(spec["text_features"], ("short", "extractor", "produce"), f"{where}: text_features")
    _require(spec["licence"], ("metadata", "data_terms"), f"{where}: licence")
    _require(spec["licence"]["metadata"], ("license",), f"{where}: licence.metadata")
    paper = spec.get("paper_results")
    if paper is None:
        if not spec.get("paper_results_absent"):
            raise ValueError(f"{where}: without paper_results, paper_results_absent must say why")
    else:
        _require(paper, ("source", "columns", "rows"), f"{where}: paper_results")
        for i, row in enumerate(paper["rows"]):
            _require(row, ("model", "values"), f"{where}: paper_results.rows[{i}]")
            if len(row["values"]) != len(paper["columns"]):
                raise ValueError(
                    f"{where}: paper_results.rows[{i}] has {len(row['values'])} values for "
                    f"{len(paper['columns'])} columns"
                )
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row["values"]):
                raise ValueError(f"{where}: paper_results.rows[{i}].values must be numbers")
        paper.setdefault("notes", [])
    return spec


# ----------------------------------------------------------------------------------------------------
# Metrics JSON -> results
# ----------------------------------------------------------------------------------------------------
@dataclass
class CheckpointMetrics:
    """The recall numbers of one evaluation, as read from its metrics JSON (percentages, unrounded).

    ``values`` maps canonical keys (``"R1@0.5"``, ``"R5@mean"``, ``"mIoU"``) to the numbers of the file,
    unchanged; ``split`` and ``num_queries`` are ``None`` when the file does not say.
    """

    values: Dict[str, float]
    split: Optional[str] = None
    num_queries: Optional[int] = None
    num_videos: Optional[int] = None
    source: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict)

    @property
    def ranks(self) -> List[int]:
        return sorted({int(_METRIC_RE.match(k).group("rank")) for k in self.values if k != "mIoU"})

    @property
    def thresholds(self) -> List[float]:
        out = set()
        for k in self.values:
            thr = _METRIC_RE.match(k).group("thr")
            if thr not in (None, "mean"):
                out.add(float(thr))
        return sorted(out)


def _canonical_key(rank: Optional[str], thr: Optional[str]) -> str:
    if rank is None:
        return "mIoU"
    return f"R{int(rank)}@mean" if thr == "mean" else f"R{int(rank)}@{float(thr):g}"


def read_metrics(source: Union[PathLike, Mapping[str, Any]]) -> CheckpointMetrics:
    """Read the metrics JSON that evaluation wrote (a path or the loaded mapping).

    Accepted layouts: flat ``{"R1@0.3": 58.1, ..., "mIoU": ..., "num_queries": 4001, "split": "test"}``
    (what :func:`modeling_mscl.metrics.recall_at_tiou` returns, plus optional fields), the same under a
    ``"metrics"`` key, or Trainer-style prefixed keys (``"eval_R1@0.3"``, ``"test_R1@0.3"``; unprefixed
    keys win, then ``test_``, then ``eval_``). The split is taken from ``split`` / ``eval_split`` /
    ``dataset_split`` when present.

    Raises:
        ValueError: unreadable file, no ``R{K}@{θ}`` entry, a value that is not a finite number in
            [0, 100] (named), or several prefixes that disagree.
    """
    name = None
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise ValueError(f"metrics file not found: {name}")
        try:
            with open(name, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read metrics JSON {name}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"metrics JSON {name} must hold an object, got {type(data).__name__}")
    where = name or "metrics"
    inner = data.get("metrics") if isinstance(data.get("metrics"), Mapping) else data

    groups: Dict[Optional[str], Dict[str, Any]] = {}
    for key, value in inner.items():
        m = _METRIC_RE.match(str(key))
        if not m:
            continue
        groups.setdefault(m.group("prefix"), {})[_canonical_key(m.group("rank"), m.group("thr"))] = (key, value)
    if not groups:
        raise ValueError(f"{where} has no recall entry (keys like 'R1@0.5'); found keys: {sorted(inner)[:20]}")
    prefix = next((p for p in _PREFIX_PREFERENCE if p in groups), None)
    if prefix not in groups:
        if len(groups) > 1:
            raise ValueError(f"{where}: recall entries under several prefixes {sorted(map(str, groups))}; keep one")
        prefix = next(iter(groups))
    values: Dict[str, float] = {}
    for canon, (key, value) in groups[prefix].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ValueError(f"{where}: {key!r} must be a finite number, got {value!r}")
        if not 0.0 <= float(value) <= 100.0:
            raise ValueError(f"{where}: {key!r} = {value} is not a percentage in [0, 100]")
        values[canon] = value
    if not any(k != "mIoU" for k in values):
        raise ValueError(f"{where} has no recall entry (keys like 'R1@0.5')")

    def pick(*names):
        for n in names:
            for container in (inner, data):
                for cand in ((f"{prefix}_{n}",) if prefix else ()) + (n,):
                    if cand in container and container[cand] is not None:
                        return container[cand]
        return None

    split = pick("split", "eval_split", "dataset_split")
    counts = {}
    for name in ("num_queries", "num_videos"):
        n = pick(name)
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or int(n) < 1:
                raise ValueError(f"{where}: {name} must be a positive integer, got {n!r}")
            n = int(n)
        counts[name] = n
    return CheckpointMetrics(
        values=values,
        split=None if split is None else str(split),
        num_queries=counts["num_queries"],
        num_videos=counts["num_videos"],
        source=name,
        raw=data,
    )


def _metric_order(key: str) -> Tuple[int, float]:
    m = _METRIC_RE.match(key)
    if key == "mIoU":
        return (10**9, 0.0)
    thr = m.group("thr")
    return (int(m.group("rank")), math.inf if thr == "mean" else float(thr))


def _metric_name(key: str) -> str:
    if key == "mIoU":
        return "mIoU (top-1)"
    m = _METRIC_RE.match(key)
    thr = m.group("thr")
    if thr == "mean":
        return f"R@{m.group('rank')}, mean over tIoU thresholds"
    return f"R@{m.group('rank')}, tIoU>={float(thr):g}"


def eval_results_from_metrics(
    metrics: CheckpointMetrics, spec: Mapping[str, Any], split: str
) -> List["EvalResult"]:  # noqa: F821
    """One ``EvalResult`` per recall/mIoU entry of ``metrics``; values are the file's numbers, unchanged."""
    from huggingface_hub import EvalResult

    results = []
    for key in sorted(metrics.values, key=_metric_order):
        results.append(
            EvalResult(
                task_type=TASK_TYPE,
                task_name=TASK_NAME,
                dataset_type=spec["dataset"]["id"],
                dataset_name=spec["dataset"]["name"],
                dataset_split=split,
                metric_type=key,
                metric_name=_metric_name(key),
                metric_value=metrics.values[key],
            )
        )
    return results


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------
def _as_config(preset: str, config: Any) -> MSCLConfig:
    if config is None:
        return MSCLConfig.from_preset(preset)
    if isinstance(config, MSCLConfig):
        cfg = config
    elif isinstance(config, Mapping):
        values = {k: v for k, v in dict(config).items()
                  if k not in ("auto_map", "custom_pipelines", "architectures", "model_type", "transformers_version")}
        cfg = MSCLConfig.from_dict(values)  # (drops the recipe keys of configs saved before the recipe moved out)
    elif isinstance(config, (str, os.PathLike)):
        cfg = MSCLConfig.from_pretrained(os.fspath(config))
    else:
        raise ValueError(f"config must be an MSCLConfig, a dict or a path, got {type(config).__name__}")
    recorded = getattr(cfg, "preset", None)
    recorded = RENAMED_PRESETS.get(recorded, recorded)
    if recorded not in (None, preset):
        raise ValueError(f"the configuration is for preset {recorded!r}, not {preset!r}")
    return cfg


def _as_recipe(preset: str, recipe: Any):
    from ..training.recipe import TrainingRecipe

    if recipe is None:
        return TrainingRecipe.from_preset(preset)
    if isinstance(recipe, TrainingRecipe):
        return recipe
    if isinstance(recipe, Mapping):
        return TrainingRecipe.from_dict(recipe)
    raise ValueError(f"recipe must be a TrainingRecipe or a dict, got {type(recipe).__name__}")


def _count_parameters(cfg: MSCLConfig) -> int:
    import torch

    from ..modeling_mscl import MSCLForTemporalGrounding

    # the meta device allocates nothing, so counting a 40M-parameter preset costs no memory
    with torch.device("meta"):
        model = MSCLForTemporalGrounding(cfg)
    return int(sum(p.numel() for p in model.parameters()))


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M ({n:,})" if n >= 10**5 else f"{n:,}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _feature_settings(cfg: MSCLConfig) -> List[Tuple[str, str]]:
    rows = [
        ("video feature dimension (`video_input_dim`)", str(cfg.video_input_dim)),
        ("frame rate of the source video (`fps`)", _fmt(cfg.fps)),
        ("frames per feature / between stored features (`clip_size` / `clip_stride`)", f"{_fmt(cfg.clip_size)} / {_fmt(cfg.clip_stride)}"),
        ("keep every k-th stored feature (`downsample_rate`)", str(cfg.downsample_rate)),
        ("model input stride (`video_input_stride`)", str(cfg.video_input_stride)),
    ]
    if cfg.fixed_length is None:
        seconds = cfg.clip_stride * cfg.downsample_rate * cfg.video_input_stride / cfg.fps
        rows.append(("seconds per model step", f"{seconds:.4g}"))
        rows.append(("resampling", "none: features are used at their native rate"))
    else:
        rows.append(("resampling (`fixed_length`)",
                     f"every video resampled to {cfg.fixed_length} steps (the step length varies per video)"))
    rows += [
        ("training crop (`max_video_length` model steps)", f"{cfg.max_video_length} (inference uses the whole video)"),
        ("text token dimension (`text_input_dim`)", str(cfg.text_input_dim)),
        ("max tokens per query in training (`max_text_length`)", str(cfg.max_text_length)),
    ]
    return rows


def _recipe(cfg: MSCLConfig, recipe) -> List[Tuple[str, str]]:
    module_lrs = ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(recipe.module_learning_rates.items())) or "none (one learning rate)"
    return [
        ("optimiser", "AdamW (no weight decay on biases, norms, scales and learned tokens)"),
        ("learning rate (`learning_rate`)", _fmt(recipe.learning_rate)),
        ("per-module learning rates (`module_learning_rates`)", module_lrs),
        ("weight decay (`weight_decay`)", _fmt(recipe.weight_decay)),
        ("schedule (`warmup_epochs`, `num_epochs`)",
         f"linear warmup for {recipe.warmup_epochs} epochs, then constant; {recipe.num_epochs + recipe.warmup_epochs} epochs in total "
         f"({recipe.warmup_epochs} + {recipe.num_epochs})"),
        ("videos per batch x accumulation (`batch_size`, `gradient_accumulation_steps`)",
         f"{recipe.batch_size} x {recipe.gradient_accumulation_steps}"),
        ("queries per video and grouping (`max_queries_per_video`, `query_grouping`)",
         f"{recipe.max_queries_per_video}, {recipe.query_grouping}"),
        ("random crop of long videos (`crop_ratio`)", "none" if recipe.crop_ratio is None else _fmt(recipe.crop_ratio)),
        ("gradient clipping (`max_grad_norm`)", _fmt(recipe.max_grad_norm)),
        ("EMA of the weights (`ema_decay`)", _fmt(recipe.ema_decay)),
        ("classification loss",
         f"sigmoid focal (alpha {_fmt(cfg.focal_alpha)}, gamma {_fmt(cfg.focal_gamma)}), "
         f"label smoothing {_fmt(cfg.label_smoothing)}"),
        ("regression loss (`regression_loss_type`, rho_reg)",
         f"{cfg.regression_loss_type.upper()}, {_fmt(cfg.regression_loss_weight)}"),
        ("within-scale / cross-scale contrastive weights (rho_within, rho_cross)",
         f"{_fmt(cfg.within_loss_weight)} / {_fmt(cfg.cross_loss_weight)}"),
        ("contrastive temperature / negatives per positive / radius alpha",
         f"{_fmt(cfg.contrastive_temperature)} / {_fmt(cfg.contrastive_negative_ratio)} / {_fmt(cfg.contrastive_radius)}"),
        ("centre sampling radius / regression range of level 0", f"{_fmt(cfg.center_sampling_radius)} / {_fmt(cfg.regression_range)}"),
        ("seed", str(recipe.seed)),
    ]


def _text_encoder_description(cfg: MSCLConfig) -> str:
    if cfg.text_encoder_type == "identity":
        return f"none (token features used as they are, width {cfg.text_input_dim}, attention pooling)"
    return f"{cfg.text_num_layers} Transformer layer(s), width {cfg.text_hidden_size}, from {cfg.text_input_dim}-d tokens"


def _usage(cfg: MSCLConfig) -> Tuple[str, str]:
    """``(extra pipeline() arguments, lines that call the pipeline)`` for this checkpoint's text source."""
    source = cfg.text_feature_source or {}
    kind = source.get("type")
    if kind == "word_vectors":
        extra = ', word_vectors_path="glove.6B.300d.txt"'
        lines = 'pipe(video, ["the person takes out a knife", "the person cuts the onion"])'
    elif kind == "hf":
        extra = ""
        lines = 'pipe(video, ["the person takes out a knife", "the person cuts the onion"])'
    else:
        extra = ""
        lines = (
            f"tokens = np.load(\"query_tokens.npy\")          # (L, {cfg.text_input_dim}) token features of one query\n"
            "pipe(video, [tokens])"
        )
    return extra, lines


def render_model_card(
    preset: str,
    config: Any = None,
    metrics: Union[None, PathLike, Mapping[str, Any], CheckpointMetrics] = None,
    *,
    recipe: Any = None,
    repo_id: Optional[str] = None,
    weights: Optional[str] = "ema",
    split: Optional[str] = None,
    evaluation_note: Optional[str] = None,
    has_training_config: bool = False,
    num_parameters: Optional[int] = None,
    template_dir: Optional[PathLike] = None,
):
    """Render the model card (``huggingface_hub.ModelCard``) of a checkpoint of ``preset``.

    Args:
        preset: preset name; ``hub_cards/<preset>.yaml`` must exist.
        config: the checkpoint's configuration (``MSCLConfig``, its dict, or a folder/``config.json``
            path); default: the preset's configuration.
        recipe: the :class:`~modeling_mscl.training.TrainingRecipe` (or its dict) the checkpoint was trained
            with, as its run recorded it in ``training_config.json``; default: the preset's recipe (the card
            then says so).
        metrics: the metrics JSON the evaluation wrote for this checkpoint (path, mapping or
            :class:`CheckpointMetrics`). ``None`` renders a "not evaluated" card without model-index.
        repo_id: the Hub repo the card is for (used in the code examples and as the model name).
        weights: ``"ema"`` or ``"model"``: which weights the repo holds (stated in the card); ``None``
            says nothing.
        split: the evaluation split, when the metrics JSON does not record it (the trainer writes it to
            ``training_config.json``); default the recipe's ``eval_split``.
        evaluation_note: a sentence added to the results (e.g. "only the first 50 videos were evaluated").
        has_training_config: the repo ships ``training_config.json``.
        num_parameters: parameter count (computed from the configuration when omitted).
        template_dir: folder with the card sources (default: see :func:`card_source_dir`).

    Raises:
        ValueError: no card for the preset, a configuration of another preset, unreadable metrics.
    """
    try:
        import jinja2
        import jinja2.meta
        import yaml  # noqa: F401 - the card data files
    except ImportError as exc:
        raise ImportError(f"rendering model cards needs Jinja2 and PyYAML: pip install 'mscl[hub]' ({exc})") from None
    from huggingface_hub import ModelCard, ModelCardData

    spec = load_card_spec(preset, template_dir)
    folder = card_source_dir(template_dir)
    common = _load_yaml(folder / COMMON_DATA_NAME)
    _require(common, ("method_summary", "task_summary", "code_licence", "general_limitations", "citations"), str(folder / COMMON_DATA_NAME))
    cfg = _as_config(preset, config)
    recipe_recorded = recipe is not None
    recipe = _as_recipe(preset, recipe)
    if weights not in (None, "ema", "model"):
        raise ValueError(f"weights must be 'ema', 'model' or None, got {weights!r}")
    if metrics is not None and not isinstance(metrics, CheckpointMetrics):
        metrics = read_metrics(metrics)
    repo_id = repo_id or f"<your-org>/mscl-{preset}"
    model_name = repo_id.split("/")[-1]
    split = (metrics.split if metrics is not None and metrics.split else None) or split or recipe.eval_split

    meta = dict(spec["licence"]["metadata"])
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        license=meta.pop("license"),
        language=spec.get("language", "en"),
        tags=["video-temporal-grounding", "temporal-grounding", "moment-retrieval", "mscl", "snag", preset, "custom_code"],
        eval_results=eval_results_from_metrics(metrics, spec, split) if metrics is not None else None,
        **meta,
    )

    result_columns: List[str] = []
    result_rows: List[Dict[str, Any]] = []
    extra_results: List[Tuple[str, str]] = []
    if metrics is not None:
        thresholds = metrics.thresholds
        has_mean = any(k.endswith("@mean") for k in metrics.values)
        result_columns = [f"tIoU {t:g}" for t in thresholds] + (["mean"] if has_mean else [])
        keys = [f"{t:g}" for t in thresholds] + (["mean"] if has_mean else [])
        for k in metrics.ranks:
            cells = []
            for t in keys:
                v = metrics.values.get(f"R{k}@{t}")
                cells.append("–" if v is None else f"{float(v):.2f}")
            result_rows.append({"name": f"R@{k}", "cells": cells})
        if "mIoU" in metrics.values:
            extra_results.append(("mIoU", f"{float(metrics.values['mIoU']):.2f}"))
        if metrics.num_queries is not None:
            extra_results.append(("queries", str(metrics.num_queries)))
        if metrics.num_videos is not None:
            extra_results.append(("videos", str(metrics.num_videos)))

    extra_args, usage_lines = _usage(cfg)
    weights_sentence = {
        "ema": f"The weights are the exponential moving average (EMA, decay {_fmt(recipe.ema_decay)}) of the training "
               "weights, the weights the evaluation uses.",
        "model": "The weights are the raw training weights (not their EMA, which the evaluation uses by default).",
        None: "",
    }[weights]
    variables: Dict[str, Any] = dict(
        title=spec["title"],
        preset=preset,
        repo_id=repo_id,
        task_summary=common["task_summary"].strip(),
        method_summary=common["method_summary"].strip(),
        dataset=spec["dataset"],
        video_features=spec["video_features"],
        text_features=spec["text_features"],
        video_features_short=spec["video_features"]["short"],
        text_features_short=spec["text_features"]["short"],
        time_defaults=(f"{_fmt(cfg.fps)} fps, clip {_fmt(cfg.clip_size)} / stride {_fmt(cfg.clip_stride)} frames, "
                       f"`downsample_rate` {cfg.downsample_rate}"),
        evaluation_note=(evaluation_note or "").strip(),
        weights_sentence=weights_sentence,
        evaluated=metrics is not None,
        eval_split=split,
        num_queries=None if metrics is None else metrics.num_queries,
        metrics_source=None if metrics is None or metrics.source is None else "metrics.json",
        result_columns=result_columns,
        result_rows=result_rows,
        extra_results=extra_results,
        config=cfg.to_dict(),
        num_parameters=_fmt_params(num_parameters if num_parameters is not None else _count_parameters(cfg)),
        text_encoder_description=_text_encoder_description(cfg),
        feature_settings=_feature_settings(cfg),
        text_feature_source_json=json.dumps(cfg.text_feature_source, sort_keys=True),
        pipeline_extra_args=extra_args,
        usage_query_lines=usage_lines,
        has_training_config=bool(has_training_config),
        recipe=_recipe(cfg, recipe),
        recipe_recorded=recipe_recorded,
        eval_ranks=", ".join(str(r) for r in recipe.eval_ranks),
        eval_thresholds=", ".join(f"{t:g}" for t in recipe.eval_thresholds),
        paper_results=spec.get("paper_results"),
        paper_results_absent=(spec.get("paper_results_absent") or "").strip(),
        limitations=[s.strip() for s in list(spec["limitations"]) + list(common["general_limitations"])],
        code_licence=common["code_licence"].strip(),
        data_terms=[s.strip() for s in spec["licence"]["data_terms"]],
        citations=common["citations"],
    )
    template_text = (folder / BASE_TEMPLATE_NAME).read_text(encoding="utf-8")
    # from_template renders with a lenient jinja2.Template: check for unknown names here so a typo in
    # the template or a missing variable is an error instead of a silently empty section
    undeclared = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template_text))
    missing = sorted(undeclared - set(variables) - set(card_data.to_dict()) - {"card_data"})
    if missing:
        raise ValueError(f"{folder / BASE_TEMPLATE_NAME} uses undefined variable(s): {', '.join(missing)}")
    return ModelCard.from_template(card_data, template_str=template_text, **variables)
