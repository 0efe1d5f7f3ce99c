# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Streaming decode speed of grounding datasets, against the rows per second training consumes.

Writes a temporary dataset per size, then times full passes over it with:

* ``hf-numpy``: ``datasets.load_dataset(..., streaming=True).with_format("numpy")`` (the stock path);
* ``mscl-datasets``: :class:`GroundingStream` (``datasets`` streaming, Arrow rows decoded by mscl) — the
  training reader;
* ``mscl-map``: the map-style :class:`GroundingDataset` (``datasets`` Arrow cache; built once, untimed).

(``benchmarks/results/streaming.md`` also lists ``mscl-pyarrow``, a hand-written pyarrow reader measured
there and removed since: the ``datasets`` path already decodes far faster than training consumes.)

Rows/s and MB/s count the video-feature payload (float32). Each pass touches the last element of
every decoded array. Files are read from a warm page cache (just written), so this measures decoding,
not the disk. Sizes: TACoS-like ``T=1500, D=4096`` and MAD-like ``T=36000, D=512``.

    python benchmarks/bench_streaming.py            # ~300 MB of generated data
    python benchmarks/bench_streaming.py --quick    # seconds, meaningless numbers

Consumption. When ``benchmarks/results/training_step.json`` (TACoS step) and ``training_step_mad.json``
(MAD step) exist, the table compares each decode rate with the rows per second a training run on one
process needs: in the worst case every sample of a batch comes from a different row (``batch / step
time``); with SnAG's query grouping one TACoS row gives several samples per epoch (computed from the
real TACoS training annotations when present), so the real need is that much lower.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import _common  # noqa: E402  (adds the repo to sys.path)

SIZES = {
    # name: (T, D, rows, text tokens, queries per video)
    "tacos-like": (1500, 4096, 6, 12, 8),
    "mad-like": (36000, 512, 2, 20, 16),
}
QUICK_SIZES = {"tacos-like": (150, 512, 4, 12, 4), "mad-like": (3600, 64, 2, 20, 4)}


def make_rows(T: int, D: int, n: int, tokens: int, n_queries: int, text_dim: int, seed: int) -> Iterable[Dict[str, Any]]:
    rng = np.random.default_rng(seed)
    for i in range(n):
        duration = float(T)  # fps 1, clip 1, stride 1
        yield {
            "video_id": f"v{i:04d}", "duration": duration, "fps": 1.0, "clip_size": 1.0, "clip_stride": 1.0, "downsample_rate": 1,
            "video_features": rng.standard_normal((T, D), dtype=np.float32),
            "queries": [
                {"query_id": f"v{i:04d}_{k}", "sentence": "a person opens the door",
                 "text_features": rng.standard_normal((tokens, text_dim), dtype=np.float32),
                 "start": duration * k / (n_queries + 1), "end": duration * (k + 1) / (n_queries + 1)}
                for k in range(n_queries)
            ],
        }


def touch_mscl(row: Dict[str, Any]) -> float:
    v = row["video_features"]
    return float(v[-1, -1]) + sum(float(q["text_features"][-1, -1]) for q in row["queries"])


def touch_hf(row: Dict[str, Any]) -> float:
    v = row["video_features"]
    return float(v[-1][-1]) + sum(float(q["text_features"][-1][-1]) for q in row["queries"])


def tacos_samples_per_row(config_name: str = "tacos_c3d") -> Any:
    """Mean training samples (query groups) per TACoS training video per epoch, or None without the file."""
    import json
    import math

    path = os.path.join(os.path.dirname(_common.REPO), "shared", "data", "annotations", "tacos", "train.json")
    if not os.path.exists(path):
        return None
    from modeling_mscl import MSCLConfig
    from modeling_mscl.data.sampling import group_queries
    from modeling_mscl.processing_mscl import TimeMapping
    from modeling_mscl.training.recipe import TrainingRecipe

    config, recipe = MSCLConfig.from_preset(config_name), TrainingRecipe.from_preset(config_name)
    with open(path) as fh:
        data = json.load(fh)
    groups = 0
    for vid, entry in data.items():
        fps = float(entry["fps"])
        duration = float(entry["num_frames"]) / fps
        mapping = TimeMapping(fps=fps, clip_size=16, clip_stride=4, downsample_rate=4, duration=duration)
        queries = [{"start": s / fps, "end": e / fps} for s, e in entry["timestamps"]]
        n = math.ceil(entry["num_frames"] / mapping.stride_eff)
        groups += len(group_queries(queries, num_features=n, mapping=mapping, config=config, recipe=recipe, epoch=0,
                                    video_id=vid))
    return groups / len(data)


