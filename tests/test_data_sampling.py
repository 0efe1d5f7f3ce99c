# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Video-centric sampling (SnAG §4.1), evaluation samples and the collator."""

import math

import numpy as np
import pytest
import torch

from modeling_mscl import MSCLConfig, TimeMapping
from modeling_mscl.data.sampling import (
    GroundingCollator,
    TrainingSampleStream,
    contrastive_draw,
    group_queries,
    mapping_for_row,
    plan_epoch,
    prepare_eval_sample,
    prepare_training_sample,
    stable_seed,
    worst_case_window_seconds,
)
from modeling_mscl.training.recipe import TrainingRecipe

from conftest import tiny_config, tiny_recipe

# (preset, fps, clip_size, clip_stride, downsample_rate, raw-length range) of dataset-like rows.
ROW_KINDS = {
    "tiny": (1.0, 1.0, 1.0, 1, (40, 400)),
    "tacos_c3d": (29.4, 16.0, 4.0, 4, (2000, 14000)),
    "mad_clip": (5.0, 1.0, 1.0, 1, (3000, 20000)),
    "ego4d_egovlp": (30.0, 32.0, 8.0, 2, (500, 6000)),
    "charades_i3d": (24.0, 16.0, 4.0, 1, (60, 900)),
    "anet_c3d": (30.0, 16.0, 8.0, 1, (50, 1500)),
}


def make_row(rng, video_id, kind="tiny", num_queries=None, dim=4, text_dim=3, max_len_frac=0.6, raw_len=None):
    fps, clip, stride, rate, (lo, hi) = ROW_KINDS[kind]
    t_raw = int(raw_len if raw_len is not None else rng.integers(lo, hi))
    duration = ((t_raw - 1) * stride + clip) / fps
    n = int(num_queries if num_queries is not None else rng.integers(1, 12))
    queries = []
    for j in range(n):
        # lengths from very short to long, but never longer than what a crop can keep half of
        length = duration * float(np.exp(rng.uniform(np.log(0.01), np.log(max_len_frac))))
        length = max(length, 2.0 * stride * rate / fps)
        start = float(rng.uniform(0.0, max(duration - length, 1e-3)))
        end = min(duration, start + length)
        queries.append(
            {
                "query_id": f"{video_id}-{j}",
                "sentence": f"query {j}",
                "text_features": rng.standard_normal((int(rng.integers(1, 30)), text_dim)).astype(np.float32),
                "start": start,
                "end": end,
            }
        )
    return {
        "video_id": video_id,
        "duration": duration,
        "fps": fps,
        "clip_size": clip,
        "clip_stride": stride,
        "downsample_rate": rate,
        "video_features": rng.standard_normal((t_raw, dim)).astype(np.float32),
        "queries": queries,
    }


def config_for(kind, **overrides):
    """The model configuration of a row kind: the tests' tiny model, or a dataset preset's."""
    return tiny_config(**overrides) if kind == "tiny" else MSCLConfig.from_preset(kind, **overrides)


def recipe_for(kind):
    """The training recipe (sampling settings) of a row kind."""
    return tiny_recipe() if kind == "tiny" else TrainingRecipe.from_preset(kind)


def kept_fraction(sample, row, config):
    """Fraction of each grouped moment's length kept inside the (widened) crop window."""
    mapping = sample["mapping"]
    segs = np.array([[row["queries"][i]["start"], row["queries"][i]["end"]] for i in sample["query_indices"]])
    orig = np.asarray(mapping.seconds_to_feature_index(segs))
    kept = sample["labels"].numpy().astype(np.float64) * config.video_input_stride
    return (kept[:, 1] - kept[:, 0]) / (orig[:, 1] - orig[:, 0])


# ------------------------------------------------------------------------------------------------
def test_stable_seed_is_stable_and_type_aware():
    assert stable_seed(1, 2, "v") == stable_seed(np.int64(1), np.int32(2), "v")
    assert stable_seed(1, "ab") != stable_seed("1", "ab") != stable_seed("1a", "b")
    # fixed value: the hash must never depend on the process (PYTHONHASHSEED) or platform
    assert stable_seed(0, 0, "video") == stable_seed(0, 0, "video")
    assert 0 <= stable_seed("x") < 2**63


