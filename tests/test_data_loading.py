# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Loading grounding datasets: streaming over ranks, epoch determinism, map-style, errors."""

import time
import warnings

import numpy as np
import pytest
import torch

from modeling_mscl.data.loading import (
    GroundingDataset,
    GroundingStream,
    decode_table,
    iter_epoch,
    load_grounding_dataset,
)
from modeling_mscl.data.schema import read_metadata, write_grounding_dataset

DV, DT = 6, 3


def make_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        T = int(rng.integers(4, 12))
        out.append(
            {
                "video_id": f"vid{i:03d}", "duration": float(T), "fps": 1.0, "clip_size": 1.0, "clip_stride": 1.0,
                "downsample_rate": 1, "video_features": rng.standard_normal((T, DV)).astype(np.float32),
                "queries": [
                    {"query_id": f"vid{i:03d}_{k}", "sentence": "a person walks",
                     "text_features": rng.standard_normal((2, DT)).astype(np.float32),
                     "start": 0.5 * k, "end": 0.5 * k + 1.0}
                    for k in range(1 + i % 3)
                ],
            }
        )
    return out


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """24 videos in 4 equal shards (train) and 3 videos (test)."""
    root = tmp_path_factory.mktemp("grounding") / "ds"
    write_grounding_dataset(make_rows(24), root, "train", DV, DT, min_shards=4)
    write_grounding_dataset(make_rows(3, seed=1), root, "test", DV, DT)
    return root


def shard_of_video(root, split):
    import pyarrow.parquet as pq

    meta = read_metadata(root)
    owner = {}
    for s in meta["splits"][split]["shards"]:
        for vid in pq.read_table(root / s["file"], columns=["video_id"]).column("video_id").to_pylist():
            owner[vid] = s["file"]
    return owner


def test_two_ranks_read_disjoint_whole_shards(dataset_dir):
    owner = shard_of_video(dataset_dir, "train")
    for epoch in (0, 1):
        per_rank = []
        for rank in (0, 1):
            ds = load_grounding_dataset(dataset_dir, "train", shuffle_buffer=8, seed=7, rank=rank, world_size=2)
            ds.set_epoch(epoch)
            ids = [r["video_id"] for r in ds]
            assert len(ids) == len(ds) == 12  # same number of steps on every rank
            per_rank.append(ids)
        a, b = set(per_rank[0]), set(per_rank[1])
        assert not a & b and len(a | b) == 24 and len(per_rank[0]) + len(per_rank[1]) == 24  # every video exactly once
        # Whole shards per rank: a rank holds all videos of every shard it touches.
        for ids in per_rank:
            shards = {owner[v] for v in ids}
            assert len(shards) == 2
            assert {v for v, s in owner.items() if s in shards} == set(ids)


def test_unequal_shards_truncate_to_a_common_count(tmp_path):
    # 9 videos in 2 shards: 5 + 4 rows. Truncation gives 4 rows per rank; None keeps every row.
    write_grounding_dataset(make_rows(9), tmp_path / "ds", "train", DV, DT, min_shards=2)
    counts, union = [], set()
    for rank in (0, 1):
        ds = load_grounding_dataset(tmp_path / "ds", "train", seed=1, rank=rank, world_size=2)
        counts.append(len([r for r in ds]))
        full = load_grounding_dataset(tmp_path / "ds", "train", seed=1, rank=rank, world_size=2, equalize=None)
        union |= {r["video_id"] for r in full}
    assert counts == [4, 4]
    assert len(union) == 9


def test_shard_count_not_multiple_of_world_size(tmp_path):
    write_grounding_dataset(make_rows(7), tmp_path / "ds", "train", DV, DT, min_shards=3)
    with pytest.warns(UserWarning, match="not a multiple of world_size=2"):
        ds = load_grounding_dataset(tmp_path / "ds", "train", rank=0, world_size=2)
    ids0 = [r["video_id"] for r in ds]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids1 = [r["video_id"] for r in load_grounding_dataset(tmp_path / "ds", "train", rank=1, world_size=2)]
    assert len(ids0) == len(ids1) == 3 and not set(ids0) & set(ids1)  # fallback: 1 row in 2, equalised


