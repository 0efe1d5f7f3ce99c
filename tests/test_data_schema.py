# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The grounding parquet schema: writer, validation, time mapping and atomic output."""

import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from modeling_mscl.data.loading import load_grounding_dataset
from modeling_mscl.data.schema import (
    METADATA_FILENAME,
    GroundingDatasetWriter,
    grounding_features,
    plan_num_shards,
    read_metadata,
    time_mapping_for_row,
    validate_row,
    write_grounding_dataset,
)
from modeling_mscl.processing_mscl import resample_to_fixed_length

DV, DT = 8, 4


def make_row(i, rng, T=None, n_queries=2, text=True, fps=2.0, clip_size=2.0, clip_stride=1.0, rate=1):
    T = int(rng.integers(6, 30)) if T is None else T
    duration = ((T - 1) * clip_stride + clip_size) / fps
    queries = []
    for k in range(n_queries):
        s = float(rng.uniform(0, duration / 2))
        e = float(rng.uniform(s + 0.1, duration))
        tf = rng.standard_normal((int(rng.integers(1, 6)), DT)).astype(np.float32) if (text and k % 2) else None
        queries.append({"query_id": f"v{i}_{k}", "sentence": f"query {k} of video {i}", "text_features": tf, "start": s, "end": e})
    return {
        "video_id": f"v{i}", "duration": duration, "fps": fps, "clip_size": clip_size, "clip_stride": clip_stride,
        "downsample_rate": rate, "video_features": rng.standard_normal((T, DV)).astype(np.float32), "queries": queries,
    }


def rows(n, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return [make_row(i, rng, **kw) for i in range(n)]


def test_features_describe_the_schema():
    f = grounding_features(16, 32)
    assert f["video_features"].shape == (None, 16) and f["video_features"].dtype == "float32"
    q = f["queries"].feature
    assert set(q) == {"query_id", "sentence", "text_features", "start", "end"}
    assert q["text_features"].shape == (None, 32)
    assert f["downsample_rate"].dtype == "int32" and f["duration"].dtype == "float64"
    with pytest.raises(ValueError, match="video_dim"):
        grounding_features(0, 4)


def test_round_trip_bit_identical(tmp_path):
    data = rows(7)
    meta = write_grounding_dataset(data, tmp_path / "ds", "train", DV, DT)
    assert meta["num_videos"] == 7 and meta["num_queries"] == 14
    for streaming in (True, False):
        ds = load_grounding_dataset(tmp_path / "ds", "train", streaming=streaming, shuffle_buffer=None)
        got = {r["video_id"]: r for r in ds}
        assert set(got) == {r["video_id"] for r in data}
        for src in data:
            row = got[src["video_id"]]
            # Bit-identical features (compare raw bytes, not just values).
            assert row["video_features"].dtype == np.float32
            assert row["video_features"].tobytes() == src["video_features"].tobytes()
            for qs, qg in zip(src["queries"], row["queries"]):
                assert qg["query_id"] == qs["query_id"] and qg["sentence"] == qs["sentence"]
                assert qg["start"] == qs["start"] and qg["end"] == qs["end"]
                if qs["text_features"] is None:
                    assert qg["text_features"].shape == (0, DT)
                else:
                    assert qg["text_features"].tobytes() == qs["text_features"].tobytes()
            for key in ("duration", "fps", "clip_size", "clip_stride", "downsample_rate"):
                assert row[key] == src[key]


def test_loads_with_plain_datasets(tmp_path):
    import datasets

    write_grounding_dataset(rows(3), tmp_path / "ds", "train", DV, DT)
    write_grounding_dataset(rows(2, seed=1), tmp_path / "ds", "val_1", DV, DT)
    dd = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "val_1"} and dd["train"].num_rows == 3 and dd["val_1"].num_rows == 2
    assert isinstance(dd["train"].features["video_features"], datasets.Array2D)
    # Plain pyarrow sees list<list<float>> storage and the HF feature metadata.
    files = sorted((tmp_path / "ds" / "data").glob("train-*.parquet"))
    assert [f.name for f in files] == ["train-00000-of-00001.parquet"]
    assert b"huggingface" in pq.read_schema(files[0]).metadata


