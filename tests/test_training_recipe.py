# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""TrainingRecipe: presets' training sections, validation, and how the command line routes settings to the
model configuration, the recipe and the run options; `run.py` without arguments is the `quickstart` preset."""

import json

import pytest

from modeling_mscl import PRESET_NAMES, MSCLConfig
from modeling_mscl.training.args import (
    OPTION_FIELDS,
    TrainingOptions,
    build_parser,
    config_field_names,
    options_from_args,
    recipe_field_names,
    split_overrides,
)
from modeling_mscl.training.experiment import resolve_config, resolve_recipe
from modeling_mscl.training.recipe import RECIPE_FIELDS, TrainingRecipe, recipe_from_training_config

from conftest import tiny_config


def _resolve(argv):
    options, overrides = options_from_args(build_parser().parse_args(argv))
    return options, resolve_config(options, overrides), resolve_recipe(options, overrides)


# ----------------------------------------------------------------------------------------------------
# the recipe object
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_has_a_valid_recipe(preset):
    recipe = TrainingRecipe.from_preset(preset)
    assert recipe == TrainingRecipe.from_dict(json.loads(json.dumps(recipe.to_dict())))  # JSON round trip
    assert recipe.replace() == recipe


def test_values_are_coerced_like_the_config():
    recipe = TrainingRecipe(learning_rate="1e-3", batch_size=8.0, crop_ratio=(0.8, 1), eval_thresholds=[1])
    assert recipe.learning_rate == 1e-3 and isinstance(recipe.batch_size, int) and recipe.batch_size == 8
    assert recipe.crop_ratio == [0.8, 1.0] and recipe.eval_thresholds == [1.0]


BAD = [
    ("learning_rate", 0.0, "learning_rate must be a finite number > 0"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("batch_size", 2.5, "batch_size must be an integer"),
    ("gradient_accumulation_steps", 0, "gradient_accumulation_steps must be >= 1"),
    ("weight_decay", -0.1, "weight_decay must be >= 0"),
    ("warmup_epochs", -1, "warmup_epochs must be >= 0"),
    ("ema_decay", 1.5, r"ema_decay must be in \[0, 1\]"),
    ("max_grad_norm", -1.0, "max_grad_norm must be >= 0"),
    ("query_grouping", "all", "query_grouping must be one of"),
    ("crop_ratio", [0.9], "crop_ratio must be null or"),
    ("crop_ratio", [1.0, 0.5], "crop_ratio must be null or"),
    ("truncation_threshold", 1.0, r"truncation_threshold must be in \[0, 1\)"),
    ("max_queries_per_video", 0, "max_queries_per_video must be >= 1"),
    ("eval_ranks", [], "eval_ranks must be a non-empty list"),
    ("eval_thresholds", [0.5, 1.5], "eval_thresholds must be a non-empty list"),
    ("module_learning_rates", {"decoder": 1e-4}, r"module_learning_rates has unknown module\(s\) \['decoder'\]"),
    ("module_learning_rates", {"fusion": 0.0}, r"module_learning_rates\['fusion'\] must be > 0"),
    ("seed", "abc", "seed must be a number"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=r"TrainingRecipe\." + message):
        TrainingRecipe(**{field: value})


def test_unknown_keys_and_epochs():
    with pytest.raises(ValueError, match="unknown TrainingRecipe field.*hidden_size"):
        TrainingRecipe.from_dict({"hidden_size": 8})
    with pytest.raises(ValueError, match="unknown TrainingRecipe field.*in overrides: lerning_rate"):
        TrainingRecipe.from_preset("tacos_c3d", lerning_rate=1.0)
    with pytest.raises(ValueError, match="at least one epoch"):
        TrainingRecipe(num_epochs=0, warmup_epochs=0)
    assert TrainingRecipe.from_dict({"_comment": "ignored", "seed": 3}).seed == 3


def test_recipe_recorded_by_a_run_new_and_old_layout():
    recipe = TrainingRecipe.from_preset("anet_c3d")
    assert recipe_from_training_config({"recipe": recipe.to_dict()}) == recipe
    # runs from before the recipe left the configuration recorded it inside "config"
    old = {"config": {"hidden_size": 128, "learning_rate": 0.002, "batch_size": 16, "eval_split": "val_2"}}
    assert recipe_from_training_config(old) == TrainingRecipe(learning_rate=0.002, batch_size=16, eval_split="val_2")
    assert recipe_from_training_config({"config": {"hidden_size": 128}}) is None
    assert recipe_from_training_config({}) is None


# ----------------------------------------------------------------------------------------------------
# routing: --set and the direct flags
# ----------------------------------------------------------------------------------------------------
def test_the_three_kinds_of_keys_are_disjoint():
    model, recipe = set(config_field_names()), set(recipe_field_names())
    assert recipe == set(RECIPE_FIELDS)
    assert not model & recipe and not recipe & OPTION_FIELDS
    assert model & OPTION_FIELDS == {"preset"}  # --set preset=... is the run option (the config records it)


def test_set_and_flags_route_each_key_to_its_owner():
    options, config, recipe = _resolve([
        "--set", "hidden_size=32", "--set", "learning_rate=5e-4", "--set", "crop_ratio=null",
        "--set", 'module_learning_rates={"text_encoder": 2e-4}', "--set", "max_eval_videos=3",
        "--batch-size", "4", "--seed", "7", "--eval-split", "train",
    ])
    assert config.hidden_size == 32 and not hasattr(config, "learning_rate")
    assert (recipe.learning_rate, recipe.crop_ratio, recipe.batch_size, recipe.seed, recipe.eval_split) == (
        5e-4, None, 4, 7, "train")
    assert recipe.module_learning_rates == {"text_encoder": 2e-4}
    assert options.max_eval_videos == 3
    assert split_overrides({"hidden_size": 32, "ema_decay": 0.9}) == ({"hidden_size": 32}, {"ema_decay": 0.9})


def test_unknown_or_invalid_keys_are_errors():
    for argv in (["--set", "hiden_size=3"], ["--set", "lerning_rate=1"]):
        with pytest.raises(ValueError, match="not a model config field, a training-recipe field nor a run option"):
            options_from_args(build_parser().parse_args(argv))
    with pytest.raises(ValueError, match="override nope"):
        split_overrides({"nope": 1})
    with pytest.raises(ValueError, match=r"TrainingRecipe\.batch_size must be >= 1"):
        _resolve(["--set", "batch_size=0"])


# ----------------------------------------------------------------------------------------------------
# presets: run.py without arguments, --init-from
# ----------------------------------------------------------------------------------------------------
# What `run.py` without arguments resolved to before the Quickstart recipe became a preset: the former `debug`
# preset with QUICKSTART_OVERRIDES (max_video_length 128, no dropout, no absolute position encoding) applied on
# top, every field of the old flat MSCLConfig, and DEFAULT_BENCHMARK as the benchmark options.
OLD_QUICKSTART = {
    "video_input_dim": 32, "hidden_size": 64, "video_input_stride": 1, "max_video_length": 128, "num_embedding_convs": 2,
    "num_stem_blocks": 0, "num_pyramid_levels": 5, "attention_window": 5, "video_use_abs_pe": False,
    "num_attention_heads": 4, "attention_dropout": 0.0, "hidden_dropout": 0.0, "drop_path": 0.0,
    "layer_scale_init": 0.0001, "text_input_dim": 32, "text_hidden_size": 32, "text_encoder_type": "transformer",
    "text_num_layers": 1, "max_text_length": 16, "text_use_abs_pe": True, "text_use_background_token": True,
    "fusion_num_layers": 2, "fusion_mode": "affine", "head_num_layers": 2, "head_prior_prob": 0.0,
    "regression_range": 4.0, "regression_range_sigma": 0.5, "center_sampling_radius": 1.5, "focal_alpha": 0.5,
    "focal_gamma": 2.0, "label_smoothing": 0.2, "regression_loss_type": "diou", "regression_loss_weight": 1.0,
    "loss_normalizer_init": 20.0, "loss_normalizer_momentum": 0.9, "within_loss_weight": 1.0, "cross_loss_weight": 1.0,
    "contrastive_temperature": 0.1, "contrastive_normalize": True, "contrastive_reduction": "mean",
    "contrastive_negative_ratio": 1.0, "contrastive_radius": 1.5, "pre_nms_threshold": 0.001, "pre_nms_topk": 2000,
    "min_segment_length": 0.1, "nms_sigma": 0.9, "nms_min_score": 0.001, "max_segments": 5, "voting_threshold": 0.95,
    "inference_query_chunk_size": 16, "fps": 1.0, "clip_size": 1.0, "clip_stride": 1.0, "downsample_rate": 1,
    "fixed_length": None, "max_queries_per_video": 4, "query_grouping": "greedy", "crop_ratio": [0.9, 1.0],
    "truncation_threshold": 0.5, "learning_rate": 0.002, "module_learning_rates": {}, "weight_decay": 0.05,
    "batch_size": 8, "gradient_accumulation_steps": 1, "num_epochs": 4, "warmup_epochs": 1, "ema_decay": 0.99,
    "max_grad_norm": 1.0, "seed": 1234567891, "eval_ranks": [1, 5], "eval_thresholds": [0.3, 0.5, 0.7],
    "eval_split": "test",
    "text_feature_source": {"type": "precomputed", "note": "synthetic token features of the bundled benchmark"},
}
OLD_BENCHMARK = {"num_verbs": 8, "num_objects": 16, "num_modifiers": 8}


def test_run_without_arguments_is_the_quickstart_preset_with_the_old_settings():
    options, config, recipe = _resolve([])
    assert options.resolved_preset() == "quickstart" and config.preset == "quickstart"
    assert options.resolved_output_dir() == "outputs/mscl-quickstart"
    assert (config.to_dict(), recipe.to_dict()) == (
        MSCLConfig.from_preset("quickstart").to_dict(), TrainingRecipe.from_preset("quickstart").to_dict())
    new = {k: v for k, v in config.to_dict().items() if k in OLD_QUICKSTART}
    new.update({k: v for k, v in recipe.to_dict().items() if k != "benchmark"})
    assert new == OLD_QUICKSTART
    assert recipe.benchmark == OLD_BENCHMARK
    # nothing is applied behind the user's back: an explicit dataset gets the same preset
    _, with_dataset, _ = _resolve(["--dataset", "some/where"])
    assert with_dataset.to_dict() == config.to_dict()


def test_init_from_takes_the_model_from_the_folder_and_the_recipe_from_the_preset(tmp_path):
    from modeling_mscl import MSCLForTemporalGrounding

    folder = tmp_path / "old"
    MSCLForTemporalGrounding(tiny_config(preset="tacos_c3d", hidden_size=32)).save_pretrained(folder)
    config_json = json.loads((folder / "config.json").read_text())
    config_json.update(learning_rate=0.5, batch_size=3, eval_split="val_9")  # recipe keys of an old folder
    (folder / "config.json").write_text(json.dumps(config_json))
    options, config, recipe = _resolve(["--init-from", str(folder), "--set", "drop_path=0.0"])
    assert config.hidden_size == 32 and config.drop_path == 0.0 and not hasattr(config, "learning_rate")
    # the recipe: the preset the folder records (its old recipe keys are ignored)
    assert options.resolved_preset() == "tacos_c3d" and recipe == TrainingRecipe.from_preset("tacos_c3d")
    _, _, recipe = _resolve(["--init-from", str(folder), "--preset", "anet_c3d", "--learning-rate", "1e-4"])
    assert recipe == TrainingRecipe.from_preset("anet_c3d", learning_rate=1e-4)
    # a folder of the renamed `debug` preset gets the quickstart recipe; one without a known preset, the default
    for recorded in ("debug", None, "tacos_i3d"):
        config_json["preset"] = recorded
        (folder / "config.json").write_text(json.dumps(config_json))
        assert TrainingOptions(init_from=str(folder)).resolved_preset() == "quickstart"
