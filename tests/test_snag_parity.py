"""SnAG parity and checkpoint conversion (issue 7).

* Option mapping (``modeling_mscl.snag.options``): preset round trips, yaml-form defaults, every unsupported
  option and unknown key rejected by name. These need nothing outside the repository.
* Fixture parity: the recorded outputs of SnAG's official code (``../shared/reference/fixtures``) for
  a shrunken TACoS-style and MAD-style model, reproduced by an MSCL model whose config comes from
  ``config_from_snag_opt`` and whose weights come from ``python -m modeling_mscl.convert_snag``.
* Converter error handling: nothing is written on any error.

The Soft-NMS + voting fixture (20 cases x max_num_segs 5 and 50) is covered by tests/test_nms_mscl.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

import modeling_mscl  # noqa: F401  (registers the auto classes)
from modeling_mscl import PRESET_NAMES, MSCLConfig, TimeMapping
from modeling_mscl.convert_snag import convert_snag_checkpoint, load_snag_state_dict
from modeling_mscl.losses_mscl import assign_labels
from modeling_mscl.snag.options import (
    SNAG_MAPPED_FIELDS,
    SNAG_RECIPE_FIELDS,
    config_from_snag_opt,
    config_kwargs_from_snag_opt,
    recipe_from_snag_opt,
    snag_opt_from_config,
)
from modeling_mscl.training.recipe import TrainingRecipe

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "reference" / "fixtures"
FIXTURE_NAMES = ("tacos", "mad")

# SnAG trains without the contrastive terms, so from_snag_opt sets their weights to 0
SNAG_FIELDS = tuple(f for f in SNAG_MAPPED_FIELDS if f not in ("within_loss_weight", "cross_loss_weight"))
# the model part (what a converted folder's config.json holds)
SNAG_MODEL_FIELDS = tuple(f for f in SNAG_FIELDS if f not in SNAG_RECIPE_FIELDS)


def _preset(name):
    """A preset's model and training sections as one flat dict (the SnAG option mapping covers both)."""
    return {**MSCLConfig.from_preset(name).to_dict(), **TrainingRecipe.from_preset(name).to_dict()}


def _from_snag_opt(opt):
    return {**config_from_snag_opt(copy.deepcopy(opt)).to_dict(), **recipe_from_snag_opt(copy.deepcopy(opt)).to_dict()}


def _need_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("../shared not found: the SnAG parity fixtures are only in the development checkout")


# ============================================================================================
# option mapping (no fixtures needed)
# ============================================================================================


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_from_snag_opt_round_trip(preset):
    config, recipe = MSCLConfig.from_preset(preset), TrainingRecipe.from_preset(preset)
    opt = snag_opt_from_config(config, recipe)
    a, b = _preset(preset), _from_snag_opt(opt)
    assert {f: a[f] for f in SNAG_FIELDS} == {f: b[f] for f in SNAG_FIELDS}
    assert b["within_loss_weight"] == 0.0 and b["cross_loss_weight"] == 0.0
    # the yaml form survives a trip through yaml text (numbers, nulls, lists)
    yaml = pytest.importorskip("yaml")
    again = config_kwargs_from_snag_opt(yaml.safe_load(yaml.safe_dump(opt)))
    assert {f: again[f] for f in SNAG_FIELDS} == {f: b[f] for f in SNAG_FIELDS}


def _tacos_opt():
    return snag_opt_from_config(MSCLConfig.from_preset("tacos_c3d"), TrainingRecipe.from_preset("tacos_c3d"))


def _set(opt, path, value):
    *parents, last = path.split(".")
    node = opt
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return opt


_DELETE = object()