def test_time_mapping_round_trip_exact():
    rng = np.random.default_rng(3)
    base = {"video_id": "v", "fps": 29.4, "clip_size": 16.0, "clip_stride": 4.0, "downsample_rate": 4, "duration": 300.0,
            "video_features": np.zeros((2200, 2), np.float32)}
    t = rng.uniform(0, 300, size=100)
    for input_stride in (1, 2):
        m = time_mapping_for_row(base, input_stride=input_stride)
        idx = m.seconds_to_feature_index(t)
        # SnAG §7.3: idx = t*fps/stride_eff - 0.5*clip_size/stride_eff with stride_eff = 4*4.
        np.testing.assert_allclose(idx, t * 29.4 / 16 - 0.5, rtol=0, atol=1e-9)
        grid = m.seconds_to_grid(t)
        np.testing.assert_allclose(grid, idx / input_stride, rtol=0, atol=1e-12)
        back = m.grid_to_seconds(grid)
        assert np.abs(back - t).max() < 1e-5
        # feature index -> seconds -> feature index too
        assert np.abs(m.seconds_to_feature_index(m.feature_index_to_seconds(idx)) - idx).max() < 1e-5
    # Fixed length (Charades / ANet): 256 steps after subsampling 2200 // 4 = 550 features.
    m = time_mapping_for_row(base, input_stride=1, fixed_length=256)
    n = math.ceil(2200 / 4)
    assert m.clip_size == pytest.approx(((n - 1) * 16 + 16) / 256) and m.clip_stride == m.clip_size
    assert m.downsample_rate == 1
    grid = m.seconds_to_grid(t)
    assert grid.min() >= -0.5 and grid.max() <= 256
    assert np.abs(m.grid_to_seconds(grid) - t).max() < 1e-5
    # Without the features, the stored count must be given.
    with pytest.raises(ValueError, match="num_features"):
        time_mapping_for_row({k: v for k, v in base.items() if k != "video_features"}, fixed_length=256)
    assert time_mapping_for_row({k: v for k, v in base.items() if k != "video_features"}, fixed_length=256, num_features=2200) == m


def test_time_mapping_matches_resampled_features(tmp_path):
    """Read back a row and check the grid position of a moment against the resampled features."""
    rng = np.random.default_rng(4)
    row = make_row(0, rng, T=90, fps=24.0, clip_size=16.0, clip_stride=4.0, rate=2)
    write_grounding_dataset([row], tmp_path / "ds", "test", DV, DT)
    got = next(iter(load_grounding_dataset(tmp_path / "ds", "test", streaming=False)))
    feats = got["video_features"][:: got["downsample_rate"]]
    assert feats.shape[0] == 45
    m = time_mapping_for_row(got, input_stride=2, fixed_length=256)
    resampled = resample_to_fixed_length(torch.from_numpy(np.array(feats)), 256)
    assert resampled.shape == (256, DV)
    # The mapping spans the same frames before and after resampling: the first/last clip edges agree.
    m0 = time_mapping_for_row(got, input_stride=2)
    first_edge = m0.feature_index_to_seconds(-0.5 * m0.clip_size / m0.stride_eff, clamp=False)
    assert m.feature_index_to_seconds(-0.5, clamp=False) == pytest.approx(first_edge, abs=1e-9)
    last = m0.feature_index_to_seconds(44 + 0.5 * m0.clip_size / m0.stride_eff, clamp=False)
    assert m.feature_index_to_seconds(255 + 0.5, clamp=False) == pytest.approx(last, abs=1e-9)
    for q in got["queries"]:
        seg = np.array([q["start"], q["end"]])
        assert np.abs(m.grid_to_seconds(m.seconds_to_grid(seg)) - seg).max() < 1e-5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(video_features=np.zeros((5, DV + 1), np.float32)), "video feature dim is 9, expected 8"),
        (lambda r: r["video_features"].__setitem__((2, 3), np.nan), "NaN/inf"),
        (lambda r: r.update(video_features=np.zeros((0, DV), np.float32)), "empty"),
        (lambda r: r["queries"][0].update(sentence="  ", text_features=None), "empty sentence and no text features"),
        (lambda r: r["queries"][0].update(start=3.0, end=3.0), "start 3.0 >= end 3.0"),
        (lambda r: r["queries"][0].update(start=1.0, end=1e6), "outside the video"),
        (lambda r: r["queries"][0].update(start=-1.0), "outside the video"),
        (lambda r: r["queries"][1].update(text_features=np.ones((3, DT + 2), np.float32)), "text feature dim is 6, expected 4"),
        (lambda r: r["queries"][1].update(text_features=np.full((3, DT), np.inf, np.float32)), "text_features contain NaN"),
        (lambda r: r["queries"][1].update(query_id="v0_0"), "duplicate query_id"),
        (lambda r: r.update(queries=[]), "no queries"),
        (lambda r: r.update(fps=0.0), "fps must be a positive"),
        (lambda r: r.update(downsample_rate=0), "downsample_rate"),
    ],
)
def test_validate_row_errors_name_video_and_query(mutate, message):
    row = rows(1, T=12)[0]
    validate_row(row, DV, DT)
    mutate(row)
    with pytest.raises(ValueError, match="v0") as err:
        validate_row(row, DV, DT)
    assert message in str(err.value)


def test_writer_rejects_bad_rows_and_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    data = rows(5)
    data[3]["video_features"][0, 0] = np.nan
    with pytest.raises(ValueError, match="'v3'.*NaN"):
        write_grounding_dataset(data, out, "train", DV, DT, row_group_rows=1)
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # the staging folder is gone too


