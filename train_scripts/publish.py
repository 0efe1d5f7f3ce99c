#!/usr/bin/env python
# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Publish trained MSCL checkpoints (and converted datasets) to the Hugging Face Hub.

    python train_scripts/publish.py outputs/mscl-quickstart --repo-id ORG/mscl-quickstart             # EMA weights, one commit
    python train_scripts/publish.py runs/tacos runs/mad --org ORG --public                 # ORG/mscl-<preset> each
    python train_scripts/publish.py outputs/mscl-quickstart --repo-id ORG/mscl-quickstart --dry-run --export-dir hub/mscl-quickstart
    python train_scripts/publish.py --dataset data/tacos --repo-id ORG/tacos-c3d-features   # a converted dataset

``--weights ema|model``, ``--private`` (default) / ``--public``, ``--revision BRANCH`` (created if missing),
``--commit-message``, ``--no-verify``; see ``--help``. The work is done by ``modeling_mscl.hub.publish``.
"""

import os
import sys

try:  # the installed package; a source checkout works too
    import modeling_mscl  # noqa: F401
except ImportError:  # pragma: no cover - only without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from modeling_mscl.hub.publish import main as publish_main

    return publish_main(argv)


if __name__ == "__main__":
    sys.exit(main())
