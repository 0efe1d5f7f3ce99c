"""MSCLConfig: presets as data, overrides, validation, serialisation."""

import json

import pytest

from modeling_mscl import PRESET_NAMES, MSCLConfig

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
    assert getattr(MSCLConfig.from_preset(preset), field) == value


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
    cfg = MSCLConfig.from_preset("debug", hidden_size=32, contrastive_temperature=0.5)
    assert cfg.hidden_size == 32 and cfg.contrastive_temperature == 0.5
    with pytest.raises(ValueError, match="unknown preset 'tacos'"):
        MSCLConfig.from_preset("tacos")
    with pytest.raises(ValueError, match="unknown MSCLConfig field"):
        MSCLConfig.from_preset("debug", hiden_size=3)
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
        assert data["video_input_dim"] > 0
