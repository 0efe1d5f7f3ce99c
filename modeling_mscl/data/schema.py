# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The on-disk grounding dataset: one row per video, parquet shards that load with ``datasets``.

Schema (one row = one video and all of its queries)
---------------------------------------------------

=====================  ===============================================  ==========================================
column                 type                                             meaning
=====================  ===============================================  ==========================================
``video_id``           ``string``                                       unique id of the video within the split
``duration``           ``float64``                                      video length in seconds
``fps``                ``float64``                                      frames per second of the source video
``clip_size``          ``float64``                                      frames covered by one feature vector
``clip_stride``        ``float64``                                      frames between consecutive feature vectors
                                                                        as *stored* (before ``downsample_rate``)
``downsample_rate``    ``int32``                                        keep every k-th stored feature
                                                                        (``video_features[::k]``) when loading
``video_features``     ``Array2D((None, Dv), float32)``                 the **raw** per-video features ``(T, Dv)``
                                                                        exactly as extracted: *before*
                                                                        ``downsample_rate`` subsampling and before
                                                                        any fixed-length (256) resampling
``queries``            ``List(struct)``                                 the video's queries, each with:
  ``query_id``         ``string``                                       unique id of the query within the split
  ``sentence``         ``string``                                       the query text (may be empty when token
                                                                        features are given)
  ``text_features``    ``Array2D((None, Dt), float32)``                 token-level features ``(L, Dt)``; an empty
                                                                        ``(0, Dt)`` array when the text is embedded
                                                                        on the fly from ``sentence``
  ``start``, ``end``   ``float64``                                      the moment in seconds,
                                                                        ``0 <= start < end <= duration``
=====================  ===============================================  ==========================================

The model's ``input_stride`` (2 for MAD) is a property of the model, not of the data, so it is not
stored; :func:`time_mapping_for_row` takes it as an argument. The time mapping of a row is
``TimeMapping(fps, clip_size, clip_stride, downsample_rate, input_stride, duration)``
(:mod:`modeling_mscl.processing_mscl`), followed by ``with_fixed_length`` for fixed-length datasets.

Writing: :class:`GroundingDatasetWriter` / :func:`write_grounding_dataset` (``pyarrow`` directly, no
dictionary encoding or statistics, uncompressed by default because float features do not compress and
decoding speed matters). ``rows_to_table`` builds the Arrow table of a list of rows.

On disk
-------
``<out_dir>/data/<split>-<index:05d>-of-<total:05d>.parquet`` (the layout ``push_to_hub`` uses, so
``load_dataset(<out_dir>)`` and ``load_dataset(<repo_id>)`` find the splits), a ``README.md`` dataset card
whose YAML ``configs`` lists each split's files, and ``mscl_dataset.json`` with the dims, per-split
and per-shard row/query counts and the converter's summary. The Hugging Face feature types are embedded
in each parquet file's schema metadata, so ``datasets`` decodes the ``Array2D`` columns; plain
``pyarrow`` sees ``list<list<float>>``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..processing_mscl import TimeMapping

METADATA_FILENAME = "mscl_dataset.json"
DATA_SUBDIR = "data"
FORMAT_NAME = "mscl-grounding"
FORMAT_VERSION = 1
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024
DEFAULT_ROW_GROUP_BYTES = 32 * 1024 * 1024
DEFAULT_ROW_GROUP_ROWS = 64
# Segment bounds may exceed [0, duration] by float noise from frame -> second conversions.
_BOUNDS_TOLERANCE = 1e-6

VIDEO_COLUMNS = ("video_id", "duration", "fps", "clip_size", "clip_stride", "downsample_rate", "video_features", "queries")
QUERY_FIELDS = ("query_id", "sentence", "text_features", "start", "end")