def test_yaml_form_defaults_are_snags():
    """Keys left out of a yaml take SnAG's defaults (global defaults, then the reading module's)."""
    opt = _tacos_opt()
    for path in ("train.center_sampling", "train.loss_norm_momentum", "train.clip_grad_norm", "train.ema_beta",
                 "eval.nms", "pt_gen.sigma", "model.text_net.n_layers", "model.fusion.attn_pdrop",
                 "model.fusion.proj_pdrop", "model.fusion.path_pdrop", "model.fusion.n_layers", "seed",
                 "train.data.trunc_thresh", "train.data.group_method", "model.vid_net.stride"):
        _set(opt, path, _DELETE)
    kw = config_kwargs_from_snag_opt(opt)
    ref = _preset("tacos_c3d")
    for field in ("center_sampling_radius", "loss_normalizer_momentum", "max_grad_norm", "ema_decay", "nms_sigma",
                  "max_segments", "voting_threshold", "nms_min_score", "regression_range_sigma", "text_num_layers",
                  "fusion_num_layers", "truncation_threshold", "query_grouping", "video_input_stride", "seed"):
        assert kw[field] == ref[field], field
    # the text transformer's own dropout default is 0, the fusion's global default is not: they clash
    opt = _set(_tacos_opt(), "model.text_net.proj_pdrop", _DELETE)
    with pytest.raises(ValueError, match=r"model\.text_net\.proj_pdrop = 0\.0.*hidden_dropout"):
        config_kwargs_from_snag_opt(opt)


def test_micro_batches_and_module_learning_rates():
    opt = _tacos_opt()
    opt["train"].update(batch_size=6, microbatch_size=2)
    opt["train"]["optimizer"].update(text_net_lr=2e-4, vid_net_lr=3e-4, reg_head_lr="1e-5")
    kw = config_kwargs_from_snag_opt(opt)
    assert (kw["batch_size"], kw["gradient_accumulation_steps"]) == (2, 3)
    assert kw["module_learning_rates"] == {"text_encoder": 2e-4, "video_encoder": 3e-4, "reg_head": 1e-5}
    opt["train"]["microbatch_size"] = 4
    with pytest.raises(ValueError, match="train.batch_size = 6 and train.microbatch_size = 4"):
        config_kwargs_from_snag_opt(opt)


def test_grid_and_input_units():
    """vid_net.max_seq_len is in grid steps; train.data.max_vid_len (merged form) in input features."""
    opt = snag_opt_from_config(MSCLConfig.from_preset("mad_clip"), TrainingRecipe.from_preset("mad_clip"))
    opt["model"].update(max_vid_len=4096, vid_stride=2)
    opt["train"]["data"]["max_vid_len"] = 8192
    opt["pt_gen"]["max_seq_len"] = 4 * 4096  # the evaluator's point buffer
    assert config_kwargs_from_snag_opt(opt)["max_video_length"] == 4096
    opt["train"]["data"]["max_vid_len"] = 4096
    with pytest.raises(ValueError, match=r"train\.data\.max_vid_len = 4096 contradicts"):
        config_kwargs_from_snag_opt(opt)


def test_operational_keys_are_ignored_and_unknown_keys_rejected():
    opt = _tacos_opt()
    opt["log"] = {"log_interval": 5, "checkpoint_epochs": [-1]}
    opt["_root"] = "/ckpt/tacos"
    opt["train"]["num_workers"] = 8
    opt["train"]["data"].update(anno_file="a.json", vid_feat_dir=["x", "y"], text_feat_dir=None)
    config_kwargs_from_snag_opt(opt)
    for path in ("model.vid_net.use_rel_pe", "train.mixup", "eval.nms.top_k", "foo"):
        bad = _set(_tacos_opt(), path, 1)
        with pytest.raises(ValueError, match=rf"unknown SnAG option\(s\): {path.replace('.', r'[.]')}"):
            config_kwargs_from_snag_opt(bad)


