#!/usr/bin/env python
# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Ablation of the contrastive terms: the same run with them off, on, within-only and cross-only.

    accelerate launch train_scripts/ablation.py                 # the Quickstart run, four times
    accelerate launch train_scripts/ablation.py --seeds 0 1 2   # ... for three seeds, with mean ± std
    accelerate launch train_scripts/ablation.py --preset tacos_c3d --dataset data/tacos --output-dir runs/ablation

Prints markdown tables (R1/R5 at every tIoU, and per moment-length bucket) and writes
``<output-dir>/ablation.json`` and ``ablation.md``; each variant's run lives in ``<output-dir>/<variant>``.
With ``--seeds`` every seed runs in ``<output-dir>/seed-<seed>/`` (its own tables and runs) and
``<output-dir>/ablation.json`` / ``ablation.md`` hold the per-seed values and the mean ± sample standard
deviation over the seeds.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("modeling_mscl") is None:  # a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from modeling_mscl.training.args import build_parser, options_from_args

    parser = build_parser(prog="ablation.py", ablation=True)
    args = parser.parse_args(argv)
    try:
        options, overrides = options_from_args(args)
        from modeling_mscl.training.experiment import run_ablation, shutdown_distributed

        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        run_ablation(options, overrides, variants=variants, seeds=args.seeds)
        shutdown_distributed()
    except ValueError as error:
        parser.exit(2, f"ablation.py: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