def test_crash_mid_shard_leaves_no_partial_dataset(tmp_path):
    out = tmp_path / "ds"
    write_grounding_dataset(rows(4), out, "train", DV, DT)
    before = sorted(os.listdir(out / "data"))
    meta_before = read_metadata(out)

    def gen():
        yield from rows(6, seed=5)
        raise RuntimeError("disk full")  # the source dies mid-shard

    with pytest.raises(RuntimeError, match="disk full"):
        write_grounding_dataset(gen(), out, "test", DV, DT, row_group_rows=2, max_shard_bytes=2000)
    assert sorted(os.listdir(out / "data")) == before
    assert read_metadata(out) == meta_before
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_grounding_dataset(out, "test")


def test_existing_split_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    write_grounding_dataset(rows(4), out, "train", DV, DT, min_shards=2)
    with pytest.raises(ValueError, match="already exists"):
        GroundingDatasetWriter(out, "train", DV, DT)
    write_grounding_dataset(rows(3, seed=9), out, "train", DV, DT, overwrite=True)
    assert sorted(os.listdir(out / "data")) == ["train-00000-of-00001.parquet"]
    assert read_metadata(out)["splits"]["train"]["num_videos"] == 3
    with pytest.raises(ValueError, match="video_dim=8"):
        _write_other_dim(out)


def _write_other_dim(out):
    rng = np.random.default_rng(0)
    row = make_row(0, rng)
    row["video_features"] = np.zeros((5, 3), np.float32)
    write_grounding_dataset([row], out, "test", 3, DT)


def test_duplicate_ids_rejected(tmp_path):
    data = rows(3)
    data[2]["video_id"] = "v0"
    for q in data[2]["queries"]:
        q["query_id"] += "x"
    with pytest.raises(ValueError, match="duplicate video_id"):
        write_grounding_dataset(data, tmp_path / "a", "train", DV, DT)
    data = rows(3)
    data[2]["queries"][0]["query_id"] = "v0_0"
    with pytest.raises(ValueError, match="duplicate query_id"):
        write_grounding_dataset(data, tmp_path / "b", "train", DV, DT)


def test_min_shards_and_balance(tmp_path):
    meta = write_grounding_dataset(rows(23), tmp_path / "a", "train", DV, DT, min_shards=4)
    assert meta["num_shards"] == 4
    counts = [s["num_rows"] for s in meta["shards"]]
    assert sum(counts) == 23 and max(counts) - min(counts) <= 1
    # Size-based groups: every group holds min_shards shards.
    meta = write_grounding_dataset(rows(40), tmp_path / "b", "train", DV, DT, min_shards=2, max_shard_bytes=3000)
    assert meta["num_shards"] % 2 == 0 and meta["num_shards"] > 2
    # Exact count: rounded up to a multiple of min_shards; balanced to one row.
    meta = write_grounding_dataset(rows(40), tmp_path / "c", "train", DV, DT, min_shards=4, num_shards=5, row_group_rows=3)
    counts = [s["num_rows"] for s in meta["shards"]]
    assert meta["num_shards"] == 8 and max(counts) - min(counts) <= 1 and sum(counts) == 40
    # Rows are flushed in row groups; a shard is never buffered whole.
    first = tmp_path / "c" / meta["shards"][0]["file"]
    assert pq.ParquetFile(first).num_row_groups == math.ceil(counts[0] / 3)
    assert plan_num_shards(10 * 2**20, 4 * 2**20, min_shards=2) == 4
    assert plan_num_shards(1, min_shards=3) == 3


def test_metadata_file(tmp_path):
    write_grounding_dataset(rows(5), tmp_path / "ds", "train", DV, DT, min_shards=2, summary={"format": "synthetic"})
    with open(tmp_path / "ds" / METADATA_FILENAME) as f:
        meta = json.load(f)
    assert meta["video_dim"] == DV and meta["text_dim"] == DT and meta["format"] == "mscl-grounding"
    split = meta["splits"]["train"]
    assert split["num_videos"] == 5 and split["num_queries"] == 10 and split["num_shards"] == 2
    assert split["conversion"] == {"format": "synthetic"}
    assert [s["file"] for s in split["shards"]] == ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "path: data/train-*.parquet" in card


def test_torch_inputs_accepted(tmp_path):
    data = rows(2)
    data[0]["video_features"] = torch.from_numpy(data[0]["video_features"])
    write_grounding_dataset(data, tmp_path / "ds", "train", DV, DT)
    got = load_grounding_dataset(tmp_path / "ds", "train", streaming=False, format="torch")
    row = [r for r in got if r["video_id"] == "v0"][0]
    assert isinstance(row["video_features"], torch.Tensor)
    assert torch.equal(row["video_features"], data[0]["video_features"])