UNSUPPORTED = [
    ("model.vid_net.name", "convtransformer"),
    ("model.vid_net.stride", 4),
    ("model.vid_net.mha_win_size", 0),
    ("model.vid_net.arch", [2, 0]),
    ("model.text_net.name", "lstm"),
    ("model.fusion.name", "concat"),
    ("model.fusion.xattn_mode", "add"),
    ("model.cls_head.prior_prob", 1.0),
    ("pt_gen.use_offset", True),
    ("pt_gen.sigma", 1.5),
    ("train.center_sampling", "none"),
    ("train.reg_loss", "l1"),
    ("train.optimizer.name", "sgd"),
    ("train.scheduler.name", "cosine"),
    ("train.scheduler.steps", [5, 8]),
    ("train.data.name", "text_centric"),
    ("train.data.ext_score_dir", "./scores"),
    ("train.data.normalize_vid", True),
    ("train.data.group_method", "all"),
    ("train.data.tokenizer", "bert"),
    ("train.data.max_num_text", None),
    ("eval.nms.mode", "nms"),
    ("eval.window_size", 512),
    ("eval.data.split", ["val", "test"]),
    ("model.fusion.n_heads", 8),
    ("model.reg_head.n_layers", 3),
]


@pytest.mark.parametrize("path,value", UNSUPPORTED, ids=[p for p, _ in UNSUPPORTED])
def test_unsupported_option_is_named(path, value):
    with pytest.raises(ValueError, match=path.replace(".", r"\.")):
        config_kwargs_from_snag_opt(_set(_tacos_opt(), path, value))


def test_identity_text_net_restrictions():
    base = snag_opt_from_config(MSCLConfig.from_preset("mad_clip"), TrainingRecipe.from_preset("mad_clip"))
    for path, value in (("model.text_net.use_abs_pe", True), ("model.text_net.use_bkgd_token", False),
                        ("model.text_net.embd_dim", 256), ("model.text_net.n_layers", 2)):
        with pytest.raises(ValueError, match=path.replace(".", r"\.")):
            config_kwargs_from_snag_opt(_set(copy.deepcopy(base), path, value))


# ============================================================================================
# fixture parity
# ============================================================================================


def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modeling_mscl.convert_snag", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def snag(request, tmp_path_factory):
    """One fixture, its weights converted twice by the CLI (safetensors copy and a SnAG-style .pth)."""
    _need_fixtures()
    name = request.param
    meta = json.loads((FIXTURES / f"snag_{name}_tiny.json").read_text())
    io = load_file(str(FIXTURES / f"snag_{name}_tiny_io.safetensors"))
    weights = load_file(str(FIXTURES / f"snag_{name}_tiny_weights.safetensors"))
    tmp = tmp_path_factory.mktemp(f"snag_{name}")
    opt_file = tmp / "opt.json"
    opt_file.write_text(json.dumps(meta["config"]["merged_train"]))
    shutil.copy(FIXTURES / f"snag_{name}_tiny_weights.safetensors", tmp / "weights.safetensors")
    # SnAG's trainer layout; the raw weights differ so that picking the EMA entry is what gives parity,
    # and the EMA entry carries a DataParallel prefix
    torch.save(
        {"model": {k: v + 1.0 for k, v in weights.items()}, "model_ema": {f"module.{k}": v for k, v in weights.items()}},
        tmp / "last.pth",
    )
    models = {}
    for kind, ckpt in (("safetensors", tmp / "weights.safetensors"), ("pth", tmp / "last.pth")):
        out = tmp / f"converted_{kind}"
        proc = _run_cli("--checkpoint", ckpt, "--snag-opt", opt_file, "--output", out)
        assert proc.returncode == 0, proc.stderr
        models[kind] = out
    model = AutoModel.from_pretrained(str(models["safetensors"])).eval()
    return {"name": name, "meta": meta, "io": io, "weights": weights, "dirs": models, "model": model, "tmp": tmp}


def _inputs(io):
    """SnAG's channels-first batch → MSCL's channels-last batch."""
    sizes = io["input.text_size"]
    return dict(
        video_features=io["input.video"].transpose(1, 2).contiguous(),
        video_mask=io["input.video_mask"],
        text_features=io["input.text"].transpose(1, 2).contiguous(),
        text_mask=io["input.text_mask"],
        query_video_index=torch.repeat_interleave(torch.arange(len(sizes)), sizes),
    )


@pytest.fixture(scope="module")
def batched(snag):
    model, io = snag["model"], snag["io"]
    with torch.no_grad():
        return model(**_inputs(io), labels=io["train.gt_segments"], output_hidden_states=True)


