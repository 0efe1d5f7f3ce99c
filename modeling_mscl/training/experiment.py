# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""End-to-end runs behind ``train_scripts/run.py`` and ``train_scripts/ablation.py``.

:func:`run_training`: config (preset's ``model`` section or ``--init-from`` + overrides) and recipe (preset's
``training`` section + overrides) → data checks → schedule → model →
:class:`~modeling_mscl.training.trainer.MSCLTrainer` → final folder. The final folder (``output_dir``) holds
the EMA model as the main weights (``config.json`` with ``auto_map`` + the modeling code, loadable with
``AutoModel.from_pretrained``), ``metrics.json``, ``predictions.jsonl``, ``training_config.json`` (options,
the recipe, overrides, schedule, versions) and the ``checkpoint-N`` folders. Every input problem (unknown
preset, no shards, feature widths that disagree with the config) raises ``ValueError`` before training starts.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from typing import Any, Dict, List, Optional, Sequence

from .args import TrainingOptions, build_training_arguments, split_overrides
from .launch import check_not_data_parallel

logger = logging.getLogger(__name__)

ABLATION_VARIANTS = {
    "off": (0.0, 0.0),
    "on": (None, None),
    "within": (None, 0.0),
    "cross": (0.0, None),
}

FINAL_METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.jsonl"
TRAINING_CONFIG_NAME = "training_config.json"