def training_consumption(results_dir: str) -> Dict[str, Dict[str, Any]]:
    """Rows/s one training process consumes, per size, from the measured training steps (if present)."""
    import json

    out = {}
    for size, name in (("tacos-like", "training_step.json"), ("mad-like", "training_step_mad.json")):
        path = os.path.join(results_dir, name)
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            step = json.load(fh)
        if step.get("quick"):
            continue
        seconds = step["results"]["with contrastive (default)"]["median_s"]
        entry = {"source": name, "preset": step["preset"], "step_s": seconds, "samples_per_step": step["videos"],
                 "worst_rows_per_s": step["videos"] / seconds}
        if size == "tacos-like":
            per_row = tacos_samples_per_row(step["preset"])
            if per_row:
                entry["samples_per_row"] = per_row
                entry["expected_rows_per_s"] = entry["worst_rows_per_s"] / per_row
        out[size] = entry
    return out


def timed_pass(make_iter: Callable[[], Iterable[Dict[str, Any]]], touch: Callable[[Dict[str, Any]], float]) -> Dict[str, Any]:
    start = time.perf_counter()
    first = None
    n = 0
    for row in make_iter():
        touch(row)
        n += 1
        if first is None:
            first = time.perf_counter() - start
    return {"seconds": time.perf_counter() - start, "rows": n, "first_row_s": first}


