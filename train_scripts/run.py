#!/usr/bin/env python
# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Train and evaluate MSCL.

    accelerate launch train_scripts/run.py                      # = --preset quickstart: tiny model, bundled benchmark
    accelerate launch train_scripts/run.py --preset tacos_c3d --dataset data/tacos --output-dir runs/tacos
    accelerate launch train_scripts/run.py ... --resume         # continue from the newest checkpoint
    accelerate launch train_scripts/run.py --eval-only --init-from runs/tacos

Everything (argument meanings, defaults) is documented by ``--help``; the work is done by
``modeling_mscl.training``.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("modeling_mscl") is None:  # a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from modeling_mscl.training.args import build_parser, options_from_args

    parser = build_parser(prog="run.py")
    args = parser.parse_args(argv)
    try:
        options, overrides = options_from_args(args)
        from modeling_mscl.training.experiment import run_training, shutdown_distributed

        run_training(options, overrides)
        shutdown_distributed()
    except ValueError as error:
        parser.exit(2, f"run.py: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
