# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``python -m modeling_mscl.demo --model PATH_OR_REPO``: serve the web demo (see :mod:`.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