def main(argv=None) -> Dict[str, Any]:
    parser = _common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=None, help=f"subset of {list(SIZES)}")
    parser.add_argument("--compression", default=None, help="parquet codec of the generated files (default: none)")
    parser.add_argument("--tmp", default=None, help="folder for the generated datasets (default: system temp)")
    parser.add_argument("--consumption-only", action="store_true",
                        help="only recompute the training-consumption table from results/streaming.json")
    args = parser.parse_args(argv)
    if args.consumption_only:
        return consumption_only(args)
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.sizes:
        sizes = {k: sizes[k] for k in args.sizes}

    import datasets

    from modeling_mscl.data.loading import load_grounding_dataset
    from modeling_mscl.data.schema import write_grounding_dataset

    datasets.disable_progress_bars()
    datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0
    text_dim = 512
    load_before = _common.load_average()
    results: List[Dict[str, Any]] = []
    tmp_root = tempfile.mkdtemp(prefix="mscl-bench-", dir=args.tmp)
    try:
        for name, (T, D, n, tokens, nq) in sizes.items():
            path = os.path.join(tmp_root, name)
            t0 = time.perf_counter()
            meta = write_grounding_dataset(make_rows(T, D, n, tokens, nq, text_dim, args.seed), path, "train", D, text_dim,
                                           compression=args.compression)
            write_s = time.perf_counter() - t0
            feature_mb = n * T * D * 4 / 2**20
            disk_mb = sum(os.path.getsize(os.path.join(path, s["file"])) for s in meta["shards"]) / 2**20
            files = [os.path.join(path, s["file"]) for s in meta["shards"]]
            map_ds = load_grounding_dataset(path, "train", streaming=False, cache_dir=os.path.join(tmp_root, "hf-cache"))

            paths = {
                "hf-numpy": (lambda files=files: iter(datasets.load_dataset(
                    "parquet", data_files={"train": files}, split="train", streaming=True).with_format("numpy")), touch_hf),
                "mscl-datasets": (lambda path=path: iter(load_grounding_dataset(path, "train", shuffle_buffer=None)), touch_mscl),
                "mscl-map": (lambda map_ds=map_ds: iter(map_ds), touch_mscl),
            }
            for label, (make_iter, touch) in paths.items():
                timed_pass(make_iter, touch)  # warm-up (imports, page cache)
                runs = [timed_pass(make_iter, touch) for _ in range(repeats)]
                secs = sorted(r["seconds"] for r in runs)[len(runs) // 2]
                assert all(r["rows"] == n for r in runs), (label, [r["rows"] for r in runs])
                results.append({
                    "size": name, "T": T, "D": D, "rows": n, "path": label, "median_s": secs,
                    "rows_per_s": n / secs, "feature_mb_per_s": feature_mb / secs,
                    "first_row_ms": 1000 * sorted(r["first_row_s"] for r in runs)[len(runs) // 2],
                    "feature_mb": feature_mb, "disk_mb": disk_mb, "write_s": write_s, "repeats": repeats,
                })
                r = results[-1]
                print(f"{name:11s} {label:14s} {r['rows_per_s']:8.2f} rows/s {r['feature_mb_per_s']:8.1f} MB/s", flush=True)
            shutil.rmtree(path, ignore_errors=True)
            del map_ds
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    load_after = _common.load_average()
    data = {
        "benchmark": "streaming", "results": results, "repeats": repeats, "compression": args.compression,
        "machine": _common.machine_info("cpu"), "load_note": _common.load_note(load_before, load_after, own_threads=1),
        "quick": bool(args.quick),
    }
    return report(data, args)


def report(data: Dict[str, Any], args) -> Dict[str, Any]:
    """Markdown tables of the decode rates and of the training consumption; writes both files."""
    results = data["results"]
    base = {(r["size"]): r["rows_per_s"] for r in results if r["path"] == "hf-numpy"}
    rows = [
        (r["size"], f"{r['T']}×{r['D']}", r["rows"], r["path"], round(r["rows_per_s"], 2), round(r["feature_mb_per_s"], 1),
         round(r["first_row_ms"], 1), f"{r['rows_per_s'] / base[r['size']]:.1f}×" if r["size"] in base else "-")
        for r in results
    ]
    md = _common.markdown_table(["size", "T×D", "rows", "path", "rows/s", "feature MB/s", "first row ms", "vs hf-numpy"], rows)
    md += (
        "\n\nFeature MB/s counts the float32 video features only. Median of "
        f"{data['repeats']} full pass(es) after one warm-up pass; files in the page cache; "
        f"compression: {data.get('compression') or 'none'}."
    )
    consumption = {} if data["quick"] else training_consumption(args.out)
    data["consumption"] = consumption
    if consumption:
        best = {}
        for r in results:
            if r["path"] != "mscl-map":  # the streaming readers (the map-style path is for evaluation)
                best[r["size"]] = min(best.get(r["size"], float("inf")), r["rows_per_s"])
        crow = []
        for size, c in consumption.items():
            if size not in best:
                continue
            crow.append((size, f"`{c['preset']}` ({c['source']})", f"{c['step_s']:.2f}", c["samples_per_step"],
                         f"{c['worst_rows_per_s']:.3f}", f"{best[size] / c['worst_rows_per_s']:.0f}×",
                         f"{c['samples_per_row']:.1f}" if "samples_per_row" in c else "-",
                         f"{best[size] / c['expected_rows_per_s']:.0f}×" if "expected_rows_per_s" in c else "-"))
        md += "\n\nTraining consumption (one process, the measured step with the contrastive terms):\n\n"
        md += _common.markdown_table(["size", "training step", "step s", "samples/step", "rows/s needed (worst case)",
                                      "slowest stream ÷ need", "samples/row (TACoS grouping)", "slowest stream ÷ expected need"], crow)
        md += ("\n\nWorst case: every sample of a batch from a different row. The slowest streaming reader above "
               "is compared, so the margin holds for any of them. `MSCLTrainer` reads the stream in the main process, "
               "so decoding time adds to the step time: 1 / margin is the fraction it adds in the worst case.\n")
    if data.get("decode_command"):
        md += (f"\nDecode rates measured by `{data['decode_command']}`; the consumption table recomputed from them and "
               "the training-step results by `--consumption-only`.\n")
    _common.write_results("streaming" + ("_quick" if data["quick"] else ""), data, md, out_dir=args.out, write=not args.no_write)
    return data


def consumption_only(args) -> Dict[str, Any]:
    """Re-make the report from ``<out>/streaming.json`` with the current training-step results (no decoding)."""
    import json

    path = os.path.join(args.out, "streaming.json")
    if not os.path.exists(path):
        raise SystemExit(f"--consumption-only needs {path}: run the benchmark first")
    with open(path) as fh:
        data = json.load(fh)
    data.setdefault("repeats", data["results"][0].get("repeats"))
    data["decode_command"] = data.pop("decode_command", None) or data.pop("command", None)
    data.pop("command", None)
    return report(data, args)


if __name__ == "__main__":
    main()