def _max_err(a, b, mask):
    return (a - b)[mask].abs().max().item() if bool(mask.any()) else 0.0


@pytest.mark.slow
def test_config_from_snag_opt_matches_fixture(snag):
    meta, model = snag["meta"], snag["model"]
    config, derived = model.config, snag["meta"]["derived"]
    train_cfg = config_from_snag_opt(meta["config"]["merged_train"])
    eval_cfg = config_from_snag_opt(meta["config"]["merged_eval"])
    assert train_cfg.to_dict() == eval_cfg.to_dict()
    assert recipe_from_snag_opt(meta["config"]["merged_train"]) == recipe_from_snag_opt(meta["config"]["merged_eval"])
    assert {f: getattr(config, f) for f in SNAG_MODEL_FIELDS} == {f: getattr(train_cfg, f) for f in SNAG_MODEL_FIELDS}
    assert config.video_input_stride == derived["vid_stride"]
    assert config.max_video_length == derived["model_grid_T"]
    assert config.max_video_length * config.video_input_stride == derived["input_T"]
    assert config.num_pyramid_levels == derived["num_fpn_levels"]
    assert config.regression_ranges == derived["regression_ranges_train"]
    tm = meta["time_mapping"]
    assert (config.pre_nms_topk, config.pre_nms_threshold, config.min_segment_length) == (
        tm["pre_nms_topk"], tm["pre_nms_thresh"], tm["seg_len_thresh"])
    nms = tm["nms_settings"]
    assert (config.nms_sigma, config.nms_min_score, config.max_segments, config.voting_threshold) == (
        nms["sigma"], nms["min_score"], nms["max_num_segs"], nms["voting_thresh"])