@pytest.mark.parametrize("kind", ["tiny", "tacos_c3d", "mad_clip", "ego4d_egovlp"])
def test_crops_keep_more_than_half_of_every_grouped_moment(kind):
    config, recipe = config_for(kind), recipe_for(kind)
    rng = np.random.default_rng(123)
    rows = [make_row(rng, f"{kind}-{i}", kind) for i in range(6)]
    cropped = 0
    for seed in range(4):
        for epoch in range(3):
            for row in rows:
                seen = []
                for sample in TrainingSampleStream([row], config, epoch, seed, recipe=recipe):
                    frac = kept_fraction(sample, row, config)
                    assert np.all(frac > recipe.truncation_threshold), (kind, seed, epoch, frac)
                    labels = sample["labels"].numpy()
                    assert np.all(labels[:, 1] > labels[:, 0])  # no query loses its moment
                    w = sample["video_features"].shape[0]
                    off = 0.5 * sample["mapping"].clip_size / sample["mapping"].stride_eff / config.video_input_stride
                    assert labels.min() >= -off - 1e-5 and labels.max() <= w / config.video_input_stride + off + 1e-5
                    assert w <= config.max_video_length * config.video_input_stride
                    cropped += sample["crop_offset"] > 0 or w < len(row["video_features"][:: row["downsample_rate"]])
                    seen += sample["query_indices"]
                # greedy: each query exactly once per epoch
                assert sorted(seen) == list(range(len(row["queries"])))
    if recipe.crop_ratio is not None or kind == "ego4d_egovlp":
        assert cropped > 0


@pytest.mark.parametrize("kind", ["tiny", "tacos_c3d", "mad_clip"])
def test_greedy_groups_fit_the_worst_case_window(kind):
    config, recipe = config_for(kind), recipe_for(kind)
    rng = np.random.default_rng(7)
    for i in range(10):
        row = make_row(rng, f"v{i}", kind, num_queries=int(rng.integers(1, 40)))
        mapping = mapping_for_row(row, config)
        n_feat = math.ceil(len(row["video_features"]) / row["downsample_rate"])
        window = worst_case_window_seconds(n_feat, mapping, config, recipe)
        groups = group_queries(row["queries"], num_features=n_feat, mapping=mapping, config=config, recipe=recipe, epoch=0,
                               video_id=row["video_id"])
        assert sorted(i for g in groups for i in g) == list(range(len(row["queries"])))
        for g in groups:
            assert 1 <= len(g) <= recipe.max_queries_per_video
            starts = [row["queries"][i]["start"] for i in g]
            ends = [row["queries"][i]["end"] for i in g]
            if len(g) > 1:
                assert max(ends) - min(starts) <= window + 1e-9


def test_moment_longer_than_the_window_is_its_own_group_and_keeps_over_half():
    config, recipe = config_for("tiny"), recipe_for("tiny")
    rng = np.random.default_rng(4)
    row = make_row(rng, "long", "tiny", raw_len=400, num_queries=6, max_len_frac=0.05)
    row["queries"][2].update(start=50.0, end=350.0)  # 300 s > 256-step window
    for epoch in range(5):
        samples = list(TrainingSampleStream([row], config, epoch, recipe=recipe))
        (alone,) = [s for s in samples if 2 in s["query_indices"]]
        assert alone["query_indices"] == [2]
        assert alone["video_features"].shape[0] == 256
        frac = kept_fraction(alone, row, config)
        assert 0.5 < frac[0] <= 257 / 300 + 1e-6  # at most the widened window (256 + 2 * 0.5 steps)


def test_worst_case_window_formula():
    config, recipe = config_for("tacos_c3d"), recipe_for("tacos_c3d")
    mapping = TimeMapping(29.4, 16, 4, 4, 1, 1000.0)
    # longer than the training length: W = max_video_length
    assert worst_case_window_seconds(5000, mapping, config, recipe) == pytest.approx((16 * 2303 + 16) / 29.4)
    # shorter with crop_ratio: W = ceil(0.9 n)
    assert worst_case_window_seconds(1000, mapping, config, recipe) == pytest.approx((16 * 899 + 16) / 29.4)
    ego = config_for("ego4d_egovlp")
    assert worst_case_window_seconds(1000, TimeMapping(30, 32, 8, 2), ego, recipe_for("ego4d_egovlp")) == pytest.approx(
        (16 * 999 + 32) / 30)