def test_epoch_order_is_a_function_of_seed_and_epoch(dataset_dir):
    def order(seed, epoch, skip=0):
        ds = load_grounding_dataset(dataset_dir, "train", shuffle_buffer=6, seed=seed)
        return [r["video_id"] for r in iter_epoch(ds, epoch, skip=skip)]

    e0 = order(3, 0)
    assert sorted(e0) == sorted(f"vid{i:03d}" for i in range(24))
    assert order(3, 0) == e0
    assert order(3, 1) != e0
    assert order(4, 0) != e0
    # Resuming mid-epoch replays exactly the rest of the epoch.
    assert order(3, 1, skip=10) == order(3, 1)[10:]
    ds = load_grounding_dataset(dataset_dir, "train", shuffle_buffer=6, seed=0)
    assert [r["video_id"] for r in iter_epoch(ds, 0, seed=3)] == e0  # the seed argument overrides


def test_no_shuffle_keeps_stored_order(dataset_dir):
    a = [r["video_id"] for r in load_grounding_dataset(dataset_dir, "test", shuffle_buffer=None)]
    assert a == ["vid000", "vid001", "vid002"]


def test_streaming_and_map_style_decode_identically(dataset_dir):
    a = {r["video_id"]: r for r in load_grounding_dataset(dataset_dir, "train", shuffle_buffer=None)}
    c = {r["video_id"]: r for r in load_grounding_dataset(dataset_dir, "train", streaming=False)}
    src = {r["video_id"]: r for r in make_rows(24)}
    for vid, row in src.items():
        for got in (a[vid], c[vid]):
            assert np.array_equal(got["video_features"], row["video_features"])
            assert [q["query_id"] for q in got["queries"]] == [q["query_id"] for q in row["queries"]]
            for qg, qs in zip(got["queries"], row["queries"]):
                assert np.array_equal(qg["text_features"], qs["text_features"])


def test_torch_format_and_dataloader(dataset_dir):
    ds = load_grounding_dataset(dataset_dir, "train", format="torch", rank=1, world_size=2, seed=0)
    assert isinstance(ds, torch.utils.data.IterableDataset)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=list)
    batches = list(loader)
    assert len(batches) == 3 and all(len(b) == 4 for b in batches)
    row = batches[0][0]
    assert isinstance(row["video_features"], torch.Tensor) and row["video_features"].dtype == torch.float32
    assert row["video_features"].shape[1] == DV
    assert isinstance(row["queries"][0]["text_features"], torch.Tensor)


def test_map_style(dataset_dir):
    ds = load_grounding_dataset(dataset_dir, "test", streaming=False)
    assert isinstance(ds, GroundingDataset) and len(ds) == 3
    assert ds[-1]["video_id"] == "vid002" and ds[0]["video_features"].shape[1] == DV
    with pytest.raises(IndexError):
        ds[3]
    order = [r["video_id"] for r in iter_epoch(ds, 2, seed=5)]
    assert sorted(order) == ["vid000", "vid001", "vid002"] and order == [r["video_id"] for r in iter_epoch(ds, 2, seed=5)]


def test_columns_subset(dataset_dir):
    ds = load_grounding_dataset(dataset_dir, "train", columns=["video_id", "duration", "queries"], shuffle_buffer=None)
    row = next(iter(ds))
    assert set(row) == {"video_id", "duration", "queries"}
    ds = load_grounding_dataset(dataset_dir, "train", columns=["video_id"], shuffle_buffer=None)
    assert set(next(iter(ds))) == {"video_id"}
    with pytest.raises(ValueError, match="unknown column"):
        load_grounding_dataset(dataset_dir, "train", columns=["video_id", "nope"])


