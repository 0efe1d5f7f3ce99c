# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Shared helpers of the benchmark scripts: timing, peak memory, machine info and result writers.

Plain Python on purpose (no pytest-benchmark, no asv): every script is runnable as
``python benchmarks/<script>.py`` and writes ``benchmarks/results/<name>.json`` and ``<name>.md``.

Peak memory is the peak resident set size of a *fresh* worker process that runs one measurement and
nothing else, so numbers do not leak from one configuration into the next. The worker reports its own
peak (:func:`peak_rss_mb`: ``VmHWM`` on Linux) next to the RSS it had right after importing torch and
building the model, so "peak" and "peak above the start" can both be read off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, REPO)

# a load average above this (on the machine's core count) means the numbers were taken on a shared CPU
BUSY_LOAD_PER_CORE = 0.75


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments shared by every script: ``--device``, ``--quick``, ``--repeats``, ``--threads``, ``--out``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run the model")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds); numbers are meaningless")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    parser.add_argument("--out", default=RESULTS_DIR, help="folder for <name>.json and <name>.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    return parser


def resolve_device(device: str) -> str:
    """Return the device, or print a skip message and exit 0 when CUDA is asked for but absent."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        print("SKIP: --device cuda was requested but no CUDA GPU is available (torch.cuda.is_available() is False).")
        sys.exit(0)
    return device


def setup_torch(threads: Optional[int], seed: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# timing and memory
# ----------------------------------------------------------------------------------------------
class Stopwatch:
    """Accumulates wall time per named phase (``with sw("fusion"): ...``)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.totals: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0


#: the building blocks ``ground`` calls, as :func:`scope_ground_parts` names them
GROUND_PARTS = ("video encoding", "text encoding", "fusion + heads", "decode")


def scope_ground_parts(model, scope: Callable[[str], Any], labels: Dict[str, str], extra=()) -> Callable[[], None]:
    """Run every building block ``ground`` calls inside ``scope(label)`` (a context manager: a
    :class:`Stopwatch`, ``torch.profiler.record_function``): the model's ``encode_video``, ``encode_text`` and
    ``fuse_and_predict`` (wrapped on the instance), the eval-mode fast path (``_EvalFusion.__init__`` and
    ``__call__``, on the class), the decoder (in the modeling module, through which ``ground`` calls it), and
    ``extra`` ``(owner, attribute, label)`` patches. ``labels`` maps each of :data:`GROUND_PARTS` to its label.
    Returns a function that undoes every patch (the smoke tests run the scripts in one process)."""
    import modeling_mscl.modeling_mscl as M

    def scoped(fn, label):
        def wrapped(*a, **k):
            with scope(label):
                return fn(*a, **k)

        return wrapped

    methods = {"encode_video": "video encoding", "encode_text": "text encoding", "fuse_and_predict": "fusion + heads"}
    for name, part in methods.items():
        setattr(model, name, scoped(getattr(model, name), labels[part]))
    patches = [(M._EvalFusion, "__init__", labels["fusion + heads"]), (M._EvalFusion, "__call__", labels["fusion + heads"]),
               (M, "post_process_grounding", labels["decode"]), *extra]
    saved = []
    for owner, name, label in patches:  # one attribute may be wrapped twice: undone in reverse order
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, scoped(getattr(owner, name), label))

    def undo():
        for name in methods:
            delattr(model, name)
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)

    return undo


def time_repeats(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> Dict[str, Any]:
    """Run ``fn`` ``warmup`` + ``repeats`` times; return the median, min, max and all timed runs (s)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return summarize(times)


def summarize(times: Sequence[float]) -> Dict[str, Any]:
    times = [float(t) for t in times]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs_s": times}


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own address space.
    Not ``ru_maxrss``: across fork + exec Linux carries the parent's peak into the child's ``ru_maxrss``
    (and so into the parent's ``RUSAGE_CHILDREN``), so a small worker started by a large parent would
    report the parent's size. Elsewhere ``ru_maxrss`` (KiB; bytes on macOS), which has no such carry-over
    on macOS / BSD.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / 1024.0 if sys.platform == "darwin" else peak / 1024.0


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux
        return float("nan")


def cuda_peak_mb() -> Optional[float]:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 1e6
    return None


def run_worker(script: str, args: Sequence[str], in_process: Optional[Callable] = None,
               timeout: Optional[float] = None, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run one measurement: ``python <script> --worker <args>`` in a fresh process.

    The worker prints one JSON line last (see :func:`finish_worker`), which carries its own peak RSS.
    With ``in_process`` (the script's ``main``), the worker runs inside this process instead: fast
    (one torch import), used by the smoke tests; its peak RSS is then this process's and is flagged.
    ``env`` adds environment variables for the fresh process (ignored in-process).
    """
    if in_process is not None:
        result = in_process(["--worker", *args])
        result["in_process"] = True
        return result
    cmd = [sys.executable, script, "--worker", *args]
    env = {**os.environ, **(env or {})}
    env.setdefault("PYTHONHASHSEED", "0")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker printed no JSON: {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result["in_process"] = False
    return result


def finish_worker(result: Dict[str, Any], start_rss_mb: Optional[float] = None) -> Dict[str, Any]:
    """Add the worker's peak RSS (and CUDA peak) to its result, print it as the last JSON line, return it.

    ``start_rss_mb`` is the RSS after imports and model construction, so the peak can be read as
    "model + interpreter" plus "activations". Peaks already in ``result`` (read by a worker before work
    that must not count, such as a FLOP-counting pass) are kept.
    """
    result = dict(result)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    if start_rss_mb is not None:
        result["start_rss_mb"] = start_rss_mb
    peak_gpu = cuda_peak_mb()
    if peak_gpu is not None:
        result.setdefault("peak_cuda_mb", peak_gpu)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


# ----------------------------------------------------------------------------------------------
# machine info
# ----------------------------------------------------------------------------------------------
def _cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_fingerprint() -> str:
    """Hash of the model's code — the flat files of ``modeling_mscl/`` and the presets: results cached
    by a long benchmark are reused only by the same model code."""
    import glob
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    package = os.path.join(REPO, "modeling_mscl")
    files = sorted(glob.glob(os.path.join(package, "*.py")) + glob.glob(os.path.join(package, "presets", "*.json")))
    for path in files:
        h.update(os.path.relpath(path, REPO).encode())
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


# (wall time, busy CPU seconds of the whole machine, CPU seconds of this process and its waited-for children)
_CPU_SNAPSHOTS: List[tuple] = []


def _cpu_snapshot() -> Optional[tuple]:
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)) / hz  # all but idle and iowait
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return time.time(), busy, own