def test_fixed_length_greedy_chunks_and_anet_random_pairs():
    rng = np.random.default_rng(0)
    charades, charades_recipe = config_for("charades_i3d"), recipe_for("charades_i3d")
    anet, anet_recipe = config_for("anet_c3d"), recipe_for("anet_c3d")
    for i in range(20):
        row = make_row(rng, f"c{i}", "charades_i3d", num_queries=int(rng.integers(1, 11)))
        n = len(row["queries"])
        mapping = mapping_for_row(row, charades)
        groups = group_queries(row["queries"], num_features=len(row["video_features"]), mapping=mapping, config=charades,
                               recipe=charades_recipe, epoch=1, video_id=row["video_id"])
        assert sorted(i for g in groups for i in g) == list(range(n))
        assert [len(g) for g in groups] == [min(4, n - 4 * k) for k in range(math.ceil(n / 4))]

        arow = make_row(rng, f"a{i}", "anet_c3d", num_queries=int(rng.integers(2, 9)))
        samples = list(TrainingSampleStream([arow], anet, epoch=0, recipe=anet_recipe))
        assert len(samples) == 1 and len(samples[0]["query_ids"]) == 2
        assert len(set(samples[0]["query_ids"])) == 2
    single = make_row(rng, "one", "anet_c3d", num_queries=1)
    assert len(list(TrainingSampleStream([single], anet, epoch=0, recipe=anet_recipe))[0]["query_ids"]) == 1


def test_random_grouping_changes_with_epoch_but_replays():
    rng = np.random.default_rng(1)
    anet, recipe = config_for("anet_c3d"), recipe_for("anet_c3d")
    row = make_row(rng, "a", "anet_c3d", num_queries=10)
    draws = [tuple(next(iter(TrainingSampleStream([row], anet, epoch=e, recipe=recipe)))["query_indices"]) for e in range(8)]
    assert len(set(draws)) > 1
    assert draws == [tuple(next(iter(TrainingSampleStream([row], anet, epoch=e, recipe=recipe)))["query_indices"])
                     for e in range(8)]


def _label_mapping_by_hand(kind, t, crop, row):
    """Grid label of time t by the §7.3 formula, written out per dataset."""
    if kind == "tiny":  # fps 1, clip 1, stride 1: idx = t - 0.5
        return t - 0.5 - crop
    if kind == "tacos_c3d":  # stride_eff 16, clip 16: idx = t*fps/16 - 0.5
        return t * 29.4 / 16 - 0.5 - crop
    if kind == "mad_clip":  # 5 fps, input stride 2: grid = (5t - 0.5) / 2
        return (5 * t - 0.5 - crop) / 2
    if kind == "charades_i3d":  # resampled to 256: size = ((T-1)*4 + 16)/256
        size = ((len(row["video_features"]) - 1) * 4 + 16) / 256
        return t * 24 / size - 0.5
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["tiny", "tacos_c3d", "mad_clip", "charades_i3d"])
def test_labels_equal_hand_computed_mapping(kind):
    config, recipe = config_for(kind), recipe_for(kind)
    rng = np.random.default_rng(5)
    for i in range(5):
        row = make_row(rng, f"v{i}", kind, max_len_frac=0.3)
        for sample in TrainingSampleStream([row], config, epoch=i, recipe=recipe):
            w = sample["video_features"].shape[0]
            off = 0.5 * sample["mapping"].clip_size / sample["mapping"].stride_eff
            for k, qi in enumerate(sample["query_indices"]):
                q = row["queries"][qi]
                expect = [_label_mapping_by_hand(kind, q[key], sample["crop_offset"], row) for key in ("start", "end")]
                expect = np.clip(expect, -off / config.video_input_stride, (w + off) / config.video_input_stride)
                np.testing.assert_allclose(sample["labels"][k].numpy(), expect, rtol=1e-5, atol=1e-4)
            if kind == "charades_i3d":
                assert w == 256 and sample["crop_offset"] == 0


