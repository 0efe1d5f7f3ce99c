# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``python -m modeling_mscl.data`` is the converter CLI (same as ``python -m modeling_mscl.data.convert``)."""

import sys

from .convert import main

if __name__ == "__main__":
    sys.exit(main())
