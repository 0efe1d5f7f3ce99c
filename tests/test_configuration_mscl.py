"""MSCLConfig: presets as data, overrides, validation, serialisation, folders saved before the recipe moved out."""

import json

import pytest
import torch

from modeling_mscl import PRESET_NAMES, MSCLConfig, MSCLForTemporalGrounding
from modeling_mscl.configuration_mscl import LEGACY_RECIPE_KEYS, load_preset
from modeling_mscl.training.recipe import RECIPE_FIELDS, TrainingRecipe

from conftest import TINY_MODEL, tiny_config

# (preset, field, value) spot checks against the SnAG notes §9 table
SNAG_TABLE = [
    ("tacos_c3d", "video_input_dim", 4096), ("tacos_c3d", "attention_window", 19), ("tacos_c3d", "downsample_rate", 4),
    ("tacos_c3d", "fusion_mode", "affine"), ("tacos_c3d", "loss_normalizer_init", 100.0),
    ("mad_clip", "video_input_stride", 2), ("mad_clip", "video_use_abs_pe", False), ("mad_clip", "text_encoder_type", "identity"),
    ("mad_clip", "max_segments", 50), ("mad_clip", "pre_nms_topk", 200), ("mad_clip", "eval_ranks", [1, 5, 10, 50]),
    ("ego4d_slowfast_bert", "text_num_layers", 1), ("ego4d_slowfast_bert", "regression_loss_type", "iou"),
    ("ego4d_egovlp", "text_hidden_size", 768), ("ego4d_egovlp", "downsample_rate", 2),
    ("charades_c3d", "num_stem_blocks", 1), ("charades_c3d", "regression_range", 8.0), ("charades_c3d", "fixed_length", 256),
    ("charades_i3d", "weight_decay", 5e-4), ("charades_i3d", "video_input_dim", 2048),
    ("anet_c3d", "regression_loss_weight", 2.0), ("anet_c3d", "query_grouping", "random"),
    ("anet_c3d", "module_learning_rates", {"text_encoder": 2e-4}), ("anet_c3d", "eval_split", "val_2"),
]


@pytest.mark.parametrize("preset,field,value", SNAG_TABLE)
def test_presets_follow_snag_table(preset, field, value):
    # each setting lives in one place: the model section (MSCLConfig) or the training section (TrainingRecipe)
    owner = TrainingRecipe.from_preset(preset) if field in RECIPE_FIELDS else MSCLConfig.from_preset(preset)
    assert getattr(owner, field) == value


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_loads_and_round_trips_through_json(preset, tmp_path):
    cfg = MSCLConfig.from_preset(preset)
    assert cfg.preset == preset and cfg.model_type == "mscl"
    cfg.save_pretrained(tmp_path)
    back = MSCLConfig.from_pretrained(tmp_path)
    a, b = cfg.to_dict(), back.to_dict()
    for key in ("transformers_version",):
        a.pop(key, None), b.pop(key, None)
    assert a == b


def test_contrastive_defaults_and_paper_weights():
    cfg = MSCLConfig.from_preset("tacos_c3d")
    assert cfg.within_loss_weight == cfg.cross_loss_weight == 1.0  # paper: ρ_within = ρ_cross = 1
    assert cfg.contrastive_negative_ratio == 1.0  # |N(l)| = |P(l)|
    assert cfg.contrastive_radius == 1.5
    assert cfg.contrastive_reduction == "mean"


def test_overrides_and_errors():
    cfg = MSCLConfig.from_preset("quickstart", hidden_size=32, contrastive_temperature=0.5)
    assert cfg.hidden_size == 32 and cfg.contrastive_temperature == 0.5
    with pytest.raises(ValueError, match="unknown preset 'tacos'"):
        MSCLConfig.from_preset("tacos")
    with pytest.raises(ValueError, match="unknown MSCLConfig field"):
        MSCLConfig.from_preset("quickstart", hiden_size=3)
    with pytest.raises(ValueError, match="fusion_mode"):
        MSCLConfig(fusion_mode="residual")
    with pytest.raises(ValueError, match="attention_window"):
        MSCLConfig(attention_window=4)
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        MSCLConfig(hidden_size=30)
    with pytest.raises(ValueError, match="identity"):
        MSCLConfig(text_encoder_type="identity", text_input_dim=512, text_hidden_size=128)
    with pytest.raises(ValueError, match="max_video_length"):
        MSCLConfig(max_video_length=2300)
    with pytest.raises(ValueError, match="contrastive_temperature"):
        MSCLConfig(contrastive_temperature=0.0)


