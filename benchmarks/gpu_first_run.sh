#!/usr/bin/env bash
# The first run of this package on a CUDA GPU, prepared for a session that has one for a few minutes
# (docs/performance.md, "GPUs"): the GPU tests (tests/test_gpu.py), then the benchmarks with --device cuda at
# sizes meant to fit their steps' limits, 14 minutes in all. Every step has its own time limit and appends to
# <out>/log.txt, and each benchmark writes its JSON + markdown as it finishes, so one failing or slow step loses
# nothing else.
#
#   bash benchmarks/gpu_first_run.sh [out-folder]        # default: benchmarks/results/gpu
#
# Needs torch with CUDA and the package's dependencies importable (`pip install -e ".[test]"`, or the repository
# root on PYTHONPATH with the dependencies installed or carried as wheels).
set -u
out="${1:-benchmarks/results/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log="$out/log.txt"

step() {  # step <seconds> <command...>
    local limit=$1
    shift
    echo "== $* (limit ${limit} s, $(date -u +%H:%M:%S))" | tee -a "$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "   exit status $?" | tee -a "$log"
}

{ nvidia-smi; python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"; } \
    >"$out/machine.txt" 2>&1
step 240 python -m pytest -q -p no:cacheprovider tests/test_gpu.py
step 120 python benchmarks/bench_tile_policy.py --device cuda --out "$out"
step 240 python benchmarks/bench_tacos_test.py --device cuda --subset 5 --paths package,bf16,autocast --out "$out" --name tacos_test_subset
step 120 python benchmarks/bench_training_step.py --device cuda --out "$out"
step 120 python benchmarks/bench_scaling.py --device cuda --out "$out"
echo "done: $out" | tee -a "$log"