def load_average() -> Optional[List[float]]:
    """The 1/5/15-minute load averages; also records a CPU-time snapshot for :func:`load_note`."""
    snap = _cpu_snapshot()
    if snap is not None:
        _CPU_SNAPSHOTS.append(snap)
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def other_cpu_load() -> Optional[float]:
    """Cores kept busy by *other* processes between the first and the last :func:`load_average` call
    (machine busy time minus this process's and its finished workers' CPU time, per wall second)."""
    if len(_CPU_SNAPSHOTS) < 2:
        return None
    (t0, busy0, own0), (t1, busy1, own1) = _CPU_SNAPSHOTS[0], _CPU_SNAPSHOTS[-1]
    if t1 - t0 < 1.0:
        return None
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


def flop_counter():
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts the GEMMs it misses: the in-place
    ``addmm_`` (the fast path's k=3 convs accumulate into one output with it) and oneDNN's fused linear
    (``mkldnn::_linear_pointwise``, the bf16 FFNs on CPUs), each 2·M·K·N."""
    import math

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_inplace(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs):
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]

    def fused_linear(x_shape, w_shape, *args, out_shape=None, **kwargs):
        # the packed weight's logical shape is (N, K); the output is (..., N)
        return 2 * math.prod(x_shape) * out_shape[-1]

    mapping = {torch.ops.aten.addmm_: addmm_inplace}
    linear_pointwise = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if linear_pointwise is not None:
        mapping[linear_pointwise] = fused_linear
    return FlopCounterMode(display=False, custom_mapping=mapping)


def gemm_gflops(rows: int = 4608, inner: int = 256, cols: int = 1024, repeats: int = 10) -> Dict[str, float]:
    """Sustained fp32 (and bf16) GEMM throughput of this machine at a fusion-FFN-like shape, GFLOP/s.

    A yardstick for the model timings: fusion + heads are GEMM-bound, so time × this rate ≈ FLOPs.
    """
    import torch
    import torch.nn.functional as F

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(rows, inner).to(dtype)
        w = torch.randn(cols, inner).to(dtype)
        for _ in range(3):
            F.linear(a, w)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            F.linear(a, w)
            times.append(time.perf_counter() - t0)
        out[f"gemm_gflops_{name}"] = round(2.0 * rows * inner * cols / statistics.median(times) / 1e9, 1)
    return out


def machine_info(device: str = "cpu", calibrate: bool = True) -> Dict[str, Any]:
    """CPU model, cores, hardware bf16 support, torch build, threads, the current load average and
    (``calibrate``) the sustained GEMM rate."""
    import torch

    flags = set(_cpu_flags())
    info: Dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "torch": torch.__version__,
        "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "torch_threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "python": platform.python_version(),
        "load_average_1_5_15": load_average(),
        "device": device,
    }
    try:
        info["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older/newer builds
        info["mkldnn_bf16_supported"] = None
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    elif calibrate:
        info.update(gemm_gflops())
    return info


def load_note(load_before: Optional[List[float]], load_after: Optional[List[float]], own_threads: Optional[int] = None) -> str:
    """"quiet" or "measured while the machine was shared" from the 1-minute load around the run.

    The load right after a run still holds the run's own threads (``own_threads``, default: torch's
    thread count), which are subtracted; the load before it is taken as is.
    """
    cores = os.cpu_count() or 1
    others = other_cpu_load()
    if others is not None:  # measured: better than load averages, which lag a previous run by minutes
        if others > 0.25:
            return f"measured while the machine was shared (other processes used {others:.2f} of {cores} cores on average)"
        return f"quiet machine (other processes used {others:.2f} of {cores} cores on average)"
    if own_threads is None:
        torch = sys.modules.get("torch")
        own_threads = torch.get_num_threads() if torch is not None else 0
    after = [max(0.0, load_after[0] - min(own_threads, cores))] if load_after else None
    worst = max((x[0] for x in (load_before, after) if x), default=0.0)
    if worst > BUSY_LOAD_PER_CORE * cores:
        return f"measured while the machine was shared (1-min load besides the run up to {worst:.2f} on {cores} cores)"
    return f"quiet machine (1-min load besides the run ≤ {worst:.2f} on {cores} cores)"


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------
def top1_agreement(a, b) -> Dict[str, float]:
    """How close two paths' top-1 moments are: ``a`` and ``b`` hold, per query, its ranked moments
    ``[start, end, score]``. Returns the mean tIoU of the two top-1 moments and the fraction with tIoU ≥ 0.9
    (a query with no moment in both paths counts as agreeing, in one only as tIoU 0)."""
    ious = []
    for x, y in zip(a, b):
        if not x or not y:
            ious.append(1.0 if not x and not y else 0.0)
            continue
        (s1, e1), (s2, e2) = x[0][:2], y[0][:2]
        inter = max(0.0, min(e1, e2) - max(s1, s2))
        union = (e1 - s1) + (e2 - s2) - inter
        ious.append(inter / union if union > 0 else 1.0)
    n = max(1, len(ious))
    return {"mean_tiou": sum(ious) / n, "tiou_ge_0.9": sum(i >= 0.9 for i in ious) / n}


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def fmt(x):
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    return " ".join(["python", script, *sys.argv[1:]])


def write_results(name: str, data: Dict[str, Any], markdown: str, out_dir: str = RESULTS_DIR, write: bool = True) -> None:
    """Print the markdown and write ``<out_dir>/<name>.json`` and ``<name>.md``."""
    header = f"## {name}\n\nCommand: `{command_line()}`\n\n"
    info = data.get("machine", {})
    header += (
        f"Machine: {info.get('cpu_model', '?')}, {info.get('logical_cpus', '?')} logical CPUs, torch {info.get('torch', '?')}, "
        f"{info.get('torch_threads', '?')} threads, AVX-512 BF16: {info.get('avx512_bf16', '?')}, AMX: {info.get('amx_bf16', '?')}, "
        f"sustained GEMM fp32/bf16: {info.get('gemm_gflops_fp32', '?')}/{info.get('gemm_gflops_bf16', '?')} GFLOP/s. "
        f"Load: {data.get('load_note', '?')}.\n\n"
    )
    text = header + markdown.rstrip() + "\n"
    print(text)
    if not write:
        return
    os.makedirs(out_dir, exist_ok=True)
    data = dict(data)
    data.setdefault("command", command_line())
    with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    with open(os.path.join(out_dir, f"{name}.md"), "w") as fh:
        fh.write(text)


# ----------------------------------------------------------------------------------------------
# the pre-fast-path inference, for same-run comparisons
# ----------------------------------------------------------------------------------------------
def legacy_ground(model, video, queries, chunk: Optional[int] = None):
    """``model.ground`` as it was before the eval-mode fast path (issue 14): the video encoded once, then
    per chunk of queries (memory-bounded: ~2**24 floats of FFN activations) the reference
    ``encode_text`` → ``fuse_and_predict`` → ``post_process_grounding``. Used for the "autocast" benchmark paths, which
    measure the old bf16 autocast inference next to the new bf16 path in one run."""
    import torch
    import torch.nn.functional as F

    # looked up on the modeling module at call time, so the benchmarks' timing wrappers see this call too
    import modeling_mscl.modeling_mscl as modeling

    cfg = model.config
    with torch.no_grad():
        video = video.float()
        t_valid = video.shape[0]
        unit = cfg.video_input_stride
        t_pad = max(unit, -(-t_valid // unit) * unit)
        padded = F.pad(video, (0, 0, 0, t_pad - t_valid))[None]
        vmask = (torch.arange(t_pad, device=video.device) < t_valid)[None]
        _, _, levels, level_masks = model.encode_video(padded, vmask)
        if chunk is None:
            by_memory = max(1, 2**24 // max(1, levels[0].shape[1] * cfg.hidden_size))
            chunk = max(1, min(cfg.inference_query_chunk_size, by_memory))
        results = []
        for start in range(0, len(queries), chunk):
            part = [q.float() for q in queries[start : start + chunk]]
            lmax = max(q.shape[0] for q in part)
            text = torch.stack([F.pad(q, (0, 0, 0, lmax - q.shape[0])) for q in part])
            tmask = torch.stack([torch.arange(lmax, device=text.device) < q.shape[0] for q in part])
            enc, enc_mask = model.encode_text(text, tmask)
            index = torch.zeros(len(part), dtype=torch.long, device=text.device)
            _, logits, offsets, masks = model.fuse_and_predict(levels, level_masks, enc, enc_mask, index)
            results.extend(modeling.post_process_grounding((logits, offsets, masks), cfg))
    return results