def grounding_features(video_dim: int, text_dim: int):
    """The ``datasets.Features`` of a grounding dataset with ``video_dim``-d video and ``text_dim``-d text."""
    import datasets

    video_dim, text_dim = _check_dim("video_dim", video_dim), _check_dim("text_dim", text_dim)
    list_type = getattr(datasets, "List", None) or datasets.Sequence
    return datasets.Features(
        {
            "video_id": datasets.Value("string"),
            "duration": datasets.Value("float64"),
            "fps": datasets.Value("float64"),
            "clip_size": datasets.Value("float64"),
            "clip_stride": datasets.Value("float64"),
            "downsample_rate": datasets.Value("int32"),
            "video_features": datasets.Array2D(shape=(None, video_dim), dtype="float32"),
            "queries": list_type(
                {
                    "query_id": datasets.Value("string"),
                    "sentence": datasets.Value("string"),
                    "text_features": datasets.Array2D(shape=(None, text_dim), dtype="float32"),
                    "start": datasets.Value("float64"),
                    "end": datasets.Value("float64"),
                }
            ),
        }
    )


def _check_dim(name: str, value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _storage_schema(video_dim: int, text_dim: int) -> pa.Schema:
    """Arrow schema of the parquet files: HF ``Array2D`` extension types plus the HF feature metadata.

    The extension types make ``datasets`` recognise the ``Array2D`` features when it reads the files
    back (it only trusts the metadata when the arrow field types match); plain ``pyarrow`` without
    ``datasets`` imported falls back to the storage type ``list<list<float>>``.
    """
    return grounding_features(video_dim, text_dim).arrow_schema


def _array2d_type(dim: int) -> pa.DataType:
    from datasets.features.features import Array2DExtensionType

    return Array2DExtensionType(shape=(None, dim), dtype="float32")


# ----------------------------------------------------------------------------------------------------
# Row helpers
# ----------------------------------------------------------------------------------------------------
def _to_numpy(x: Any) -> Optional[np.ndarray]:
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def num_features_after_subsampling(num_stored: int, downsample_rate: int) -> int:
    """``len(features[::downsample_rate])``."""
    return int(math.ceil(int(num_stored) / int(downsample_rate)))


def time_mapping_for_row(
    row: Mapping[str, Any],
    input_stride: int = 1,
    fixed_length: Optional[int] = None,
    num_features: Optional[int] = None,
) -> TimeMapping:
    """The :class:`TimeMapping` of one dataset row.

    Args:
        row: a row of the schema (or any mapping with ``fps``, ``clip_size``, ``clip_stride``,
            ``downsample_rate``, ``duration`` and, for ``fixed_length``, ``video_features``).
        input_stride: the model's ``video_input_stride``.
        fixed_length: when set (Charades / ANet: 256), the mapping after resampling the subsampled
            features to this many steps (SnAG's per-video stride).
        num_features: the number of *stored* feature vectors (before subsampling); only needed with
            ``fixed_length`` when the row was loaded without its ``video_features`` column.
    """
    downsample_rate = int(row.get("downsample_rate", 1) or 1)
    mapping = TimeMapping(
        fps=float(row["fps"]),
        clip_size=float(row["clip_size"]),
        clip_stride=float(row["clip_stride"]),
        downsample_rate=downsample_rate,
        input_stride=int(input_stride),
        duration=float(row["duration"]),
    )
    if fixed_length is None:
        return mapping
    if num_features is None:
        feats = row.get("video_features")
        if feats is None:
            raise ValueError(
                f"video {row.get('video_id')!r}: fixed_length mapping needs the feature count; "
                "pass num_features= when the row has no video_features"
            )
        num_features = len(feats)
    return mapping.with_fixed_length(num_features_after_subsampling(num_features, downsample_rate), int(fixed_length))


def validate_row(row: Mapping[str, Any], video_dim: Optional[int] = None, text_dim: Optional[int] = None) -> None:
    """Check one row against the schema; raise ``ValueError`` naming the video (and query) and the problem.

    Checks: required keys, positive ``duration``/``fps``/``clip_size``/``clip_stride``, integer
    ``downsample_rate >= 1``, non-empty 2-D finite video features of width ``video_dim``, at least one
    query, unique query ids, finite ``0 <= start < end <= duration``, text features 2-D, finite, of
    width ``text_dim``, and a non-empty sentence whenever there are no text features.
    """
    vid = row.get("video_id")
    if not isinstance(vid, str) or not vid:
        raise ValueError(f"row has no valid video_id (got {vid!r})")
    where = f"video {vid!r}"
    missing = [k for k in VIDEO_COLUMNS if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("duration", "fps", "clip_size", "clip_stride"):
        value = row[key]
        try:
            ok = value is not None and math.isfinite(float(value)) and float(value) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{where}: {key} must be a positive finite number, got {value!r}")
    rate = row["downsample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise ValueError(f"{where}: downsample_rate must be an integer >= 1, got {rate!r}")
    duration = float(row["duration"])

    feats = _to_numpy(row["video_features"])
    if feats is None or feats.ndim != 2:
        raise ValueError(f"{where}: video_features must be a 2-D (T, D) array, got shape {None if feats is None else feats.shape}")
    if feats.shape[0] == 0:
        raise ValueError(f"{where}: video_features is empty (0 time steps)")
    if video_dim is not None and feats.shape[1] != video_dim:
        raise ValueError(f"{where}: video feature dim is {feats.shape[1]}, expected {video_dim}")
    if not np.issubdtype(feats.dtype, np.number) or np.issubdtype(feats.dtype, np.complexfloating):
        raise ValueError(f"{where}: video_features has non-real dtype {feats.dtype}")
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        raise ValueError(f"{where}: video_features contain NaN/inf values ({bad} of {feats.shape[0]} time steps)")

    queries = row["queries"]
    if queries is None or len(queries) == 0:
        raise ValueError(f"{where}: no queries (videos without annotations are not stored)")
    seen = set()
    for k, q in enumerate(queries):
        qid = q.get("query_id")
        qwhere = f"{where}, query {qid!r} (#{k})"
        if not isinstance(qid, str) or not qid:
            raise ValueError(f"{qwhere}: query_id must be a non-empty string")
        if qid in seen:
            raise ValueError(f"{qwhere}: duplicate query_id within the video")
        seen.add(qid)
        sentence = q.get("sentence")
        if sentence is not None and not isinstance(sentence, str):
            raise ValueError(f"{qwhere}: sentence must be a string, got {type(sentence).__name__}")
        tf = _to_numpy(q.get("text_features"))
        has_text = tf is not None and tf.size > 0
        if tf is not None and tf.size > 0:
            if tf.ndim != 2:
                raise ValueError(f"{qwhere}: text_features must be a 2-D (L, D) array, got shape {tf.shape}")
            if text_dim is not None and tf.shape[1] != text_dim:
                raise ValueError(f"{qwhere}: text feature dim is {tf.shape[1]}, expected {text_dim}")
            if not np.isfinite(tf).all():
                raise ValueError(f"{qwhere}: text_features contain NaN/inf values")
        if not has_text and not (sentence or "").strip():
            raise ValueError(f"{qwhere}: empty sentence and no text features")
        try:
            start, end = float(q["start"]), float(q["end"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{qwhere}: start/end must be numbers, got {q.get('start')!r}, {q.get('end')!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{qwhere}: start/end must be finite, got ({start}, {end})")
        if start >= end:
            raise ValueError(f"{qwhere}: start {start} >= end {end}")
        if start < -_BOUNDS_TOLERANCE or end > duration + _BOUNDS_TOLERANCE:
            raise ValueError(f"{qwhere}: segment ({start}, {end}) lies outside the video [0, {duration}]")


def _matrix_array(mats: Sequence[np.ndarray], dim: int) -> pa.Array:
    """``list<list<float32>>`` from a list of ``(T_i, dim)`` arrays without per-element Python work."""
    lengths = np.fromiter((m.shape[0] for m in mats), dtype=np.int64, count=len(mats))
    total = int(lengths.sum())
    if total:
        values = np.concatenate([np.ascontiguousarray(m, dtype=np.float32).reshape(-1) for m in mats])
    else:
        values = np.zeros(0, dtype=np.float32)
    inner_offsets = np.arange(0, total * dim + 1, dim, dtype=np.int32 if total * dim < 2**31 else np.int64)
    outer_offsets = np.zeros(len(mats) + 1, dtype=np.int32)
    np.cumsum(lengths, out=outer_offsets[1:])
    values_arr = pa.array(values, type=pa.float32())
    if inner_offsets.dtype == np.int64:
        # More than 2^31 floats in one batch: large offsets are not part of the HF storage type,
        # so the writer keeps batches well below this (row groups are byte-bounded).
        raise ValueError("a row group holds more than 2^31 feature values; lower row_group_bytes")
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets), values_arr)
    storage = pa.ListArray.from_arrays(pa.array(outer_offsets), inner)
    return pa.ExtensionArray.from_storage(_array2d_type(dim), storage)


def _normalise_row(row: Mapping[str, Any], video_dim: int, text_dim: int) -> Dict[str, Any]:
    feats = np.ascontiguousarray(_to_numpy(row["video_features"]), dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != video_dim:
        raise ValueError(f"video {row.get('video_id')!r}: video features of shape {feats.shape}, expected (T, {video_dim})")
    queries = []
    for q in row["queries"]:
        tf = _to_numpy(q.get("text_features"))
        if tf is None or tf.size == 0:
            tf = np.zeros((0, text_dim), dtype=np.float32)
        elif tf.ndim != 2 or tf.shape[1] != text_dim:
            # Checked even with validate=False: a wrong width would silently corrupt the flat buffer.
            raise ValueError(f"video {row.get('video_id')!r}, query {q.get('query_id')!r}: text features of shape {tf.shape}, "
                             f"expected (L, {text_dim})")
        queries.append(
            {
                "query_id": str(q["query_id"]),
                "sentence": "" if q.get("sentence") is None else str(q["sentence"]),
                "text_features": np.ascontiguousarray(tf, dtype=np.float32),
                "start": float(q["start"]),
                "end": float(q["end"]),
            }
        )
    return {
        "video_id": str(row["video_id"]),
        "duration": float(row["duration"]),
        "fps": float(row["fps"]),
        "clip_size": float(row["clip_size"]),
        "clip_stride": float(row["clip_stride"]),
        "downsample_rate": int(row["downsample_rate"]),
        "video_features": feats,
        "queries": queries,
    }


def rows_to_table(rows: Sequence[Mapping[str, Any]], video_dim: int, text_dim: int, normalised: bool = False) -> pa.Table:
    """Build the arrow table of ``rows`` (dicts of the schema) with the HF feature metadata."""
    schema = _storage_schema(video_dim, text_dim)
    if not normalised:
        rows = [_normalise_row(r, video_dim, text_dim) for r in rows]
    all_queries = [q for r in rows for q in r["queries"]]
    q_offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r["queries"]) for r in rows], out=q_offsets[1:])
    query_struct = pa.StructArray.from_arrays(
        [
            pa.array([q["query_id"] for q in all_queries], type=pa.string()),
            pa.array([q["sentence"] for q in all_queries], type=pa.string()),
            _matrix_array([q["text_features"] for q in all_queries], text_dim),
            pa.array([q["start"] for q in all_queries], type=pa.float64()),
            pa.array([q["end"] for q in all_queries], type=pa.float64()),
        ],
        fields=list(schema.field("queries").type.value_type),
    )
    columns = [
        pa.array([r["video_id"] for r in rows], type=pa.string()),
        pa.array([r["duration"] for r in rows], type=pa.float64()),
        pa.array([r["fps"] for r in rows], type=pa.float64()),
        pa.array([r["clip_size"] for r in rows], type=pa.float64()),
        pa.array([r["clip_stride"] for r in rows], type=pa.float64()),
        pa.array([r["downsample_rate"] for r in rows], type=pa.int32()),
        _matrix_array([r["video_features"] for r in rows], video_dim),
        pa.ListArray.from_arrays(pa.array(q_offsets), query_struct),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


# ----------------------------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------------------------
class _Shard:
    """One parquet file being written; rows are buffered up to a row group, never a whole shard."""

    def __init__(self, path: str, schema: pa.Schema, compression: Optional[str]):
        self.path = path
        self.schema = schema
        self.compression = compression
        self.writer: Optional[pq.ParquetWriter] = None
        self.buffer: List[Dict[str, Any]] = []
        self.buffer_bytes = 0
        self.num_rows = 0
        self.num_queries = 0
        self.num_bytes = 0  # uncompressed feature + text payload estimate

    def _open(self) -> pq.ParquetWriter:
        # Dictionary encoding never pays off for float features (and ids are unique) but slows both
        # writing and decoding; min/max statistics of nested float columns are useless too.
        return pq.ParquetWriter(
            self.path, self.schema, compression=self.compression or "NONE", use_dictionary=False, write_statistics=False
        )

    def add(self, row: Dict[str, Any], nbytes: int) -> None:
        self.buffer.append(row)
        self.buffer_bytes += nbytes
        self.num_rows += 1
        self.num_queries += len(row["queries"])
        self.num_bytes += nbytes

    def flush(self, video_dim: int, text_dim: int) -> None:
        if not self.buffer:
            return
        table = rows_to_table(self.buffer, video_dim, text_dim, normalised=True)
        if self.writer is None:
            self.writer = self._open()
        self.writer.write_table(table, row_group_size=len(self.buffer))
        self.buffer, self.buffer_bytes = [], 0

    def close(self, video_dim: int, text_dim: int) -> None:
        self.flush(video_dim, text_dim)
        if self.writer is None:  # a shard that received no rows is still a valid (empty) parquet file
            self.writer = self._open()
        self.writer.close()
        self.writer = None

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
        self.writer = None
        self.buffer = []


def _row_nbytes(row: Dict[str, Any]) -> int:
    n = row["video_features"].nbytes + len(row["video_id"]) + 48
    for q in row["queries"]:
        n += q["text_features"].nbytes + len(q["sentence"].encode("utf-8")) + len(q["query_id"]) + 16
    return n


def plan_num_shards(total_bytes: int, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, min_shards: int = 1) -> int:
    """Shards needed for ``total_bytes`` of rows: ``ceil(total / max_shard_bytes)`` rounded up to a multiple of ``min_shards``."""
    n = max(1, int(math.ceil(int(total_bytes) / int(max_shard_bytes))))
    return int(math.ceil(n / min_shards) * min_shards)


def shard_filename(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def _check_split_name(split: str) -> str:
    import re

    if not isinstance(split, str) or not re.fullmatch(r"\w+(\.\w+)*", split):
        raise ValueError(f"split name must match [A-Za-z0-9_.]+ (as datasets requires), got {split!r}")
    return split


class GroundingDatasetWriter:
    """Stream video rows into parquet shards of one split; the dataset appears only on success.

    Sharding, two modes:

    * ``num_shards`` given (best; the converters compute it from the feature sizes with
      :func:`plan_num_shards`): rows go round-robin over exactly that many shards (rounded up to a
      multiple of ``min_shards``), so all shards hold the same number of rows to within one.
    * otherwise rows go round-robin into groups of ``min_shards`` open shards; a group is closed when
      it holds about ``min_shards * max_shard_bytes`` bytes and the next group starts. The shards of a
      group differ by at most one row; the last group may be smaller.

    Either way the shard count is a multiple of ``min_shards``, so with ``min_shards`` a multiple of the
    world size ``split_dataset_by_node`` gives each rank whole shards. Memory stays bounded by one row
    group per open shard (``row_group_bytes`` / ``row_group_rows``) and ``4 * row_group_bytes`` over
    all open shards, never a whole shard.

    Files are written to a temporary folder next to ``out_dir`` (or inside it when other splits are
    already there) and moved into place by :meth:`close`; leaving the ``with`` block by an exception
    deletes the temporary folder, so a crash never leaves a partial split that looks complete.

    Args:
        out_dir: dataset folder (created if missing; other splits already in it are kept).
        split: split name (``train``, ``test``, ``val_1``...).
        video_dim / text_dim: feature widths ``Dv`` / ``Dt``.
        max_shard_bytes: target uncompressed shard size (default 256 MiB).
        min_shards: the shard count is a positive multiple of this (use a multiple of the number of
            training processes).
        num_shards: exact shard count (rounded up to a multiple of ``min_shards``); overrides the
            size-based grouping.
        row_group_bytes / row_group_rows: flush a row group when either is reached.
        compression: parquet codec (``None`` = uncompressed, fastest to decode; ``"zstd"`` for upload).
        validate: run :func:`validate_row` on every added row.
        overwrite: replace an existing split of the same name (otherwise an error).
        summary: conversion summary stored in ``mscl_dataset.json`` (can also be set via
            :attr:`summary` before closing).
    """

    def __init__(
        self,
        out_dir: str,
        split: str,
        video_dim: int,
        text_dim: int,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        min_shards: int = 1,
        num_shards: Optional[int] = None,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        compression: Optional[str] = None,
        validate: bool = True,
        overwrite: bool = False,
        summary: Optional[Dict[str, Any]] = None,
    ):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        self.split = _check_split_name(split)
        self.video_dim = _check_dim("video_dim", video_dim)
        self.text_dim = _check_dim("text_dim", text_dim)
        if int(max_shard_bytes) < 1:
            raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
        self.max_shard_bytes = int(max_shard_bytes)
        self.min_shards = _check_dim("min_shards", min_shards)
        if num_shards is not None:
            num_shards = _check_dim("num_shards", num_shards)
            # Keep the count a multiple of min_shards so whole shards split evenly over ranks.
            num_shards = int(math.ceil(num_shards / self.min_shards) * self.min_shards)
        self.num_shards = num_shards
        self.max_buffer_bytes = 4 * max(1, int(row_group_bytes))
        self.row_group_bytes = int(row_group_bytes)
        self.row_group_rows = max(1, int(row_group_rows))
        self.compression = compression
        self.validate = validate
        self.overwrite = overwrite
        self.summary: Dict[str, Any] = dict(summary or {})
        self._schema = _storage_schema(self.video_dim, self.text_dim)
        self._shards: List[_Shard] = []  # all shards, closed and open
        self._group: List[_Shard] = []  # the open group
        self._group_bytes = 0
        self._next = 0  # round-robin pointer within the group
        self._ids: set = set()
        self._query_ids: set = set()
        self._staging: Optional[str] = None
        self._closed = False
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise ValueError(f"output path {self.out_dir} exists and is not a folder")
        if not overwrite and self.split in _existing_splits(self.out_dir):
            raise ValueError(f"split {self.split!r} already exists in {self.out_dir}; pass overwrite=True to replace it")
        parent = os.path.dirname(self.out_dir)
        os.makedirs(parent, exist_ok=True)
        self._staging = os.path.join(parent, f".{os.path.basename(self.out_dir)}.{self.split}.tmp-{uuid.uuid4().hex[:12]}")
        os.makedirs(os.path.join(self._staging, DATA_SUBDIR))

    # context manager ------------------------------------------------------------------------------
    def __enter__(self) -> "GroundingDatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        # A writer dropped without close() never published anything: remove its staging folder.
        try:
            if not self._closed:
                self.abort()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self._shards)

    @property
    def num_queries(self) -> int:
        return sum(s.num_queries for s in self._shards)

    def _open_group(self) -> None:
        self._group = []
        for _ in range(self.num_shards or self.min_shards):
            index = len(self._shards)
            shard = _Shard(os.path.join(self._staging, DATA_SUBDIR, f"{self.split}-{index:05d}.partial"), self._schema, self.compression)
            self._shards.append(shard)
            self._group.append(shard)
        self._group_bytes = 0
        self._next = 0

    def _close_group(self) -> None:
        for shard in self._group:
            shard.close(self.video_dim, self.text_dim)
        self._group = []

    def add(self, row: Mapping[str, Any]) -> None:
        """Append one video row (a dict of the schema; arrays may be numpy or torch)."""
        if self._closed:
            raise ValueError("GroundingDatasetWriter is closed")
        if self.validate:
            validate_row(row, self.video_dim, self.text_dim)
        row = _normalise_row(row, self.video_dim, self.text_dim)
        if row["video_id"] in self._ids:
            raise ValueError(f"video {row['video_id']!r}: duplicate video_id in split {self.split!r}")
        for q in row["queries"]:
            if q["query_id"] in self._query_ids:
                raise ValueError(f"video {row['video_id']!r}, query {q['query_id']!r}: duplicate query_id in split {self.split!r}")
        self._ids.add(row["video_id"])
        self._query_ids.update(q["query_id"] for q in row["queries"])
        if not self._group:
            self._open_group()
        nbytes = _row_nbytes(row)
        shard = self._group[self._next]
        shard.add(row, nbytes)
        self._next = (self._next + 1) % len(self._group)
        self._group_bytes += nbytes
        if shard.buffer_bytes >= self.row_group_bytes or len(shard.buffer) >= self.row_group_rows:
            shard.flush(self.video_dim, self.text_dim)
        # Many open shards: bound the rows buffered over all of them, not just per shard.
        while sum(s.buffer_bytes for s in self._group) > self.max_buffer_bytes:
            max(self._group, key=lambda s: s.buffer_bytes).flush(self.video_dim, self.text_dim)
        # Close the group only after a full round so its shards stay balanced to within one row.
        if self.num_shards is None and self._next == 0 and self._group_bytes >= self.max_shard_bytes * len(self._group):
            self._close_group()

    def add_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def abort(self) -> None:
        """Drop everything written so far (the output folder is left untouched)."""
        for shard in self._shards:
            shard.abort()
        self._closed = True
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def close(self) -> Dict[str, Any]:
        """Finish the shards, move them into ``out_dir`` and update ``mscl_dataset.json``; returns the split's metadata."""
        if self._closed:
            raise ValueError("GroundingDatasetWriter is already closed")
        try:
            if self.num_rows == 0:
                raise ValueError(f"split {self.split!r}: no rows were written; refusing to create an empty split")
            self._close_group()
            total = len(self._shards)
            shard_meta = []
            data_dir = os.path.join(self._staging, DATA_SUBDIR)
            for i, shard in enumerate(self._shards):
                name = shard_filename(self.split, i, total)
                os.replace(shard.path, os.path.join(data_dir, name))
                shard_meta.append(
                    {"file": f"{DATA_SUBDIR}/{name}", "num_rows": shard.num_rows, "num_queries": shard.num_queries,
                     "num_bytes": shard.num_bytes}
                )
            split_meta = {
                "num_videos": self.num_rows,
                "num_queries": self.num_queries,
                "num_shards": total,
                "num_bytes": sum(s["num_bytes"] for s in shard_meta),
                "shards": shard_meta,
                "conversion": self.summary,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            _finalise(self._staging, self.out_dir, self.split, split_meta, self.video_dim, self.text_dim)
            self._staging = None
            self._closed = True
            return split_meta
        except BaseException:
            self.abort()
            raise


# ----------------------------------------------------------------------------------------------------
# Metadata and the atomic move
# ----------------------------------------------------------------------------------------------------
def read_metadata(path: str) -> Optional[Dict[str, Any]]:
    """``mscl_dataset.json`` of a dataset folder, or ``None`` if absent."""
    file = os.path.join(path, METADATA_FILENAME)
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def _existing_splits(out_dir: str) -> List[str]:
    meta = read_metadata(out_dir) if os.path.isdir(out_dir) else None
    return sorted((meta or {}).get("splits", {}))


def _write_json_atomic(path: str, data: Dict[str, Any]) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _new_metadata(video_dim: int, text_dim: int) -> Dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "video_dim": video_dim,
        "text_dim": text_dim,
        "features": grounding_features(video_dim, text_dim).to_dict(),
        "splits": {},
    }


def _dataset_card(meta: Dict[str, Any]) -> str:
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in sorted(meta["splits"]):
        lines += [f"  - split: {split}", f"    path: {DATA_SUBDIR}/{split}-*.parquet"]
    lines += ["---", "", "# Video temporal grounding dataset (mscl format)", ""]
    lines.append(
        "One row per video: `video_id`, `duration` (s), `fps`, `clip_size`/`clip_stride` (frames), "
        "`downsample_rate`, raw `video_features` (T, %d) float32 (before subsampling/resampling) and "
        "`queries` (query_id, sentence, text_features (L, %d) float32 or empty, start/end in seconds)."
        % (meta["video_dim"], meta["text_dim"])
    )
    lines += ["", "| split | videos | queries | shards |", "|---|---|---|---|"]
    for split in sorted(meta["splits"]):
        s = meta["splits"][split]
        lines.append(f"| {split} | {s['num_videos']} | {s['num_queries']} | {s['num_shards']} |")
    lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def _folder_lock(folder: str):
    """Serialise concurrent writers finishing different splits of one folder (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(os.path.join(folder, ".mscl_dataset.lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _finalise(staging: str, out_dir: str, split: str, split_meta: Dict[str, Any], video_dim: int, text_dim: int) -> None:
    # Case 1: a new dataset folder — write everything in the staging folder, then one atomic rename.
    if not os.path.exists(out_dir):
        meta = _new_metadata(video_dim, text_dim)
        meta["splits"][split] = split_meta
        _write_json_atomic(os.path.join(staging, METADATA_FILENAME), meta)
        with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as f:
            f.write(_dataset_card(meta))
        try:
            os.rename(staging, out_dir)
            return
        except OSError:
            if not os.path.isdir(out_dir):
                raise
            # Another writer created the folder meanwhile: merge like case 2.
            for name in (METADATA_FILENAME, "README.md"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(staging, name))
    # Case 2: the folder exists (other splits) — move the shards in, then publish the metadata last.
    with _folder_lock(out_dir):
        meta = read_metadata(out_dir)
        if meta is None:
            if os.path.isdir(os.path.join(out_dir, DATA_SUBDIR)) and os.listdir(os.path.join(out_dir, DATA_SUBDIR)):
                raise ValueError(f"{out_dir} holds data files but no {METADATA_FILENAME}; refusing to mix datasets")
            meta = _new_metadata(video_dim, text_dim)
        if (meta.get("video_dim"), meta.get("text_dim")) != (video_dim, text_dim):
            raise ValueError(
                f"{out_dir}: existing splits have video_dim={meta.get('video_dim')}, text_dim={meta.get('text_dim')}; "
                f"split {split!r} has video_dim={video_dim}, text_dim={text_dim}"
            )
        data_dir = os.path.join(out_dir, DATA_SUBDIR)
        os.makedirs(data_dir, exist_ok=True)
        old = [os.path.join(out_dir, s["file"]) for s in meta["splits"].get(split, {}).get("shards", [])]
        # Remove the replaced split's files first so the folder never shows two shard sets of one split.
        for path in old:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        for s in split_meta["shards"]:
            os.replace(os.path.join(staging, s["file"]), os.path.join(out_dir, s["file"]))
        meta["splits"][split] = split_meta
        _write_json_atomic(os.path.join(out_dir, METADATA_FILENAME), meta)
        with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
            f.write(_dataset_card(meta))
    shutil.rmtree(staging, ignore_errors=True)


def write_grounding_dataset(
    rows: Iterable[Mapping[str, Any]], out_dir: str, split: str, video_dim: int, text_dim: int, **kwargs
) -> Dict[str, Any]:
    """Write ``rows`` (an iterable of schema dicts) as split ``split`` of ``out_dir``; returns the split metadata.

    Keyword arguments go to :class:`GroundingDatasetWriter`.
    """
    with GroundingDatasetWriter(out_dir, split, video_dim, text_dim, **kwargs) as writer:
        writer.add_many(rows)
        return writer.close()


__all__ = [
    "DATA_SUBDIR",
    "GroundingDatasetWriter",
    "METADATA_FILENAME",
    "QUERY_FIELDS",
    "VIDEO_COLUMNS",
    "grounding_features",
    "num_features_after_subsampling",
    "plan_num_shards",
    "read_metadata",
    "rows_to_table",
    "shard_filename",
    "time_mapping_for_row",
    "validate_row",
    "write_grounding_dataset",
]