def test_errors(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="no parquet shards"):
        load_grounding_dataset(tmp_path, "train")
    with pytest.raises(ValueError, match="dataset folder not found"):
        load_grounding_dataset(tmp_path / "missing", "train")
    with pytest.raises(ValueError, match="unknown split 'val'.*test, train"):
        load_grounding_dataset(dataset_dir, "val")
    with pytest.raises(ValueError, match="video feature dim is 6, expected 512"):
        load_grounding_dataset(dataset_dir, "train", video_dim=512)
    with pytest.raises(ValueError, match="text feature dim is 3, expected 300"):
        load_grounding_dataset(dataset_dir, "train", text_dim=300, streaming=False)
    with pytest.raises(ValueError, match="rank"):
        load_grounding_dataset(dataset_dir, "train", rank=2, world_size=2)
    with pytest.raises(ValueError, match="format"):
        load_grounding_dataset(dataset_dir, "train", format="jax")
    with pytest.raises(ValueError, match="map-style loading"):
        load_grounding_dataset(dataset_dir, "train", streaming=False, rank=0, world_size=2)
    # A shard set with a hole is refused rather than read partially.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00001-of-00002.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="incomplete"):
        load_grounding_dataset(tmp_path, "train")


def test_early_close_does_not_stall(dataset_dir):
    ds = load_grounding_dataset(dataset_dir, "train", shuffle_buffer=16)
    start = time.perf_counter()
    for _ in range(3):
        it = iter(ds)
        next(it)
        del it
    assert time.perf_counter() - start < 4.0  # the 5 s thread-shutdown sleep is disabled


def test_decode_table_handles_empty_text(tmp_path):
    rows = make_rows(2)
    for q in rows[0]["queries"]:
        q["text_features"] = None
    write_grounding_dataset(rows, tmp_path / "ds", "train", DV, DT)
    ds = load_grounding_dataset(tmp_path / "ds", "train", streaming=False)
    assert ds[0]["queries"][0]["text_features"].shape == (0, DT)
    table = ds.hf_dataset.with_format("arrow")[0:2]
    decoded = decode_table(table, DV, DT, fmt="torch")
    assert decoded[0]["queries"][0]["text_features"].shape == (0, DT)
    assert isinstance(ds, GroundingDataset) and not isinstance(ds, GroundingStream)


def test_arrays_writable_unless_zero_copy(dataset_dir):
    row = next(iter(load_grounding_dataset(dataset_dir, "test", shuffle_buffer=None)))
    assert row["video_features"].flags.writeable and row["queries"][0]["text_features"].flags.writeable
    row = next(iter(load_grounding_dataset(dataset_dir, "test", shuffle_buffer=None, zero_copy=True)))
    assert not row["video_features"].flags.writeable
    ds = load_grounding_dataset(dataset_dir, "test", streaming=False, zero_copy=True)
    assert not ds[0]["video_features"].flags.writeable


def test_hub_repo_round_trip(fake_hub, dataset_dir):
    """A dataset folder uploaded as is loads by repo id: streaming and map-style."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("org/grounding", repo_type="dataset")
    api.upload_folder(repo_id="org/grounding", folder_path=str(dataset_dir), repo_type="dataset")
    local = sorted(r["video_id"] for r in load_grounding_dataset(dataset_dir, "train", shuffle_buffer=None))
    for rank in (0, 1):
        ds = load_grounding_dataset("org/grounding", "train", seed=2, rank=rank, world_size=2)
        assert ds.num_rows == 12 and len([r for r in ds]) == 12  # counts from mscl_dataset.json on the Hub
    assert sorted(r["video_id"] for r in load_grounding_dataset("org/grounding", "train", shuffle_buffer=None)) == local
    test = load_grounding_dataset("org/grounding", "test", streaming=False)
    assert len(test) == 3 and test[0]["video_features"].shape[1] == DV
    with pytest.raises(ValueError, match="video feature dim is 6, expected 7"):
        load_grounding_dataset("org/grounding", "train", video_dim=7)
    with pytest.raises(ValueError, match="unknown split 'nope'"):
        load_grounding_dataset("org/grounding", "nope", streaming=False)
