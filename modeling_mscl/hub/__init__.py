# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Publishing to the Hugging Face Hub: model cards (:mod:`.cards`) and export / push (:mod:`.publish`)."""

from .cards import available_card_presets, read_metrics, render_model_card

__all__ = ["available_card_presets", "read_metrics", "render_model_card"]