def test_collator_padding_masks_and_indices():
    config = config_for("tiny")
    rng = np.random.default_rng(3)
    rows = [make_row(rng, f"v{i}", "tiny", dim=config.video_input_dim, text_dim=config.text_input_dim) for i in range(8)]
    samples = list(TrainingSampleStream(rows, config, epoch=0, recipe=recipe_for("tiny")))[:6]
    batch = GroundingCollator(config)(samples)
    b, n = len(samples), sum(len(s["query_ids"]) for s in samples)
    assert batch["video_features"].shape == (b, 256, config.video_input_dim)
    assert batch["video_features"].dtype == torch.float32
    assert batch["text_features"].shape[0] == n and batch["text_features"].shape[1] <= config.max_text_length
    for i, s in enumerate(samples):
        length = s["video_features"].shape[0]
        mask = batch["video_mask"][i]
        assert mask[:length].all() and not mask[length:].any()
        assert torch.equal(batch["video_features"][i, :length], s["video_features"])
        assert not batch["video_features"][i, length:].any()
    lengths = [min(len(row["queries"][qi]["text_features"]), config.max_text_length) for s in samples for row in rows
               if row["video_id"] == s["video_id"] for qi in s["query_indices"]]
    for j, length in enumerate(lengths):
        m = batch["text_mask"][j]
        assert m[:length].all() and not m[length:].any() and m.any()
        assert not batch["text_features"][j, length:].any()
    qvi = batch["query_video_index"]
    assert qvi.dtype == torch.long and torch.all(qvi[1:] >= qvi[:-1])
    assert torch.equal(torch.bincount(qvi, minlength=b), torch.tensor([len(s["query_ids"]) for s in samples]))
    assert batch["labels"].shape == (n, 2) and batch["labels"].dtype == torch.float32
    cqi = batch["contrastive_query_index"]
    assert cqi.shape == (b,) and cqi.dtype == torch.long
    assert torch.equal(qvi[cqi], torch.arange(b))  # each drawn query belongs to its own video
    assert batch["contrastive_seeds"].shape == (b,) and batch["contrastive_seeds"].dtype == torch.long
    meta = batch["meta"]
    assert meta["video_ids"] == [s["video_id"] for s in samples]
    assert len(meta["query_ids"]) == n and meta["segments"].shape == (n, 2)
    assert TimeMapping(**meta["mappings"][0]) == samples[0]["mapping"]


def test_contrastive_draw_is_uniform_over_the_group():
    counts = np.zeros(4, dtype=int)
    for e in range(2000):
        idx, s = contrastive_draw(4, seed=0, epoch=e, video_id="v")
        counts[idx] += 1
        assert 0 <= s < 2**63
    assert counts.min() > 400  # expected 500 each


def test_samples_do_not_depend_on_batch_composition_or_sharding():
    config, recipe = config_for("tiny"), recipe_for("tiny")
    rng = np.random.default_rng(11)
    rows = [make_row(rng, f"v{i}", "tiny") for i in range(10)]

    def key(s):
        return (s["video_id"], s["group_index"])

    ref = {key(s): s for s in TrainingSampleStream(rows, config, epoch=2, seed=99, recipe=recipe)}
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    other = {key(s): s for s in TrainingSampleStream(shuffled[:7], config, epoch=2, seed=99, recipe=recipe)}
    shards = [TrainingSampleStream(rows, config, epoch=2, seed=99, recipe=recipe, num_shards=3, shard_index=k)
              for k in range(3)]
    sharded = {key(s): s for sh in shards for s in sh}
    assert set(sharded) == set(ref)
    for pool in (other, sharded):
        for k, s in pool.items():
            r = ref[k]
            assert s["query_indices"] == r["query_indices"] and s["crop_offset"] == r["crop_offset"]
            assert s["contrastive_query_index"] == r["contrastive_query_index"]
            assert s["contrastive_seed"] == r["contrastive_seed"]
            assert torch.equal(s["video_features"], r["video_features"]) and torch.equal(s["labels"], r["labels"])
    # a batch's contrastive index is the same draw, shifted to the global position
    batch_a = GroundingCollator(config)([ref[k] for k in sorted(ref)[:4]])
    batch_b = GroundingCollator(config)([ref[k] for k in sorted(ref)[2:6]])
    starts_a = torch.cumsum(torch.bincount(batch_a["query_video_index"]), 0) - torch.bincount(batch_a["query_video_index"])
    starts_b = torch.cumsum(torch.bincount(batch_b["query_video_index"]), 0) - torch.bincount(batch_b["query_video_index"])
    assert torch.equal(batch_a["contrastive_query_index"][2:] - starts_a[2:], batch_b["contrastive_query_index"][:2] - starts_b[:2])
    assert torch.equal(batch_a["contrastive_seeds"][2:], batch_b["contrastive_seeds"][:2])
    # a different epoch or seed gives different draws somewhere
    again = {key(s): s for s in TrainingSampleStream(rows, config, epoch=3, seed=99, recipe=recipe)}
    assert any(again[k]["crop_offset"] != ref[k]["crop_offset"] for k in set(again) & set(ref))


