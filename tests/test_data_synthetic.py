# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The semi-synthetic benchmark: determinism, statistics, near-duplicates, baseline, storage."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from modeling_mscl.data.sampling import GroundingCollator, TrainingSampleStream, prepare_eval_sample
from modeling_mscl.data.schema import read_metadata, validate_row
from modeling_mscl.data.synthetic import (
    STATS_NAMES,
    SyntheticBenchmarkConfig,
    compute_annotation_statistics,
    default_benchmark_path,
    generate_synthetic_benchmark,
    load_statistics,
    synthetic_rows,
    trivial_baseline,
)

from conftest import tiny_config, tiny_recipe

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def small(**kw):
    base = dict(num_train_videos=12, num_test_videos=8)
    base.update(kw)
    return SyntheticBenchmarkConfig(**base)


def test_deterministic_bit_identical_and_seed_dependent():
    a = list(synthetic_rows("train", small()))
    b = list(synthetic_rows("train", small()))
    for ra, rb in zip(a, b):
        assert ra["video_features"].dtype == np.float32
        assert ra["video_features"].tobytes() == rb["video_features"].tobytes()
        for qa, qb in zip(ra["queries"], rb["queries"]):
            assert qa["text_features"].tobytes() == qb["text_features"].tobytes()
            assert (qa["sentence"], qa["start"], qa["end"]) == (qb["sentence"], qb["start"], qb["end"])
    # a video does not depend on how many are generated, nor on where generation starts
    more = list(synthetic_rows("train", small(num_train_videos=20)))
    assert all(x["video_features"].tobytes() == y["video_features"].tobytes() for x, y in zip(a, more))
    tail = list(synthetic_rows("train", small(), start=5))
    assert tail[0]["video_features"].tobytes() == a[5]["video_features"].tobytes()
    other = next(synthetic_rows("train", small(seed=1)))
    assert other["video_features"].tobytes() != a[0]["video_features"].tobytes()
    # splits differ and ids are unique
    test = list(synthetic_rows("test", small()))
    ids = [r["video_id"] for r in a + test]
    assert len(set(ids)) == len(ids)


def test_rows_follow_the_schema_and_the_sampler_accepts_them():
    config = tiny_config()
    rows = list(synthetic_rows("train", small()))
    for row in rows:
        validate_row(row, video_dim=32, text_dim=32)
        assert 64 <= row["video_features"].shape[0] <= 256 and row["duration"] == row["video_features"].shape[0]
        for q in row["queries"]:
            assert 4 <= q["text_features"].shape[0] <= config.max_text_length
    samples = list(TrainingSampleStream(rows, config, epoch=0, recipe=tiny_recipe()))
    batch = GroundingCollator(config)(samples[:8])
    assert batch["video_features"].shape == (8, 256, 32)
    ev = prepare_eval_sample(rows[0], config)
    assert ev["video_features"].shape[0] == rows[0]["video_features"].shape[0]


def test_statistics_follow_the_stored_summary():
    spec = SyntheticBenchmarkConfig(num_train_videos=500)
    stats = load_statistics(spec.stats)
    rows = list(synthetic_rows("train", spec))
    frac = np.array([(q["end"] - q["start"]) / r["duration"] for r in rows for q in r["queries"]])
    # very short and very long moments are both present
    assert (frac < 0.02).mean() > 0.01
    assert (frac >= 0.5).mean() > 0.1
    # relative lengths follow the real quantiles where the minimum moment length does not bind
    levels = np.array(stats["quantile_levels"])
    for level in (0.3, 0.5, 0.7, 0.9):
        expect = stats["moment_fraction"][int(np.argmin(np.abs(levels - level)))]
        assert np.quantile(frac, level) == pytest.approx(expect, rel=0.25, abs=0.03)
    qpv = np.array([len(r["queries"]) for r in rows])
    assert qpv.min() >= 1 and qpv.max() <= spec.max_queries_per_video
    assert np.median(qpv) == pytest.approx(stats["queries_per_video"][int(np.argmin(np.abs(levels - 0.5)))], abs=1)
    steps = np.array([r["video_features"].shape[0] for r in rows])
    assert steps.min() >= spec.min_steps and steps.max() <= spec.max_steps and steps.std() > 20
    for name in STATS_NAMES:
        s = load_statistics(name)
        assert len(s["duration_s"]) == len(s["quantile_levels"]) and np.all(np.diff(s["moment_fraction"]) >= 0)


def test_default_benchmark_has_enough_test_queries():
    spec = SyntheticBenchmarkConfig()
    n = sum(len(r["queries"]) for r in synthetic_rows("test", spec))
    assert n >= 1000


def test_near_duplicates_differ_in_exactly_one_content_token():
    rows = list(synthetic_rows("train", small(num_train_videos=60)))
    pairs = 0
    for row in rows:
        qs = row["queries"]
        for q in qs:
            j = q["near_duplicate_of"]
            if j < 0:
                continue
            pairs += 1
            a, b = qs[j]["token_ids"], q["token_ids"]
            assert len(a) == len(b)
            diff = [k for k in range(len(a)) if a[k] != b[k]]
            assert len(diff) == 1
            assert q["sentence"].split()[diff[0]] != qs[j]["sentence"].split()[diff[0]]
            assert sum(x != y for x, y in zip(q["sentence"].split(), qs[j]["sentence"].split())) == 1
            # the changed word moves the token features there only
            delta = np.abs(q["text_features"] - qs[j]["text_features"]).max(axis=1)
            assert delta[diff[0]] > 5 * np.delete(delta, diff[0]).max()
            assert (q["start"], q["end"]) != (qs[j]["start"], qs[j]["end"])
    assert pairs >= 15


