# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Coming from SnAG (fmu2/snag_release): option and weight mappings used by ``python -m modeling_mscl.convert_snag``.

* :mod:`.options` — SnAG option dicts (``opts/*.yaml``) ↔ :class:`~modeling_mscl.MSCLConfig` +
  :class:`~modeling_mscl.training.TrainingRecipe` (strict: unsupported values and unknown keys raise).
* :mod:`.mapping` — SnAG ``state_dict`` keys and layouts → MSCL's modules.

Converter code only: nothing here travels with a saved checkpoint (the flat ``*_mscl.py`` files do).
"""

from .mapping import snag_to_mscl_state_dict
from .options import (
    SNAG_MAPPED_FIELDS,
    SNAG_MODEL_FIELDS,
    SNAG_RECIPE_FIELDS,
    config_from_snag_opt,
    config_kwargs_from_snag_opt,
    recipe_from_snag_opt,
    snag_opt_from_config,
    split_snag_kwargs,
)

__all__ = [
    "SNAG_MAPPED_FIELDS",
    "SNAG_MODEL_FIELDS",
    "SNAG_RECIPE_FIELDS",
    "config_from_snag_opt",
    "config_kwargs_from_snag_opt",
    "recipe_from_snag_opt",
    "snag_opt_from_config",
    "snag_to_mscl_state_dict",
    "split_snag_kwargs",
]