@pytest.mark.slow
def test_converted_folders(snag):
    """Both checkpoint formats give the same folder contents; EMA weights by default; code travels."""
    a, b = (load_file(str(snag["dirs"][k] / "model.safetensors")) for k in ("safetensors", "pth"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    cfg = json.loads((snag["dirs"]["pth"] / "config.json").read_text())
    assert cfg["model_type"] == "mscl" and "AutoModel" in cfg["auto_map"]
    for f in ("modeling_mscl.py", "configuration_mscl.py", "nms_mscl.py", "losses_mscl.py"):
        assert (snag["dirs"]["pth"] / f).is_file(), f
    # the converter's own code (SnAG option tables, key mapping) does not travel with the model
    assert not [p.name for p in snag["dirs"]["pth"].iterdir() if "snag" in p.name]
    # nor does SnAG's training recipe: config.json holds the model only
    assert not set(cfg) & set(SNAG_RECIPE_FIELDS)
    # layout change: 1x1 convs became Linear weights, everything else copied verbatim
    w, model = snag["weights"], snag["model"]
    torch.testing.assert_close(model.video_encoder.embed_proj.weight, w["vid_net.embd_fc.conv.weight"][..., 0], rtol=0, atol=0)
    assert float(model.loss_normalizer) == snag["meta"]["losses"]["loss_norm_initial"]
    # --weights model converts the raw entry
    raw = convert_snag_checkpoint(str(snag["tmp"] / "last.pth"), str(snag["tmp"] / "raw"), preset=None,
                                  snag_opt=snag["meta"]["config"]["merged_train"], weights="model")
    torch.testing.assert_close(raw.video_encoder.embed_proj.bias, w["vid_net.embd_fc.conv.bias"] + 1.0, rtol=0, atol=0)


@pytest.mark.slow
def test_backbone_parity(snag, batched):
    io, out, config = snag["io"], batched, snag["model"].config
    tmask = io["out.text_mask"][:, 0]
    assert torch.equal(out.text_mask, tmask)
    assert _max_err(out.text_hidden_states, io["out.text"].transpose(1, 2), tmask) <= 1e-5
    for level in range(config.num_pyramid_levels):
        pmask = io[f"out.pyramid_mask.{level}"][:, 0]
        assert torch.equal(out.video_masks[level], pmask), level
        assert _max_err(out.video_hidden_states[level], io[f"out.pyramid.{level}"].transpose(1, 2), pmask) <= 1e-5
        fmask = io[f"out.fused_mask.{level}"][:, 0]
        hmask = io[f"out.head_mask.{level}"]
        assert torch.equal(out.masks[level], hmask) and torch.equal(fmask, hmask), level
        assert _max_err(out.fused_hidden_states[level], io[f"out.fused.{level}"].transpose(1, 2), fmask) <= 1e-5
        assert _max_err(out.logits[level], io[f"out.cls_logits.{level}"], hmask) <= 1e-5
        assert _max_err(out.offsets[level], io[f"out.reg_offsets.{level}"], hmask) <= 1e-5


@pytest.mark.slow
def test_label_assignment_exact(snag):
    io, config = snag["io"], snag["model"].config
    lengths = snag["meta"]["derived"]["level_lengths"]
    positives, targets = assign_labels(io["train.gt_segments"], lengths, config.regression_ranges,
                                       config.center_sampling_radius)
    for level in range(config.num_pyramid_levels):
        assert torch.equal(positives[level], io[f"train.cls_labels.{level}"]), level
        pos = positives[level] & io[f"out.head_mask.{level}"]
        assert torch.equal(pos, io[f"train.pos_mask.{level}"]), level
        assert torch.equal(targets[level][pos], io[f"train.reg_targets.{level}"][pos]), level
        torch.testing.assert_close(targets[level], io[f"train.reg_targets.{level}"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_loss_sums(snag, batched):
    losses, out = snag["meta"]["losses"], batched
    norm = float(snag["model"].loss_normalizer)
    assert norm == losses["loss_norm_initial"]
    assert int(out.num_positives) == losses["num_pos"] == int(snag["io"]["train.loss.num_pos"])
    for got, want in ((float(out.loss_cls) * norm, losses["cls_focal_sum"]),
                      (float(out.loss_reg) * norm, losses["reg_diou_sum"]),
                      (float(out.loss), losses["total_normalized"])):
        assert abs(got - want) <= 1e-4 * abs(want), (got, want)
    assert float(out.loss_within) == 0.0 and float(out.loss_cross) == 0.0


@pytest.mark.slow
def test_predictions_one_video_path(snag):
    """``ground`` (one video, all its queries) vs SnAG's Evaluator.predict, in grid units and seconds."""
    io, model, meta = snag["io"], snag["model"], snag["meta"]
    batch = _inputs(io)
    stride = model.config.video_input_stride
    for b, mapping in enumerate(meta["time_mapping"]["used"]):
        valid = int(batch["video_mask"][b].sum())
        queries = (batch["query_video_index"] == b).nonzero().flatten().tolist()
        texts = [batch["text_features"][q, : int(batch["text_mask"][q].sum())] for q in queries]
        results = model.ground(batch["video_features"][b, :valid], texts)
        tm = TimeMapping(fps=mapping["fps"], clip_size=mapping["clip_size"], clip_stride=mapping["clip_stride"],
                         input_stride=stride, duration=mapping["duration"])
        for q, res in zip(queries, results):
            seg, score = io[f"out.pred.{q}.segments_grid"], io[f"out.pred.{q}.scores"]
            assert res.shape == (meta["predictions"][q]["n_segments"], 3) and res.shape[0] == seg.shape[0], q
            torch.testing.assert_close(res[:, :2], seg, rtol=0, atol=1e-3)
            torch.testing.assert_close(res[:, 2][:5], score[:5], rtol=0, atol=1e-5)
            # MAD keeps 50 moments: a late pick's score is its logit's sigmoid times the Gaussian decays of
            # every earlier overlapping pick, each decay moved by float32 rounding of the boundaries (~2e-5 grid
            # units here, and GEMMs blocked by thread count). Seen: 1.2e-5 at rank 45 with 1 thread, 3.9e-6
            # with 2, on an AMD EPYC; a wrong pick or decay moves a score by orders of magnitude more.
            torch.testing.assert_close(res[:, 2], score, rtol=0, atol=5e-5)
            seconds = tm.grid_to_seconds(res[:, :2])
            torch.testing.assert_close(seconds, io[f"out.pred.{q}.segments"], rtol=0, atol=1e-3 * stride)


@pytest.mark.slow
def test_batched_and_per_query_heads_vs_predict_path(snag, batched):
    """SnAG's per-query inference heads (video alone, unpadded text) vs our batched forward and our
    per-query staged path."""
    io, model = snag["io"], snag["model"]
    batch = _inputs(io)
    levels = model.config.num_pyramid_levels
    for q, b in enumerate(batch["query_video_index"].tolist()):
        n_tok = int(batch["text_mask"][q].sum())
        with torch.no_grad():
            _, _, pyr, pyr_masks = model.encode_video(batch["video_features"][b : b + 1], batch["video_mask"][b : b + 1])
            text, tmask = model.encode_text(batch["text_features"][q : q + 1, :n_tok], batch["text_mask"][q : q + 1, :n_tok])
            _, logits, offsets, masks = model.fuse_and_predict(pyr, pyr_masks, text, tmask, torch.zeros(1, dtype=torch.long))
        for level in range(levels):
            ref_logits = io[f"pred_path.{q}.cls_logits.{level}"][0]
            ref_offsets = io[f"pred_path.{q}.reg_offsets.{level}"][0]
            mask = io[f"out.head_mask.{level}"][q]
            assert torch.equal(masks[level][0], mask)
            assert _max_err(batched.logits[level][q], ref_logits, mask) <= 1e-5
            assert _max_err(batched.offsets[level][q], ref_offsets, mask) <= 1e-5
            assert _max_err(logits[level][0], ref_logits, mask) <= 1e-5
            assert _max_err(offsets[level][0], ref_offsets, mask) <= 1e-5


def test_stem_blocks_map(tmp_path):
    """SnAG names stem blocks ``vid_net.stem.<i>`` with the same inner keys as a stride-1 branch block."""
    _need_fixtures()
    meta = json.loads((FIXTURES / "snag_tacos_tiny.json").read_text())
    weights = load_file(str(FIXTURES / "snag_tacos_tiny_weights.safetensors"))
    weights.update({k.replace("vid_net.branch.0.", "vid_net.stem.0."): v.clone()
                    for k, v in weights.items() if k.startswith("vid_net.branch.0.")})
    save_file(weights, str(tmp_path / "stem.safetensors"))
    opt = copy.deepcopy(meta["config"]["merged_train"])
    opt["model"]["vid_net"]["arch"] = [2, 1, 5]
    model = convert_snag_checkpoint(str(tmp_path / "stem.safetensors"), str(tmp_path / "out"), snag_opt=opt)
    stem, branch = model.video_encoder.stem[0].state_dict(), model.video_encoder.branch[0].state_dict()
    assert stem.keys() == branch.keys() and all(torch.equal(stem[k], branch[k]) for k in stem)


# ============================================================================================
# converter errors: the message names the problem, nothing is written
# ============================================================================================


class _NotAStateDict:  # torch.load(weights_only=True) refuses to unpickle this
    pass


@pytest.fixture()
def tiny(tmp_path):
    _need_fixtures()
    meta = json.loads((FIXTURES / "snag_tacos_tiny.json").read_text())
    weights = load_file(str(FIXTURES / "snag_tacos_tiny_weights.safetensors"))
    return meta["config"]["merged_train"], weights, tmp_path


def _bad_checkpoint(case, opt, weights, tmp):
    opt = copy.deepcopy(opt)
    sd = dict(weights)
    if case == "extra_key":
        sd["vid_net.branch.9.ln_attn.weight"] = torch.ones(32, 1)
        match = r"vid_net\.branch\.9\.ln_attn\.weight"
    elif case == "missing_key":
        del sd["fusion.layers.1.ffn.fc.bias"]
        match = r"fusion\.layers\.1\.ffn\.fc1\.bias"
    elif case == "shape_mismatch":
        sd["cls_head.norms.0.weight"] = torch.ones(31, 1)
        match = r"cls_head\.norms\.0\.weight -> cls_head\.norms\.0\.weight: SnAG gives \(31,\)"
    elif case == "unsupported_option":
        opt["eval"]["nms"]["mode"] = "nms"
        match = r"eval\.nms\.mode = 'nms'"
    elif case == "pickled_object":
        torch.save({"model": sd, "model_ema": sd, "trainer": _NotAStateDict()}, tmp / "ckpt.pth")
        return tmp / "ckpt.pth", opt, r"weights_only=True.*refuses.*_NotAStateDict"
    elif case == "no_ema_entry":
        torch.save({"model": sd}, tmp / "ckpt.pth")
        return tmp / "ckpt.pth", opt, r"no 'model_ema' entry.*--weights model"
    torch.save({"model": sd, "model_ema": sd}, tmp / "ckpt.pth")
    return tmp / "ckpt.pth", opt, match


@pytest.mark.parametrize(
    "case", ["extra_key", "missing_key", "shape_mismatch", "unsupported_option", "pickled_object", "no_ema_entry"]
)
def test_bad_checkpoint_writes_nothing(tiny, case):
    opt, weights, tmp = tiny
    ckpt, opt, match = _bad_checkpoint(case, opt, weights, tmp)
    out = tmp / "out"
    with pytest.raises(ValueError, match=match):
        convert_snag_checkpoint(str(ckpt), str(out), snag_opt=opt)
    assert not out.exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["ckpt.pth"]  # no temporary folder left behind


@pytest.mark.slow
def test_cli_error_exit_and_existing_output(tiny):
    opt, weights, tmp = tiny
    ckpt, opt, match = _bad_checkpoint("shape_mismatch", opt, weights, tmp)
    (tmp / "opt.json").write_text(json.dumps(opt))
    proc = _run_cli("--checkpoint", ckpt, "--snag-opt", tmp / "opt.json", "--output", tmp / "out")
    assert proc.returncode == 2
    assert "cls_head.norms.0.weight" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp / "out").exists()
    # an existing, non-empty output folder is never overwritten implicitly
    (tmp / "taken").mkdir()
    (tmp / "taken" / "keep.txt").write_text("x")
    save_file(weights, str(tmp / "w.safetensors"))
    with pytest.raises(ValueError, match="already exists"):
        convert_snag_checkpoint(str(tmp / "w.safetensors"), str(tmp / "taken"), snag_opt=opt)
    assert (tmp / "taken" / "keep.txt").read_text() == "x"


def test_load_state_dict_variants(tiny):
    _, weights, tmp = tiny
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp / "bare.pth")
    sd = load_snag_state_dict(str(tmp / "bare.pth"))
    assert sd.keys() == weights.keys()
    torch.save({"model": {"a": 1}}, tmp / "odd.pth")
    with pytest.raises(ValueError, match="entry 'a' is not a tensor"):
        load_snag_state_dict(str(tmp / "odd.pth"), "model")
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_snag_state_dict(str(tmp / "missing.pth"))


def test_load_snag_opt_yaml_and_json(tmp_path):
    from modeling_mscl.convert_snag import build_config, build_recipe, load_snag_opt

    yaml = pytest.importorskip("yaml")
    opt = _tacos_opt()
    (tmp_path / "opt.yaml").write_text(yaml.safe_dump(opt))
    (tmp_path / "opt.json").write_text(json.dumps(opt))
    assert load_snag_opt(str(tmp_path / "opt.yaml")) == load_snag_opt(str(tmp_path / "opt.json")) == opt
    (tmp_path / "opt.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.yaml, \.yml or \.json"):
        load_snag_opt(str(tmp_path / "opt.txt"))
    # preset + SnAG options: the preset supplies what SnAG does not say (fps), SnAG overrides the rest
    opt["train"]["optimizer"]["lr"] = 5e-4
    config, recipe = build_config(opt, "tacos_c3d"), build_recipe(opt, "tacos_c3d")
    assert config.fps == MSCLConfig.from_preset("tacos_c3d").fps != MSCLConfig().fps
    assert recipe.learning_rate == 5e-4 and config.within_loss_weight == 0.0
