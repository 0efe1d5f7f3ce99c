# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Grounding datasets: the parquet schema and writer, loaders, and converters from public formats.

* :mod:`.schema` — one row per video (``grounding_features``, ``GroundingDatasetWriter``,
  ``write_grounding_dataset``, ``validate_row``, ``time_mapping_for_row``).
* :mod:`.loading` — ``load_grounding_dataset`` (streaming or map-style, local folder or Hub repo),
  and ``iter_epoch``.
* :mod:`.convert` — converters from SnAG JSON, Charades-STA, TACoS, ActivityNet Captions, QVHighlights,
  MAD and Ego4D-NLQ (``python -m modeling_mscl.data.convert --help``; not imported here so that
  ``python -m`` runs it cleanly).
* :mod:`.sampling` / :mod:`.synthetic` — video-centric query grouping and collation; a synthetic benchmark.
"""

from .loading import (
    GroundingDataset,
    GroundingStream,
    iter_epoch,
    load_grounding_dataset,
)
from .schema import (
    GroundingDatasetWriter,
    grounding_features,
    plan_num_shards,
    read_metadata,
    time_mapping_for_row,
    validate_row,
    write_grounding_dataset,
)

__all__ = [
    "GroundingDataset",
    "GroundingDatasetWriter",
    "GroundingStream",
    "grounding_features",
    "iter_epoch",
    "load_grounding_dataset",
    "plan_num_shards",
    "read_metadata",
    "time_mapping_for_row",
    "validate_row",
    "write_grounding_dataset",
]
