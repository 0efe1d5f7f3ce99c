# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Load grounding datasets (:mod:`.schema`) for training (streaming) and evaluation (map-style).

Rows come out decoded, as plain dicts::

    {"video_id": str, "duration": float, "fps": float, "clip_size": float, "clip_stride": float,
     "downsample_rate": int,
     "video_features": (T, Dv) float32 array        # raw, before downsample_rate subsampling
     "queries": [{"query_id": str, "sentence": str,
                  "text_features": (L, Dt) float32 array, (0, Dt) when text is embedded on the fly,
                  "start": float, "end": float}, ...]}

Arrays are writable numpy arrays (``format="numpy"``; ``zero_copy=True`` gives read-only views of
the Arrow buffers instead) or torch tensors (``format="torch"``). Arrow columns are decoded directly (flat
float buffer -> reshape), which is several times faster than ``datasets``' own numpy formatter for long
videos.

Reading goes through ``datasets``: ``datasets.load_dataset("parquet", ...)`` (local folder) or
``load_dataset(repo_id)`` (Hub), ``IterableDataset.shuffle`` + ``split_dataset_by_node``. The streaming
benchmark (``benchmarks/results/streaming.md``) measures this path at tens to hundreds of times the row
rate a training process consumes, so there is no second, hand-written reader.

Distributed training: shard files are handed out whole, so the shard count must be a multiple of the
world size (write with ``min_shards=world_size``). Every rank then yields the same number of rows per
epoch: the stream is truncated to the number of rows the *smallest* possible set of shards of a rank
holds (known from ``mscl_dataset.json``; ``equalize="truncate"``). The writer balances shards to
within one row, so this drops at most a few videos per epoch and none when the shards are equal —
exactly like ``drop_last``; the dropped rows change with the epoch because the order does. DDP
therefore never waits on a rank that ran out of data. ``equalize=None`` keeps every row.

Order: the order of an epoch is a deterministic function of ``(seed, epoch)`` (and the rank layout);
call ``dataset.set_epoch(epoch)`` or use :func:`iter_epoch`, which can also skip the first rows to
resume mid-epoch without decoding them.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import re
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from torch.utils.data import IterableDataset, get_worker_info

from .schema import DATA_SUBDIR, METADATA_FILENAME, VIDEO_COLUMNS, read_metadata

logger = logging.getLogger(__name__)

DEFAULT_SHUFFLE_BUFFER = 64

_SHARD_RE = re.compile(r"^(?P<split>\w+(?:\.\w+)*)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet$")