# ----------------------------------------------------------------------------------------------------
def _process_state():
    """This process in the launch (``accelerate launch``/``torchrun`` env), set up as the Trainer will.

    ``cpu=True`` without CUDA, as ``TrainingArguments(use_cpu=True)`` does: otherwise accelerate does not
    recognise a multi-process CPU launch and every process would think it is alone.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _set_threads(state, options: TrainingOptions, model=None) -> int:
    """Intra-op threads of this process (CPU runs).

    ``options.num_threads`` when given (or ``OMP_NUM_THREADS`` when set). Otherwise, on a CPU: one thread for
    small models (< 5 M parameters, e.g. ``quickstart``) — their tensors are too small for intra-op parallelism
    to pay, and spinning OpenMP threads slow a shared machine down several-fold — else the cores divided
    among the local processes.
    """
    import torch

    if options.num_threads:
        torch.set_num_threads(int(options.num_threads))
    elif "OMP_NUM_THREADS" not in os.environ and state.device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))
        small = model is not None and sum(p.numel() for p in model.parameters()) < 5_000_000
        torch.set_num_threads(1 if small else max(1, (os.cpu_count() or 1) // max(1, local)))
    return torch.get_num_threads()


def resolve_config(options: TrainingOptions, overrides: Dict[str, Any]):
    """The run's :class:`MSCLConfig`: the preset's ``model`` section (or ``init_from``'s config) + the model
    overrides among ``overrides`` (+ ``no_contrastive``). Recipe keys in ``overrides`` are left to
    :func:`resolve_recipe`; unknown keys raise."""
    from ..configuration_mscl import MSCLConfig

    overrides, _ = split_overrides(overrides)
    if options.no_contrastive:
        overrides.update(within_loss_weight=0.0, cross_loss_weight=0.0)
    if options.init_from:
        if not os.path.isfile(os.path.join(options.init_from, "config.json")):
            raise ValueError(f"--init-from {options.init_from}: no config.json there (expected a saved MSCL/converted SnAG folder)")
        # training-recipe keys of an old config.json are dropped here (MSCLConfig.from_dict)
        base = MSCLConfig.from_pretrained(options.init_from).to_dict()
        known = set(MSCLConfig().to_dict())
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            raise ValueError(f"unknown MSCLConfig field(s) in overrides: {', '.join(unknown)}")
        base.update(overrides)
        for key in ("architectures", "auto_map", "transformers_version", "model_type"):
            base.pop(key, None)
        return MSCLConfig(**base)
    return MSCLConfig.from_preset(options.resolved_preset(), **overrides)


def resolve_recipe(options: TrainingOptions, overrides: Dict[str, Any]):
    """The run's :class:`~modeling_mscl.training.TrainingRecipe`: the ``training`` section of
    ``options.resolved_preset()`` + the recipe overrides among ``overrides`` (model keys are left to
    :func:`resolve_config`; unknown keys raise). A model folder (``init_from``) carries no recipe."""
    from .recipe import TrainingRecipe

    _, recipe_overrides = split_overrides(overrides)
    return TrainingRecipe.from_preset(options.resolved_preset(), **recipe_overrides)


def resolve_dataset(options: TrainingOptions, recipe=None) -> str:
    """``options.dataset``, or the bundled benchmark generated with the recipe's ``benchmark`` options
    (generated and cached on first use; ``recipe`` defaults to :func:`resolve_recipe` without overrides)."""
    if options.dataset:
        return options.dataset
    from ..data.synthetic import default_benchmark_path

    if recipe is None:
        recipe = resolve_recipe(options, {})
    return default_benchmark_path(**recipe.benchmark)


def _split_num_videos(dataset: str, split: str) -> Optional[int]:
    from ..data.schema import read_metadata

    try:
        meta = read_metadata(dataset) if os.path.isdir(dataset) else None
        return int(meta["splits"][split]["num_videos"]) if meta else None
    except (KeyError, TypeError, ValueError):
        return None


def _build_model(options: TrainingOptions, config, recipe):
    from transformers import set_seed

    from ..modeling_mscl import MSCLForTemporalGrounding

    set_seed(recipe.seed)
    if options.init_from:
        model = MSCLForTemporalGrounding.from_pretrained(options.init_from, config=config)
    else:
        model = MSCLForTemporalGrounding(config)
    return model


def _print(state, text: str) -> None:
    if state.is_main_process:
        print(text, flush=True)


# ----------------------------------------------------------------------------------------------------
def prepare_run(options: TrainingOptions, overrides: Dict[str, Any]):
    """Everything checkable before training: config, recipe, dataset, feature widths, splits, schedule."""
    from .data import TrainingSchedule, count_training_samples, load_eval_source, load_training_source

    state = _process_state()
    config = resolve_config(options, overrides)
    recipe = resolve_recipe(options, overrides)
    dataset = resolve_dataset(options, recipe)
    eval_split = recipe.eval_split
    rank, world = state.process_index, state.num_processes
    # opening the splits checks shards, split names and feature widths against the config
    eval_rows = load_eval_source(dataset, config, eval_split, rank=rank, world_size=world)
    train_rows = schedule = None
    if not options.eval_only:
        train_rows = load_training_source(
            dataset, config, options.train_split, seed=recipe.seed, rank=rank, world_size=world,
            shuffle_buffer=options.shuffle_buffer,
        )
        num_samples, num_videos = count_training_samples(dataset, config, options.train_split, recipe=recipe)
        schedule = TrainingSchedule(
            num_samples=num_samples, num_videos=num_videos, batch_size=recipe.batch_size, world_size=world,
            gradient_accumulation_steps=recipe.gradient_accumulation_steps,
            num_epochs=recipe.num_epochs + recipe.warmup_epochs, warmup_epochs=recipe.warmup_epochs,
            max_steps_override=options.max_steps,
        )
    return state, config, recipe, dataset, eval_split, train_rows, eval_rows, schedule


def run_training(options: TrainingOptions, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train (unless ``eval_only``), save the EMA model and evaluate it; returns the metrics."""
    from .data import TrainingCollator, TrainingSampleDataset
    from .evaluation import evaluate_grounding, format_report, save_metrics
    from .trainer import MSCLTrainer

    check_not_data_parallel()  # before anything touches CUDA or the data
    overrides = dict(overrides or {})
    t0 = time.time()
    if options.eval_only:
        # the model to evaluate: --init-from, else the final model of --output-dir; results go next to it
        # unless --output-dir names another folder
        source = options.init_from or options.resolved_output_dir()
        if not os.path.isfile(os.path.join(source, "config.json")):
            raise ValueError(f"--eval-only: no model in {source} (pass --init-from DIR or an --output-dir with a final model)")
        options = _with(options, init_from=source, output_dir=options.output_dir or source)
    state, config, recipe, dataset, eval_split, train_rows, eval_rows, schedule = prepare_run(options, overrides)
    output_dir = options.resolved_output_dir()
    eval_total = _split_num_videos(dataset, eval_split)
    ranks, thresholds = recipe.eval_ranks, recipe.eval_thresholds

    if options.eval_only:
        model = _build_model(options, config, recipe)
        _set_threads(state, options, model)
        _print(state, f"evaluating {options.init_from} on {dataset}:{eval_split} (protocol of preset {options.resolved_preset()})")
        metrics = evaluate_grounding(
            model, eval_rows, config, ranks=ranks, thresholds=thresholds, progress=options.progress,
            predictions_path=os.path.join(output_dir, PREDICTIONS_NAME),
            metrics_path=os.path.join(output_dir, FINAL_METRICS_NAME),
            total=eval_total, max_videos=options.max_eval_videos,
        )
        _print(state, format_report(metrics, ranks, thresholds))
        return metrics

    model = _build_model(options, config, recipe)
    threads = _set_threads(state, options, model)
    dataset_train = TrainingSampleDataset(
        train_rows, config, recipe=recipe, samples_per_epoch=schedule.samples_per_epoch_per_process,
        num_epochs=schedule.data_epochs, rank=state.process_index, world_size=state.num_processes,
        sample_shuffle_buffer=options.sample_shuffle_buffer,
    )
    args = build_training_arguments(options, recipe, schedule)
    trainer = MSCLTrainer(
        model=model, args=args, train_dataset=dataset_train, eval_dataset=eval_rows,
        data_collator=TrainingCollator(config), recipe=recipe,
        steps_per_epoch=schedule.steps_per_epoch, eval_num_videos=eval_total, eval_max_videos=options.max_eval_videos,
    )
    source = f"recipe of preset {options.resolved_preset()}" + (" + overrides" if split_overrides(overrides)[1] else "")
    _print(state, (
        f"training {config.preset or 'custom'} ({source}; {sum(p.numel() for p in model.parameters()):,} parameters) on {dataset}:"
        f"{options.train_split} — {schedule.num_videos} videos, {schedule.num_samples} samples/epoch, "
        f"{schedule.steps_per_epoch} steps/epoch x {schedule.num_epochs} epochs ({schedule.warmup_epochs} warmup) "
        f"= {schedule.max_steps} steps, {state.num_processes} process(es) x {schedule.per_device_batch_size} videos"
        f" x {schedule.gradient_accumulation_steps} accumulation, {threads} thread(s) per process"
    ))
    if state.is_main_process:
        os.makedirs(output_dir, exist_ok=True)
    train_output = trainer.train(resume_from_checkpoint=options.resume)
    t_train = time.time() - t0

    trainer.save_ema_model(output_dir)
    _print(state, f"saved the EMA model to {output_dir}; evaluating on {eval_split}")
    metrics = evaluate_grounding(
        trainer.ema_model(), eval_rows, config, ranks=ranks, thresholds=thresholds, progress=options.progress,
        predictions_path=os.path.join(output_dir, PREDICTIONS_NAME), total=eval_total,
        max_videos=options.max_eval_videos,
    )
    metrics["train_seconds"] = round(t_train, 1)
    metrics["train_loss"] = float(train_output.training_loss)
    metrics["global_step"] = int(trainer.state.global_step)
    if state.is_main_process:
        save_metrics(metrics, os.path.join(output_dir, FINAL_METRICS_NAME))
        _write_training_config(os.path.join(output_dir, TRAINING_CONFIG_NAME), options, overrides, config, recipe,
                               dataset, eval_split, schedule, args, state)
    _print(state, format_report(metrics, ranks, thresholds))
    _print(state, f"total {time.time() - t0:.0f}s (training {t_train:.0f}s); metrics in {os.path.join(output_dir, FINAL_METRICS_NAME)}")
    return metrics


def shutdown_distributed() -> None:
    """End of a run: release the data streams, and in a multi-process run DDP and the process group, while
    every process is still there.

    The streaming datasets' parquet readers run pyarrow threads; a reader left in a reference cycle is only
    collected during interpreter shutdown, after Arrow's memory pools are gone, where its threads can abort
    the process (``terminate called without an active exception``, exit 134: apache/arrow#34314,
    huggingface/datasets#7566) after a run that succeeded. One collection here, while Arrow is alive, joins
    them. Destroying a DDP wrapper (or gloo state) after a peer process has already exited can block; so
    wait for everyone, collect the trainers' wrappers, wait again and destroy the process group.
    """
    import gc

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        gc.collect()
        return
    dist.barrier()
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def _with(options: TrainingOptions, **changes) -> TrainingOptions:
    import dataclasses

    return dataclasses.replace(options, **changes)


def _write_training_config(path, options, overrides, config, recipe, dataset, eval_split, schedule, args, state) -> None:
    import accelerate
    import datasets
    import torch
    import transformers

    model_overrides, recipe_overrides = split_overrides(overrides)
    data = {
        "options": options.to_dict(),
        "preset": options.resolved_preset(),
        "recipe": recipe.to_dict(),
        "config_overrides": model_overrides,
        "recipe_overrides": recipe_overrides,
        "dataset": dataset,
        "eval_split": eval_split,
        "schedule": schedule.to_dict(),
        "num_processes": state.num_processes,
        "distributed_type": str(state.distributed_type),
        "training_arguments": {k: v for k, v in args.to_dict().items() if isinstance(v, (int, float, str, bool, type(None)))},
        "config": config.to_dict(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__, "datasets": datasets.__version__},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------
# Ablation
# ----------------------------------------------------------------------------------------------------
def run_ablation(
    options: TrainingOptions,
    overrides: Optional[Dict[str, Any]] = None,
    variants: Sequence[str] = ("off", "on", "within", "cross"),
    seeds: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """The same run with the contrastive terms off / on / within-only / cross-only, for one or more seeds.

    Without ``seeds``: one run per variant with the recipe's seed, in ``<output_dir>/<variant>``; the summary
    (``ablation.json``: ``{"variants": {variant: metrics}, ...}``) and the markdown tables (``ablation.md``,
    also printed) go to ``output_dir``. Returns ``{variant: metrics}``.

    With ``seeds`` (the recipe's ``seed`` set to each in turn: initialisation, data order and contrastive
    draws all change): every variant runs once per seed in ``<output_dir>/seed-<seed>/<variant>``, each seed
    folder gets its own ``ablation.json``/``ablation.md``, and ``output_dir`` gets the aggregate —
    ``ablation.json`` (``{"seeds", "per_seed": {seed: {variant: metrics}}, "aggregate": {variant: {metric:
    {"values", "mean", "std"}}}}``) and ``ablation.md`` (mean ± sample std table, then one table per metric
    with every seed's value), also printed. Returns ``{"per_seed": ..., "aggregate": ...}``.
    """
    from .evaluation import save_metrics

    overrides = dict(overrides or {})
    unknown = [v for v in variants if v not in ABLATION_VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; choose from {', '.join(ABLATION_VARIANTS)}")
    if seeds is not None:
        seeds = [int(x) for x in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
        if "seed" in overrides:
            raise ValueError("give either --seed (one run) or --seeds (one run per seed), not both")
    base_config = resolve_config(options, overrides)
    recipe = resolve_recipe(options, overrides)
    root = options.output_dir or f"outputs/mscl-{options.resolved_preset()}-ablation"
    state = _process_state()

    def one_seed(folder: str, seed_overrides: Dict[str, Any]) -> Dict[str, Any]:
        results: Dict[str, Any] = {}
        for variant in variants:
            within, cross = ABLATION_VARIANTS[variant]
            run_overrides = dict(seed_overrides)
            run_overrides["within_loss_weight"] = base_config.within_loss_weight if within is None else within
            run_overrides["cross_loss_weight"] = base_config.cross_loss_weight if cross is None else cross
            run_options = _with(options, output_dir=os.path.join(folder, variant), no_contrastive=False, resume=None,
                                eval_only=False)
            results[variant] = run_training(run_options, run_overrides)
            results[variant]["within_loss_weight"] = run_overrides["within_loss_weight"]
            results[variant]["cross_loss_weight"] = run_overrides["cross_loss_weight"]
        table = format_ablation_tables(results, recipe.eval_ranks, recipe.eval_thresholds)
        if state.is_main_process:
            os.makedirs(folder, exist_ok=True)
            save_metrics({"variants": results, "overrides": seed_overrides}, os.path.join(folder, "ablation.json"))
            with open(os.path.join(folder, "ablation.md"), "w", encoding="utf-8") as f:
                f.write(table + "\n")
        _print(state, table)
        return results

    if seeds is None:
        return one_seed(root, overrides)

    per_seed: Dict[int, Dict[str, Any]] = {}
    for seed in seeds:
        _print(state, f"=== seed {seed} ({len(per_seed) + 1}/{len(seeds)}) ===")
        per_seed[seed] = one_seed(os.path.join(root, f"seed-{seed}"), {**overrides, "seed": seed})
    metric_keys = [f"R{k}@{t:g}" for k in recipe.eval_ranks for t in recipe.eval_thresholds] + ["mIoU"]
    aggregate = aggregate_seeds(per_seed, metric_keys)
    table = format_seed_tables(per_seed, aggregate, metric_keys)
    if state.is_main_process:
        os.makedirs(root, exist_ok=True)
        save_metrics({"seeds": seeds, "overrides": overrides, "per_seed": {str(k): v for k, v in per_seed.items()},
                      "aggregate": aggregate}, os.path.join(root, "ablation.json"))
        with open(os.path.join(root, "ablation.md"), "w", encoding="utf-8") as f:
            f.write(table + "\n")
    _print(state, table)
    return {"per_seed": per_seed, "aggregate": aggregate}


def aggregate_seeds(per_seed: Dict[Any, Dict[str, Dict[str, Any]]], metric_keys: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """``{seed: {variant: metrics}}`` → ``{variant: {metric: {"values", "mean", "std"}}}``.

    ``values`` follow the seeds' order; ``std`` is the sample standard deviation (``n − 1`` in the
    denominator; ``nan`` for a single seed). A metric missing from some seed's results is left out.
    """
    import math

    variants: List[str] = []
    for results in per_seed.values():
        variants += [v for v in results if v not in variants]
    out: Dict[str, Dict[str, Any]] = {}
    for variant in variants:
        entry: Dict[str, Any] = {}
        for key in metric_keys:
            values = [per_seed[s].get(variant, {}).get(key) for s in per_seed]
            if any(v is None for v in values):
                continue
            values = [float(v) for v in values]
            n = len(values)
            mean = sum(values) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
            entry[key] = {"values": values, "mean": mean, "std": std}
        out[variant] = entry
    return out


def format_seed_tables(per_seed: Dict[Any, Dict[str, Dict[str, Any]]], aggregate: Dict[str, Dict[str, Any]],
                       metric_keys: Sequence[str], digits: int = 1) -> str:
    """Markdown: ``mean ± std`` over the seeds per variant and metric, then per metric one table with every
    seed's value and the mean ± std."""
    import math

    def fmt(v):
        return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    def pm(stats):
        if stats is None:
            return "-"
        return fmt(stats["mean"]) + ("" if not math.isfinite(stats["std"]) else f" ± {fmt(stats['std'])}")

    seeds = list(per_seed)
    keys = [k for k in metric_keys if any(k in a for a in aggregate.values())]
    lines = [f"Mean ± sample standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}):", "",
             "| contrastive terms | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for variant, stats in aggregate.items():
        lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | " + " | ".join(pm(stats.get(k)) for k in keys) + " |")
    for key in keys:
        lines += ["", f"| {key} | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for variant, stats in aggregate.items():
            if key not in stats:
                continue
            cells = [fmt(v) for v in stats[key]["values"]] + [pm(stats[key])]
            lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


VARIANT_LABELS = {
    "off": "no contrastive",
    "on": "within + cross",
    "within": "within only",
    "cross": "cross only",
}


def format_ablation_tables(results: Dict[str, Dict[str, Any]], ranks, thresholds, digits: int = 1) -> str:
    """Markdown: R@K at every θ (+ mIoU) per variant, then R@K at each θ per moment-length bucket."""
    import math

    def fmt(v):
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):.{digits}f}"

    cols = [f"R{k}@{t:g}" for k in ranks for t in thresholds]
    lines = ["| contrastive terms | " + " | ".join(cols) + " | mIoU |", "|---|" + "---|" * (len(cols) + 1)]
    for variant, m in results.items():
        lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | " + " | ".join(fmt(m.get(c)) for c in cols)
                     + f" | {fmt(m.get('mIoU'))} |")
    buckets: List[str] = []
    for m in results.values():
        for label in (m.get("by_moment_length") or {}):
            if label not in buckets:
                buckets.append(label)
    rank_label = " / ".join(f"R{k}" for k in ranks)
    for t in thresholds:
        lines += ["", f"{rank_label} at tIoU {t:g} by moment length (fraction of the video):", ""]
        counts = []
        for label in buckets:
            n = next((int(m["by_moment_length"][label].get("num_queries", 0)) for m in results.values()
                      if label in (m.get("by_moment_length") or {})), 0)
            counts.append(f"{label} (n={n})")
        lines.append("| contrastive terms | " + " | ".join(counts) + " |")
        lines.append("|---|" + "---|" * len(buckets))
        for variant, m in results.items():
            per = m.get("by_moment_length") or {}
            cells = [" / ".join(fmt(per.get(b, {}).get(f"R{k}@{t:g}")) for k in ranks) for b in buckets]
            lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "ABLATION_VARIANTS",
    "aggregate_seeds",
    "format_ablation_tables",
    "format_seed_tables",
    "prepare_run",
    "resolve_config",
    "resolve_dataset",
    "resolve_recipe",
    "run_ablation",
    "run_training",
    "shutdown_distributed",
]
