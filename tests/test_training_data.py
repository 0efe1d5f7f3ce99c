# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The training stream: deterministic per (seed, epoch), equal length per process, exact replay on resume."""

import itertools

import pytest
import torch

from modeling_mscl.data.synthetic import synthetic_rows
from modeling_mscl.training.data import (
    TrainingCollator,
    TrainingSampleDataset,
    TrainingSchedule,
    count_epoch_samples,
    count_training_samples,
    estimate_num_features,
)

from conftest import tiny_config, tiny_recipe

SPEC = dict(num_train_videos=12, num_test_videos=0, min_steps=40, max_steps=120)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def config():
    return tiny_config(max_video_length=128, num_pyramid_levels=4)


@pytest.fixture(scope="module")
def recipe():
    return tiny_recipe()


@pytest.fixture(scope="module")
def rows():
    return list(synthetic_rows("train", **SPEC))


def _key(sample):
    return (sample["video_id"], sample["epoch"], sample["group_index"], tuple(sample["query_ids"]), sample["crop_offset"])


def _dataset(rows, config, **kw):
    kw.setdefault("samples_per_epoch", 10)
    kw.setdefault("num_epochs", 3)
    kw.setdefault("recipe", tiny_recipe())
    return TrainingSampleDataset(rows, config, **kw)


def test_order_is_a_function_of_seed_and_epoch(rows, config, recipe):
    a = [_key(s) for s in _dataset(rows, config)]
    b = [_key(s) for s in _dataset(rows, config)]
    assert a == b and len(a) == 30
    assert [k[1] for k in a] == [0] * 10 + [1] * 10 + [2] * 10
    assert a[:10] != a[10:20]  # epochs differ
    c = [_key(s) for s in _dataset(rows, config, seed=recipe.seed + 1)]
    assert c != a


def test_resume_position_replays_exactly(rows, config):
    full = list(_dataset(rows, config))
    for position in (0, 3, 10, 17, 29):
        ds = _dataset(rows, config)
        ds.set_position(position)
        resumed = list(ds)
        assert [_key(s) for s in resumed] == [_key(s) for s in full[position:]]
        for x, y in zip(resumed, full[position:]):
            assert torch.equal(x["video_features"], y["video_features"])
            assert torch.equal(x["labels"], y["labels"])
            assert x["contrastive_seed"] == y["contrastive_seed"]


def test_processes_yield_equal_counts_and_cover_the_epoch(rows, config, recipe):
    total, videos = count_epoch_samples(rows, config, epoch=0, recipe=recipe)
    assert videos == len(rows) and total >= len(rows)
    # every process yields exactly samples_per_epoch, wrapping around when its rows run short
    per = [list(_dataset(rows, config, samples_per_epoch=total, num_epochs=1, rank=r, world_size=2)) for r in range(2)]
    assert len(per[0]) == len(per[1]) == total
    ids = {s["video_id"] for p in per for s in p}
    assert ids == {r["video_id"] for r in rows}


def test_count_from_metadata_matches_decoded_rows(rows, config, recipe, tmp_path):
    from modeling_mscl.data.synthetic import generate_synthetic_benchmark

    path = generate_synthetic_benchmark(str(tmp_path / "bench"), **SPEC)
    assert count_training_samples(path, config, "train", recipe=recipe) == count_epoch_samples(rows, config, 0, recipe=recipe)
    for row in rows:
        meta = {k: v for k, v in row.items() if k != "video_features"}
        assert estimate_num_features(meta) == estimate_num_features(row) == len(row["video_features"])


def test_schedule_arithmetic():
    s = TrainingSchedule(num_samples=905, num_videos=600, batch_size=8, world_size=2, gradient_accumulation_steps=2,
                         num_epochs=9, warmup_epochs=1)
    assert s.per_device_batch_size == 4
    assert s.steps_per_epoch == 905 // 16 == 56
    assert s.samples_per_epoch_per_process == 56 * 2 * 4
    assert s.max_steps == 56 * 9 and s.warmup_steps == 56
    with pytest.raises(ValueError, match="divisible"):
        TrainingSchedule(num_samples=905, num_videos=600, batch_size=7, world_size=2, gradient_accumulation_steps=1,
                         num_epochs=1, warmup_epochs=0)
    with pytest.raises(ValueError, match="fewer than"):
        TrainingSchedule(num_samples=3, num_videos=3, batch_size=8, world_size=1, gradient_accumulation_steps=1,
                         num_epochs=1, warmup_epochs=0)


def test_collator_gives_model_inputs_only(rows, config):
    samples = list(itertools.islice(iter(_dataset(rows, config)), 4))
    batch = TrainingCollator(config)(samples)
    assert "meta" not in batch
    assert set(batch) == {"video_features", "video_mask", "text_features", "text_mask", "query_video_index", "labels",
                          "contrastive_query_index", "contrastive_seeds"}
    assert batch["video_features"].shape[1] == config.max_video_length * config.video_input_stride
    assert "meta" in TrainingCollator(config, keep_meta=True)(samples)


def test_collator_applies_the_models_input_checks(rows, config):
    """The collator rejects a bad sample with the same message as the model's forward (shared checks)."""
    from modeling_mscl import MSCLForTemporalGrounding

    samples = list(_dataset(rows, config, samples_per_epoch=2, num_epochs=1))[:2]
    batch = TrainingCollator(config)(samples)
    assert batch["video_features"].shape[0] == 2
    model = MSCLForTemporalGrounding(config)
    bad_video = [dict(samples[0]), samples[1]]
    bad_video[0]["video_features"] = samples[0]["video_features"].clone()
    bad_video[0]["video_features"][3, 0] = float("nan")
    bad_labels = [dict(samples[0]), samples[1]]
    bad_labels[0]["labels"] = samples[0]["labels"].flip(-1)  # end before start
    for bad, message in ((bad_video, "video_features contain NaN or inf"), (bad_labels, "has start >= end")):
        with pytest.raises(ValueError, match=message):
            TrainingCollator(config)(bad)
        unchecked = TrainingCollator(config)._collate(bad)
        unchecked.pop("meta")
        with pytest.raises(ValueError, match=message):
            model(**unchecked)
