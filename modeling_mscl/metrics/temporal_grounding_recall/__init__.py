# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
# Marks this folder as a package so that installs ship temporal_grounding_recall.py; the module itself
# is meant to be loaded with `evaluate.load(<this folder>)` (see modeling_mscl.metrics.load_metric).