def test_plan_epoch_matches_stream():
    config, recipe = config_for("tacos_c3d"), recipe_for("tacos_c3d")
    rng = np.random.default_rng(2)
    rows = [make_row(rng, f"v{i}", "tacos_c3d", num_queries=int(rng.integers(1, 30))) for i in range(4)]
    plan = plan_epoch(rows, config, epoch=1, recipe=recipe)
    stream = list(TrainingSampleStream(rows, config, epoch=1, recipe=recipe))
    assert [(rows[p]["video_id"], g, q) for p, g, q in plan] == [(s["video_id"], s["group_index"], s["query_indices"]) for s in stream]
    pos, gi, group = plan[-1]
    s = prepare_training_sample(rows[pos], group, config, 1, recipe=recipe, group_index=gi)
    assert torch.equal(s["labels"], stream[-1]["labels"])


@pytest.mark.parametrize("kind", ["tiny", "tacos_c3d", "charades_i3d"])
def test_eval_samples_are_never_truncated(kind):
    config = config_for(kind)
    rng = np.random.default_rng(9)
    lo, hi = ROW_KINDS[kind][4]
    row = make_row(rng, "long", kind, raw_len=hi * 3, num_queries=5)
    row["queries"][0]["text_features"] = rng.standard_normal((config.max_text_length + 7, 3)).astype(np.float32)
    sample = prepare_eval_sample(row, config)
    n_feat = math.ceil(len(row["video_features"]) / row["downsample_rate"])
    expect_len = config.fixed_length or n_feat
    assert sample["video_features"].shape[0] == expect_len
    assert [t.shape[0] for t in sample["text_features"]] == [len(q["text_features"]) for q in row["queries"]]
    # GT survives grid -> seconds exactly
    back = sample["mapping"].grid_to_seconds(sample["labels"].double())
    np.testing.assert_allclose(back.numpy(), sample["segments"].numpy(), rtol=1e-5, atol=1e-3)
    batch = GroundingCollator(config, training=False)([sample])
    assert batch["video_features"].shape[1] >= expect_len and int(batch["video_mask"].sum()) == expect_len
    assert batch["video_features"].shape[1] % config.pyramid_stride == 0
    assert batch["text_features"].shape[1] == config.max_text_length + 7
    assert "labels" not in batch and "contrastive_query_index" not in batch
    if kind != "charades_i3d":
        assert expect_len > config.max_video_length  # really longer than a training crop


def test_impossible_crop_raises_clear_error():
    config = config_for("tiny")
    rng = np.random.default_rng(0)
    row = make_row(rng, "huge", "tiny", raw_len=1000, num_queries=1)
    row["queries"][0].update(start=10.0, end=900.0)  # 890 s moment, 256-step window: at most 29% kept
    with pytest.raises(ValueError, match="huge.*no crop"):
        list(TrainingSampleStream([row], config, epoch=0, recipe=recipe_for("tiny")))


def test_bad_inputs_raise_value_error():
    config = config_for("tiny")
    rng = np.random.default_rng(0)
    row = make_row(rng, "v", "tiny", num_queries=2)
    row["queries"][1]["text_features"] = np.zeros((0, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="no text features"):
        prepare_training_sample(row, [1], config, 0, recipe=recipe_for("tiny"))
    with pytest.raises(ValueError, match="empty"):
        GroundingCollator(config)([])
    bad = make_row(rng, "w", "tiny", num_queries=1)
    bad["queries"][0].update(start=5.0, end=5.0)
    with pytest.raises(ValueError, match="end <= start"):
        prepare_training_sample(bad, [0], config, 0, recipe=recipe_for("tiny"))