# ----------------------------------------------------------------------------------------------------
# Arrow -> numpy decoding
# ----------------------------------------------------------------------------------------------------
def _storage(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    return arr


def decode_matrices(arr: Union[pa.Array, pa.ChunkedArray], dim: Optional[int] = None, zero_copy: bool = False) -> List[np.ndarray]:
    """``list<list<float32>>`` (or HF ``Array2D``) arrow array -> list of ``(T_i, D)`` float32 arrays.

    With ``zero_copy`` the arrays are read-only views of the Arrow buffers; otherwise writable copies
    (one memcpy, small next to the parquet decode).
    """
    arr = _storage(arr)
    n = len(arr)
    if n == 0:
        return []
    outer = np.asarray(arr.offsets)  # absolute offsets into arr.values for this (possibly sliced) array
    inner_arr = arr.values
    inner = np.asarray(inner_arr.offsets)
    flat = inner_arr.values
    if flat.null_count:
        raise ValueError("feature arrays must not contain nulls")
    flat = flat.to_numpy(zero_copy_only=False)
    if flat.dtype != np.float32:
        flat = flat.astype(np.float32)
    out = []
    for i in range(n):
        a, b = int(outer[i]), int(outer[i + 1])
        lo, hi = int(inner[a]), int(inner[b])
        rows = b - a
        if rows == 0:
            width = dim if dim is not None else 0
            out.append(np.zeros((0, width), dtype=np.float32))
            continue
        width = (hi - lo) // rows
        if width * rows != hi - lo:
            raise ValueError("ragged feature matrix: rows of different widths")
        view = flat[lo:hi].reshape(rows, width)
        out.append(view if zero_copy else view.copy())
    return out


def decode_table(
    table: pa.Table, video_dim: Optional[int] = None, text_dim: Optional[int] = None, fmt: str = "numpy", zero_copy: bool = False
) -> List[Dict[str, Any]]:
    """Decode an arrow table of the schema (any subset of columns) into row dicts.

    ``fmt``: ``"numpy"`` or ``"torch"``. ``zero_copy`` (numpy only): read-only views instead of copies.
    """
    if fmt not in ("numpy", "torch"):
        raise ValueError(f"format must be 'numpy' or 'torch', got {fmt!r}")
    zero_copy = zero_copy and fmt == "numpy"
    n = table.num_rows
    cols: Dict[str, List[Any]] = {}
    for name in table.column_names:
        col = table.column(name)
        if name == "video_features":
            cols[name] = decode_matrices(col, video_dim, zero_copy)
        elif name == "queries":
            cols[name] = _decode_queries(col, text_dim, zero_copy)
        else:
            cols[name] = col.to_pylist()
    rows = [{name: cols[name][i] for name in cols} for i in range(n)]
    if fmt == "torch":
        rows = [_to_torch(r) for r in rows]
    return rows


def _decode_queries(col: Union[pa.Array, pa.ChunkedArray], text_dim: Optional[int], zero_copy: bool = False) -> List[List[Dict[str, Any]]]:
    arr = _storage(col)
    offsets = np.asarray(arr.offsets)
    struct = arr.values
    fields = {struct.type.field(i).name: struct.field(i) for i in range(struct.type.num_fields)}
    lo, hi = int(offsets[0]), int(offsets[-1])
    flat: Dict[str, List[Any]] = {}
    for name, child in fields.items():
        child = child.slice(lo, hi - lo)
        flat[name] = decode_matrices(child, text_dim, zero_copy) if name == "text_features" else child.to_pylist()
    out = []
    for i in range(len(arr)):
        a, b = int(offsets[i]) - lo, int(offsets[i + 1]) - lo
        out.append([{name: flat[name][k] for name in flat} for k in range(a, b)])
    return out


def _to_torch(row: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    def conv(x):
        return torch.from_numpy(x)  # decode_table made writable copies already

    out = dict(row)
    if "video_features" in out:
        out["video_features"] = conv(out["video_features"])
    if "queries" in out:
        out["queries"] = [{**q, "text_features": conv(q["text_features"])} if "text_features" in q else q for q in out["queries"]]
    return out


# ----------------------------------------------------------------------------------------------------
# Locating shards
# ----------------------------------------------------------------------------------------------------
def _is_local(path_or_repo: str) -> bool:
    return os.path.exists(os.path.expanduser(os.fspath(path_or_repo)))


def _local_split_files(path: str, split: str, meta: Optional[Dict[str, Any]]) -> List[str]:
    """The parquet files of ``split`` in a dataset folder, checked against the metadata if present."""
    data_dir = os.path.join(path, DATA_SUBDIR)
    found: Dict[str, List[Tuple[int, int, str]]] = {}
    for file in sorted(glob.glob(os.path.join(data_dir, "*.parquet"))):
        m = _SHARD_RE.match(os.path.basename(file))
        if m:
            found.setdefault(m.group("split"), []).append((int(m.group("index")), int(m.group("total")), file))
    if not found:
        raise ValueError(
            f"{path}: no parquet shards found (expected {DATA_SUBDIR}/<split>-00000-of-0000N.parquet); "
            "write the dataset with modeling_mscl.data.write_grounding_dataset or the converter CLI"
        )
    if split not in found:
        raise ValueError(f"{path}: unknown split {split!r}; available splits: {', '.join(sorted(found))}")
    shards = sorted(found[split])
    totals = {t for _, t, _ in shards}
    indices = [i for i, _, _ in shards]
    if len(totals) != 1 or indices != list(range(next(iter(totals)))):
        raise ValueError(f"{path}: split {split!r} has an incomplete or mixed shard set: {[os.path.basename(f) for *_, f in shards]}")
    files = [f for *_, f in shards]
    if meta is not None and split in meta.get("splits", {}):
        expected = [os.path.join(path, s["file"]) for s in meta["splits"][split]["shards"]]
        if [os.path.abspath(f) for f in files] != [os.path.abspath(f) for f in expected]:
            raise ValueError(f"{path}: shards of split {split!r} on disk do not match {METADATA_FILENAME}")
    return files


def _hub_metadata(repo_id: str, revision: Optional[str]) -> Optional[Dict[str, Any]]:
    """``mscl_dataset.json`` of a Hub dataset repo, or ``None`` (not there, or offline)."""
    try:
        import json

        from huggingface_hub import hf_hub_download

        file = hf_hub_download(repo_id, METADATA_FILENAME, repo_type="dataset", revision=revision)
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except Exception as err:  # noqa: BLE001 - metadata is optional; counts then come from the stream
        logger.info("no %s for %s (%s); per-rank row counts are unknown", METADATA_FILENAME, repo_id, err)
        return None


def _check_dims(features_or_meta: Dict[str, Any], video_dim: Optional[int], text_dim: Optional[int],
                where: str) -> Tuple[Optional[int], Optional[int]]:
    vd, td = features_or_meta.get("video_dim"), features_or_meta.get("text_dim")
    if video_dim is not None and vd is not None and int(vd) != int(video_dim):
        raise ValueError(f"{where}: video feature dim is {vd}, expected {video_dim}")
    if text_dim is not None and td is not None and int(td) != int(text_dim):
        raise ValueError(f"{where}: text feature dim is {td}, expected {text_dim}")
    return vd, td


def _dims_from_features(features) -> Dict[str, Optional[int]]:
    out: Dict[str, Optional[int]] = {"video_dim": None, "text_dim": None}
    if features is None:
        return out
    vf = features.get("video_features")
    if vf is not None and getattr(vf, "shape", None):
        out["video_dim"] = vf.shape[-1]
    q = features.get("queries")
    inner = getattr(q, "feature", None)
    if isinstance(q, list) and q:
        inner = q[0]
    if isinstance(inner, dict) and getattr(inner.get("text_features"), "shape", None):
        out["text_dim"] = inner["text_features"].shape[-1]
    return out


def _rank_row_count(shard_rows: Sequence[int], world_size: int) -> int:
    """Rows every rank can yield whichever shards it gets: the sum of the smallest n/world_size shards."""
    per_rank = len(shard_rows) // world_size
    return int(sum(sorted(shard_rows)[:per_rank]))


def _check_world(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None:
        return 0, 1
    if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return int(rank), int(world_size)


def _worker_limit(limit: Optional[int]) -> Optional[int]:
    """Split a per-process row limit among DataLoader workers (each worker reads its own shards)."""
    if limit is None:
        return None
    info = get_worker_info()
    if info is None or info.num_workers <= 1:
        return limit
    return limit // info.num_workers + (1 if info.id < limit % info.num_workers else 0)


# ----------------------------------------------------------------------------------------------------
# Streaming through `datasets`
# ----------------------------------------------------------------------------------------------------
class GroundingStream(IterableDataset):
    """A streamed split: iterate to get decoded rows of this rank; ``set_epoch`` changes the order.

    Attributes:
        hf_dataset: the underlying unshuffled ``datasets.IterableDataset`` of the whole split.
        num_rows: rows this rank yields per epoch (``None`` when unknown: a Hub repo without metadata
            and ``equalize=None``).
        num_shards, video_dim, text_dim, seed, epoch, rank, world_size.
    """

    def __init__(
        self,
        hf_dataset,
        *,
        seed: int,
        shuffle_buffer: Optional[int],
        rank: int,
        world_size: int,
        fmt: str,
        num_rows: Optional[int],
        video_dim: Optional[int],
        text_dim: Optional[int],
        name: str,
        zero_copy: bool = False,
    ):
        self.hf_dataset = hf_dataset
        self.zero_copy = zero_copy
        self.seed = int(seed)
        self.shuffle_buffer = shuffle_buffer
        self.rank, self.world_size = rank, world_size
        self.format = fmt
        self.num_rows = num_rows
        self.video_dim, self.text_dim = video_dim, text_dim
        self.name = name
        self.epoch = 0

    @property
    def num_shards(self) -> int:
        return self.hf_dataset.num_shards

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.num_rows is None:
            raise TypeError(f"{self.name}: the number of rows per rank is unknown (no {METADATA_FILENAME})")
        return self.num_rows

    def _pipeline(self):
        from datasets.distributed import split_dataset_by_node

        ds = self.hf_dataset
        if self.shuffle_buffer:
            ds = ds.shuffle(seed=self.seed, buffer_size=int(self.shuffle_buffer))
        if self.world_size > 1:
            ds = split_dataset_by_node(ds, rank=self.rank, world_size=self.world_size)
        ds = ds.with_format("arrow")
        # After with_format: it builds a new IterableDataset that does not carry the epoch over.
        ds.set_epoch(self.epoch)
        return ds

    def iter_arrow(self, skip: int = 0) -> Iterator[pa.Table]:
        """Undecoded one-row arrow tables of this rank and epoch (after skipping ``skip`` rows)."""
        limit = _worker_limit(self.num_rows)
        for i, table in enumerate(self._pipeline()):
            if limit is not None and i >= limit:
                break
            if i >= skip:
                yield table

    def iter_rows(self, skip: int = 0) -> Iterator[Dict[str, Any]]:
        for table in self.iter_arrow(skip=skip):
            yield from decode_table(table, self.video_dim, self.text_dim, self.format, self.zero_copy)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self.iter_rows()

    def __repr__(self) -> str:
        return (
            f"GroundingStream({self.name}, shards={self.num_shards}, rows_per_rank={self.num_rows}, "
            f"rank={self.rank}/{self.world_size}, seed={self.seed}, epoch={self.epoch}, format={self.format})"
        )


# ----------------------------------------------------------------------------------------------------
# Map-style
# ----------------------------------------------------------------------------------------------------
class GroundingDataset:
    """A map-style split (evaluation): ``ds[i]`` is a decoded row; ``hf_dataset`` is the Arrow-backed
    ``datasets.Dataset`` (memory-mapped, so large splits do not need to fit in RAM)."""

    def __init__(self, hf_dataset, fmt: str, video_dim: Optional[int], text_dim: Optional[int], name: str, zero_copy: bool = False):
        self.hf_dataset = hf_dataset
        self.zero_copy = zero_copy
        self._arrow = hf_dataset.with_format("arrow")
        self.format = fmt
        self.video_dim, self.text_dim = video_dim, text_dim
        self.name = name

    def __len__(self) -> int:
        return len(self.hf_dataset)

    @property
    def num_rows(self) -> int:
        return len(self.hf_dataset)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        return decode_table(self._arrow[int(index) : int(index) + 1], self.video_dim, self.text_dim, self.format, self.zero_copy)[0]

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for start in range(0, len(self), 16):
            yield from decode_table(self._arrow[start : start + 16], self.video_dim, self.text_dim, self.format, self.zero_copy)

    def __repr__(self) -> str:
        return f"GroundingDataset({self.name}, rows={len(self)}, format={self.format})"


# ----------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------
def load_grounding_dataset(
    path_or_repo: str,
    split: str,
    streaming: bool = True,
    shuffle_buffer: Optional[int] = DEFAULT_SHUFFLE_BUFFER,
    seed: int = 0,
    rank: Optional[int] = None,
    world_size: Optional[int] = None,
    columns: Optional[Sequence[str]] = None,
    *,
    format: str = "numpy",
    equalize: Optional[str] = "truncate",
    video_dim: Optional[int] = None,
    text_dim: Optional[int] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    zero_copy: bool = False,
):
    """Open one split of a grounding dataset (local folder written by :mod:`.schema`, or a Hub repo id).

    Args:
        path_or_repo: dataset folder, or a Hub dataset repo id (``user/name``).
        split: split name (``train``, ``test``, ``val_1``...).
        streaming: ``True`` → an iterable stream for training (:class:`GroundingStream`); ``False`` → a
            map-style :class:`GroundingDataset` of the whole split (evaluation; order it with
            :func:`iter_epoch`; ``rank``/``world_size`` are refused, ``shuffle_buffer`` does not apply).
        shuffle_buffer: rows in the shuffle buffer; ``None``/0/1 keeps the stored order (no shard
            permutation either), e.g. for evaluation streams.
        seed: base seed; the order of epoch ``e`` depends only on ``(seed, e)`` and the rank layout.
        rank / world_size: this process among ``world_size`` (both or neither).
        columns: read only these columns (e.g. everything but ``video_features`` for metadata scans).
        format: ``"numpy"`` or ``"torch"`` arrays.
        equalize: ``"truncate"`` (default) makes every rank yield the same number of rows per epoch;
            ``None`` yields every row of the rank's shards.
        video_dim / text_dim: expected feature widths; a mismatch is an error.
        revision: Hub revision. cache_dir: ``datasets`` cache for the map-style Arrow files.
        zero_copy: numpy arrays as read-only views of the Arrow buffers instead of writable copies
            (saves one memcpy per array; torch format always copies).
    """
    import datasets

    # A shuffle buffer's worker threads otherwise sleep 5 s whenever a stream ends or is closed early.
    if hasattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN"):
        datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0
    if format not in ("numpy", "torch"):
        raise ValueError(f"format must be 'numpy' or 'torch', got {format!r}")
    if equalize not in (None, "truncate"):
        raise ValueError(f"equalize must be 'truncate' or None, got {equalize!r}")
    if columns is not None:
        unknown = [c for c in columns if c not in VIDEO_COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; the schema has {list(VIDEO_COLUMNS)}")
        columns = list(columns)
    if not streaming and (rank is not None or world_size is not None):
        raise ValueError("rank/world_size split a stream between processes; map-style loading (streaming=False) "
                         "returns the whole split")
    rank, world_size = _check_world(rank, world_size)
    path_or_repo = os.fspath(path_or_repo)
    local = _is_local(path_or_repo)
    name = f"{path_or_repo}:{split}"

    if not local and (path_or_repo.startswith((".", "/", "~", os.sep)) or path_or_repo.count("/") > 1):
        raise ValueError(f"dataset folder not found: {path_or_repo} (and it is not a Hub repo id of the form 'org/name')")
    if local:
        path = os.path.abspath(os.path.expanduser(path_or_repo))
        if not os.path.isdir(path):
            raise ValueError(f"{path} is not a dataset folder")
        meta = read_metadata(path)
        files = _local_split_files(path, split, meta)
    else:
        path, files = None, None
        meta = _hub_metadata(path_or_repo, revision)

    vd = td = None
    shard_rows: Optional[List[int]] = None
    if meta is not None:
        vd, td = _check_dims(meta, video_dim, text_dim, name)
        if split in meta.get("splits", {}):
            shard_rows = [s["num_rows"] for s in meta["splits"][split]["shards"]]
        elif local:
            raise ValueError(f"{path}: unknown split {split!r}; available splits: {', '.join(sorted(meta['splits']))}")
    elif files is not None:
        dims = _dims_from_features(datasets.Features.from_arrow_schema(pq.read_schema(files[0])))
        vd, td = _check_dims(dims, video_dim, text_dim, name)

    kwargs: Dict[str, Any] = {}
    if columns is not None:
        kwargs["columns"] = columns
    if local:
        hf = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming, cache_dir=cache_dir, **kwargs)
    else:
        try:
            hf = datasets.load_dataset(path_or_repo, split=split, streaming=streaming, revision=revision, cache_dir=cache_dir, **kwargs)
        except ValueError as err:
            if "Unknown split" in str(err) or "split" in str(err).lower():
                raise ValueError(f"{path_or_repo}: unknown split {split!r} ({err})") from err
            raise
    if meta is None:
        vd, td = _check_dims(_dims_from_features(hf.features), video_dim, text_dim, name)

    if not streaming:
        return GroundingDataset(hf, format, vd, td, name, zero_copy=zero_copy)

    n_shards = hf.num_shards
    num_rows: Optional[int] = None
    if world_size > 1 and n_shards % world_size:
        total = sum(shard_rows) if shard_rows is not None else None
        warnings.warn(
            f"{name}: {n_shards} shards is not a multiple of world_size={world_size}, so every rank reads "
            f"every row and keeps 1 in {world_size} (slower: all ranks decode all data). Rewrite the split "
            f"with min_shards={world_size} (or a multiple) to give each rank whole shards.",
            stacklevel=2,
        )
        if equalize == "truncate" and total is not None:
            num_rows = total // world_size
    elif equalize == "truncate" and shard_rows is not None:
        num_rows = _rank_row_count(shard_rows, world_size)
    elif equalize == "truncate" and world_size > 1:
        warnings.warn(
            f"{name}: per-shard row counts are unknown (no {METADATA_FILENAME}); ranks may yield different "
            "numbers of rows, so the training loop must stop all ranks together",
            stacklevel=2,
        )
    return GroundingStream(
        hf, seed=seed, shuffle_buffer=shuffle_buffer, rank=rank, world_size=world_size, fmt=format,
        num_rows=num_rows, video_dim=vd, text_dim=td, name=name, zero_copy=zero_copy,
    )


def iter_epoch(dataset, epoch: int, seed: Optional[int] = None, skip: int = 0) -> Iterator[Dict[str, Any]]:
    """Rows of ``epoch`` in an order that depends only on ``(seed, epoch)``; skip the first ``skip``.

    Works with :class:`GroundingStream` (``seed`` overrides the stream's seed), :class:`GroundingDataset` (a
    permutation from ``rng(seed, epoch)``), a plain ``datasets.IterableDataset`` (``set_epoch``; its shuffle seed
    was fixed by ``.shuffle``) and a ``datasets.Dataset`` (``shuffle(seed=...)`` with a seed derived from
    ``(seed, epoch)``).
    Skipped rows of the mscl streams are not decoded, so resuming to a saved step is cheap.
    """
    epoch, skip = int(epoch), int(skip)
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    if isinstance(dataset, GroundingStream):
        if seed is not None:
            dataset.seed = int(seed)
        dataset.set_epoch(epoch)
        return dataset.iter_rows(skip=skip)
    if isinstance(dataset, GroundingDataset):
        order = np.random.default_rng([0 if seed is None else int(seed), epoch]).permutation(len(dataset))
        return (dataset[int(i)] for i in order[skip:])
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        dataset.set_epoch(epoch)
        return itertools.islice(iter(dataset), skip, None)
    if isinstance(dataset, datasets.Dataset):
        derived = int(np.random.default_rng([0 if seed is None else int(seed), epoch]).integers(2**32))
        return itertools.islice(iter(dataset.shuffle(seed=derived)), skip, None)
    raise TypeError(f"iter_epoch does not know how to order {type(dataset).__name__}")


__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "GroundingDataset",
    "GroundingStream",
    "decode_matrices",
    "decode_table",
    "iter_epoch",
    "load_grounding_dataset",
]