def test_presets_are_data_files():
    for name in PRESET_NAMES:
        with open(MSCLConfig.preset_path(name), encoding="utf-8") as f:
            data = json.load(f)
        assert data["model"]["video_input_dim"] > 0
        assert set(data) == {"_comment", "model", "training"}
        # every key of a section belongs to the object that reads it, and nowhere else
        assert not set(data["model"]) & set(RECIPE_FIELDS), name
        assert set(data["training"]) <= set(RECIPE_FIELDS), name
        assert MSCLConfig.from_preset(name).to_dict().items() >= {
            k: v for k, v in MSCLConfig(**data["model"]).to_dict().items() if k != "preset"}.items()
        assert TrainingRecipe.from_preset(name) == TrainingRecipe(**data["training"])


def test_model_and_recipe_fields_are_disjoint():
    model_fields = set(MSCLConfig().to_dict())
    assert not model_fields & set(RECIPE_FIELDS)
    assert LEGACY_RECIPE_KEYS <= set(RECIPE_FIELDS)


def test_recipe_keys_are_refused_by_the_model_config():
    with pytest.raises(ValueError, match=r"learning_rate.*training recipe.*TrainingRecipe"):
        MSCLConfig(learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"batch_size: training-recipe field.*TrainingRecipe\.from_preset"):
        MSCLConfig.from_preset("tacos_c3d", batch_size=8)
    with pytest.raises(ValueError, match=r"unknown preset 'debug' \(renamed to 'quickstart'\)"):
        MSCLConfig.from_preset("debug")


def test_preset_file_needs_both_sections(tmp_path, monkeypatch):
    import modeling_mscl.configuration_mscl as cm

    (tmp_path / "quickstart.json").write_text(json.dumps({"_comment": "x", "model": {}, "recipe": {}}))
    monkeypatch.setattr(cm, "preset_path", lambda name: str(tmp_path / f"{name}.json"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) recipe; missing training"):
        load_preset("quickstart")


# The recipe keys (and their values) a config.json of the former `debug` preset carried.
OLD_RECIPE_KEYS = {
    "max_queries_per_video": 4, "query_grouping": "greedy", "crop_ratio": [0.9, 1.0], "truncation_threshold": 0.5,
    "learning_rate": 0.002, "module_learning_rates": {}, "weight_decay": 0.05, "batch_size": 8,
    "gradient_accumulation_steps": 1, "num_epochs": 4, "warmup_epochs": 1, "ema_decay": 0.99, "max_grad_norm": 1.0,
    "seed": 1234567891, "eval_ranks": [1, 5], "eval_thresholds": [0.3, 0.5, 0.7], "eval_split": "test",
}


def _old_folder(tmp_path):
    """A model folder whose config.json was written the old way: model and recipe keys side by side."""
    torch.manual_seed(0)
    model = MSCLForTemporalGrounding(tiny_config(preset="debug"))
    folder = tmp_path / "old"
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(OLD_RECIPE_KEYS)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    assert LEGACY_RECIPE_KEYS == set(OLD_RECIPE_KEYS)  # every key the old MSCLConfig had beyond the model
    return model, folder


def test_folder_saved_before_the_recipe_moved_still_loads(tmp_path):
    from transformers import AutoConfig, AutoModel

    model, folder = _old_folder(tmp_path)
    model.save_pretrained(tmp_path / "new")  # the same model, saved the new way
    reference = MSCLConfig.from_pretrained(tmp_path / "new").to_dict()
    reference.pop("_name_or_path")
    for config in (MSCLConfig.from_pretrained(folder), AutoConfig.from_pretrained(folder)):
        assert isinstance(config, MSCLConfig)
        assert not any(hasattr(config, k) for k in OLD_RECIPE_KEYS)
        assert {k: v for k, v in config.to_dict().items() if k != "_name_or_path"} == reference
    loaded = AutoModel.from_pretrained(folder)
    assert not any(k in loaded.config.to_dict() for k in OLD_RECIPE_KEYS)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in loaded.state_dict().items())
    # re-saving does not carry the stale keys along
    loaded.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert not set(again) & set(OLD_RECIPE_KEYS)
    assert again["hidden_size"] == TINY_MODEL["hidden_size"]