def test_trivial_baseline_is_low_but_not_zero_and_works_when_signal_is_visible():
    rows = list(synthetic_rows("test", small(num_test_videos=60)))
    metrics = trivial_baseline(rows)
    assert metrics["num_queries"] == sum(len(r["queries"]) for r in rows)
    assert {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5"} <= set(metrics)
    assert 1.0 <= metrics["R1@0.5"] <= 30.0
    assert metrics["R5@0.5"] >= metrics["R1@0.5"]
    # Sanity of the baseline itself: when the video carries the mean token feature directly (no hidden
    # mixing), cosine scoring finds the moments.
    rng = np.random.default_rng(0)
    easy = []
    for r in rows[:20]:
        feats = rng.standard_normal(r["video_features"].shape).astype(np.float32) * 0.1
        for q in r["queries"][:1]:
            m = q["text_features"].mean(0)
            s, e = int(np.ceil(q["start"])), int(np.floor(q["end"]))
            feats[s:e] += 3 * m / np.linalg.norm(m)
            q["start"], q["end"] = float(s), float(max(e, s + 1))
        easy.append(dict(r, video_features=feats, queries=r["queries"][:1]))
    assert trivial_baseline(easy)["R1@0.5"] >= 80.0
    with pytest.raises(ValueError, match="video_dim == text_dim"):
        trivial_baseline(list(synthetic_rows("test", small(num_test_videos=1, text_dim=16))))


def test_generate_and_cache(tmp_path, monkeypatch):
    spec = small(num_train_videos=5, num_test_videos=3)
    out = generate_synthetic_benchmark(str(tmp_path / "bench"), spec)
    meta = read_metadata(out)
    assert meta["splits"]["train"]["num_videos"] == 5 and meta["splits"]["test"]["num_videos"] == 3
    assert meta["splits"]["train"]["conversion"]["fingerprint"] == spec.fingerprint()

    import pyarrow.parquet as pq

    table = pq.read_table(os.path.join(out, meta["splits"]["test"]["shards"][0]["file"]))
    first = table.slice(0, 1).to_pylist()[0]
    ref = next(synthetic_rows("test", spec))
    assert first["video_id"] == ref["video_id"]
    np.testing.assert_array_equal(np.asarray(first["video_features"], dtype=np.float32), ref["video_features"])

    monkeypatch.setenv("MSCL_CACHE", str(tmp_path / "cache"))
    path = default_benchmark_path(spec)
    assert path.startswith(str(tmp_path / "cache")) and spec.fingerprint() in path
    stamp = os.path.getmtime(os.path.join(path, "mscl_dataset.json"))
    assert default_benchmark_path(spec) == path  # reused, not regenerated
    assert os.path.getmtime(os.path.join(path, "mscl_dataset.json")) == stamp
    assert generate_synthetic_benchmark(None, spec) == path
    assert SyntheticBenchmarkConfig().fingerprint() != SyntheticBenchmarkConfig(seed=1).fingerprint()


def test_shards_split_whole_across_ranks(tmp_path):
    import warnings

    import pyarrow.parquet as pq

    from modeling_mscl.data.loading import load_grounding_dataset

    assert SyntheticBenchmarkConfig().num_shards == 4  # serves 1, 2 or 4 training processes
    spec = small(num_train_videos=10, num_test_videos=3)
    out = generate_synthetic_benchmark(str(tmp_path / "bench"), spec)
    meta = read_metadata(out)
    shards = meta["splits"]["train"]["shards"]
    assert len(shards) == 4 and len(meta["splits"]["test"]["shards"]) == 4
    by_shard = [set(pq.read_table(os.path.join(out, s["file"]), columns=["video_id"]).column("video_id").to_pylist()) for s in shards]
    # sharding does not change the rows
    assert set().union(*by_shard) == {r["video_id"] for r in synthetic_rows("train", spec)}
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to "every rank reads every row"
        for rank in range(2):
            ds = load_grounding_dataset(out, "train", shuffle_buffer=None, rank=rank, world_size=2, equalize=None)
            seen.append({r["video_id"] for r in ds})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set().union(*by_shard)
    for ids in seen:  # each rank holds whole shards
        assert ids == set().union(*[b for b in by_shard if b & ids])
    with pytest.raises(ValueError, match="num_shards"):
        SyntheticBenchmarkConfig(num_shards=0)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="stats"):
        SyntheticBenchmarkConfig(stats="nope")
    with pytest.raises(ValueError, match="split"):
        next(synthetic_rows("val", small()))
    with pytest.raises(ValueError, match="unknown statistics"):
        load_statistics("nope")


def test_stored_statistics_match_the_real_annotations():
    annotations = SHARED / "data" / "annotations"
    if not annotations.is_dir():
        pytest.skip(f"{SHARED} not found: real annotation files are only in the development checkout")
    stored = load_statistics()
    fresh = compute_annotation_statistics(str(annotations))
    assert stored["quantile_levels"] == fresh["quantile_levels"]
    assert stored["datasets"] == fresh["datasets"]
    # only numbers and file names: nothing copied from the annotations
    text = json.dumps(stored)
    assert "person" not in text and "##" not in text
