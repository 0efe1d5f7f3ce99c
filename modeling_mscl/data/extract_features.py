# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Extract frame features from a folder of videos: one ``<video_id>.npy`` per video plus a manifest.

Command line::

    python -m modeling_mscl.data.extract_features --videos DIR --preset mad_clip --output feats/
    python -m modeling_mscl.data.extract_features --videos DIR --extractor google/siglip-base-patch16-224 \\
        --model-class SiglipVisionModel --feature-output pooler_output --fps 2 --output feats/
    accelerate launch --num_processes 4 -m modeling_mscl.data.extract_features --videos DIR --preset mad_clip --output feats/
    python -m modeling_mscl.data.extract_features --clear-cache     # empty the pipeline's video-feature cache

Then build a dataset from the features with ``python -m modeling_mscl.data.convert --video-features feats/ ...``
(``<video_id>`` is the file name without its extension, which is what annotation files name the videos by).

* **Extractor.** ``--preset NAME`` takes the preset's ``video_feature_source`` (model, output, preprocessing,
  sampling), so the features are exactly what a checkpoint of that preset reads (``--extractor`` may then
  point at a local copy of the preset's model). Without a preset, ``--extractor ID --fps F`` extracts one
  frame every ``1/F`` s with any Hugging Face image model (``--model-class``, ``--feature-output``,
  ``--normalize``, ``--resize``); see :mod:`modeling_mscl.video_features_mscl`.
* **Output.** ``<output>/<video_id>.npy``: ``(T, D)`` float32, stored feature ``j`` ↔ the frame on screen at
  ``(j + 0.5) / fps`` s (written to a temporary file and renamed, so a killed run never leaves a truncated
  array). ``<output>/manifest.json``: the extractor (source dict and the fingerprint the cache uses), the
  sampling, and per video its source file, feature count, duration, decoded frames and file identity;
  failures are listed there too.
* **Resume.** A video whose ``.npy`` exists and whose manifest entry matches the file's identity (size,
  mtime, hash of head and tail) is skipped; failed videos are retried. An output folder written by another
  extractor or sampling is refused (``--overwrite`` starts it afresh).
* **Several processes.** Under ``accelerate launch`` (or ``torchrun``) the sorted video list is split over the
  processes (rank ``r`` takes videos ``r, r + world, ...``), each on its own device (``cuda:<local rank>`` on a
  GPU machine); each process appends to its own journal and rank 0 merges them into ``manifest.json``.
* **Failures.** A video that cannot be decoded (missing, corrupt, truncated — see ``--allow-partial`` —, no
  video stream) is reported with its error at the end; the others are still extracted, and the exit status
  is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "mscl-video-features"
MANIFEST_VERSION = 1
VIDEO_FILE_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                         ".flv", ".wmv", ".3gp", ".ogv")

__all__ = ["MANIFEST_NAME", "VIDEO_FILE_EXTENSIONS", "build_parser", "find_videos", "main", "read_manifest", "resolve_source"]


# ----------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------
def find_videos(paths: Sequence[str], recursive: bool = False) -> List[Tuple[str, str]]:
    """``(video_id, path)`` of every video under ``paths`` (folders: files with a video extension; files: as
    given), sorted by id. Two files with the same id (file name without extension) are an error."""
    found: List[Tuple[str, str]] = []
    for root in paths:
        if os.path.isfile(root):
            found.append((os.path.splitext(os.path.basename(root))[0], os.path.abspath(root)))
            continue
        if not os.path.isdir(root):
            raise ValueError(f"--videos: {root!r} is neither a file nor a folder")
        walk = os.walk(root) if recursive else [(root, [], os.listdir(root))]
        for folder, _, files in walk:
            for name in files:
                if os.path.splitext(name)[1].lower() in VIDEO_FILE_EXTENSIONS:
                    found.append((os.path.splitext(name)[0], os.path.abspath(os.path.join(folder, name))))
    by_id: Dict[str, List[str]] = {}
    for vid, path in found:
        by_id.setdefault(vid, []).append(path)
    clashes = {vid: paths for vid, paths in by_id.items() if len(set(paths)) > 1}
    if clashes:
        shown = "; ".join(f"{vid}: {', '.join(p)}" for vid, p in list(clashes.items())[:5])
        raise ValueError(f"several videos share a video id (the file name without extension), so their features would "
                         f"overwrite each other: {shown}")
    return sorted({vid: paths[0] for vid, paths in by_id.items()}.items())


def resolve_source(args: argparse.Namespace) -> Tuple[Dict[str, Any], Optional[str]]:
    """The ``video_feature_source`` the arguments describe, and the preset name (if any)."""
    from ..configuration_mscl import MSCLConfig
    from ..video_features_mscl import NoVideoExtractorError, describe_missing_extractor, normalize_video_feature_source

    if args.preset:
        values = MSCLConfig.load_preset_dict(args.preset)
        source = normalize_video_feature_source(values.get("video_feature_source"))
        if source["type"] != "hf":
            raise NoVideoExtractorError(describe_missing_extractor(source, int(values["video_input_dim"]),
                                                                   what=f"--preset {args.preset}: "))
        if args.fps is not None and abs(args.fps - source["sampling"]["fps"]) > 1e-9:
            raise ValueError(f"--preset {args.preset} samples at {source['sampling']['fps']:g} features per second (its time "
                             "mapping); drop --fps, or use --extractor without --preset for another rate")
        for flag, key in (("extractor", "name_or_path"), ("revision", "revision"), ("dtype", "dtype")):
            if getattr(args, flag) is not None:
                source[key] = getattr(args, flag)
        for flag in ("model_class", "feature_output", "normalize", "resize"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} changes the features: it cannot be combined with --preset "
                                 f"(whose checkpoints read its own features)")
        return normalize_video_feature_source(source), args.preset
    if not args.extractor:
        raise ValueError("give --preset NAME (its extractor and sampling) or --extractor ID_OR_FOLDER --fps F")
    if args.fps is None:
        raise ValueError("--extractor needs --fps (features per second; one frame each)")
    source = {
        "type": "hf", "name_or_path": args.extractor, "revision": args.revision,
        "model_class": args.model_class or "CLIPVisionModelWithProjection",
        "output": args.feature_output or "image_embeds",
        "normalize": None if args.normalize in (None, "none") else args.normalize,
        "resize": args.resize or "image_processor", "dtype": args.dtype or "float32",
        "sampling": {"fps": args.fps, "clip_size": 1, "clip_stride": 1},
    }
    return normalize_video_feature_source(source), None


# ----------------------------------------------------------------------------------------------------
# manifest
# ----------------------------------------------------------------------------------------------------
def read_manifest(output: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(output, MANIFEST_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _journal_path(output: str, rank: int) -> str:
    return os.path.join(output, f".manifest.rank{rank}.jsonl")


def _read_journals(output: str) -> List[Dict[str, Any]]:
    lines = []
    for name in sorted(os.listdir(output)):
        if name.startswith(".manifest.rank") and name.endswith(".jsonl"):
            with open(os.path.join(output, name), encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            lines.append(json.loads(line))
                        except json.JSONDecodeError:  # the last line of a killed process
                            pass
    return lines


def _header(source: Dict[str, Any], fingerprint: Dict[str, Any], preset: Optional[str]) -> Dict[str, Any]:
    s = source["sampling"]
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "preset": preset, "extractor": source,
        "extractor_fingerprint": fingerprint, "sampling": s,
        "time_mapping": {"fps": s["fps"], "clip_size": s["clip_size"], "clip_stride": s["clip_stride"]},
        "feature_time": "stored feature j is the frame on screen at (j * clip_stride + clip_size / 2) / fps seconds",
        "convert": (f"python -m modeling_mscl.data.convert --video-features <this folder> --fps {s['fps']:g} "
                    f"--clip-size {s['clip_size']:g} --clip-stride {s['clip_stride']:g} ..."
                    + (f"  (or --preset {preset})" if preset else "")),
    }


def _same_extractor(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    return a.get("extractor_fingerprint") == b.get("extractor_fingerprint") and a.get("sampling") == b.get("sampling")


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modeling_mscl.data.extract_features",
        description="Extract frame features (one .npy per video + manifest.json) from video files with a Hugging Face "
                    "image model, as a preset's checkpoints read them.",
        epilog="Launch with `accelerate launch` to split the videos over processes/GPUs. Failures are listed at the end.",
    )
    p.add_argument("--videos", nargs="+", help="video files and/or folders of videos")
    p.add_argument("--output", help="output folder for <video_id>.npy and manifest.json")
    p.add_argument("--preset", default=None, help="take the extractor and sampling from this MSCLConfig preset (e.g. mad_clip)")
    p.add_argument("--extractor", default=None, help="Hugging Face model id or local folder (with --preset: replaces its model)")
    p.add_argument("--fps", type=float, default=None, help="features per second, one frame each (needed without --preset)")
    p.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    p.add_argument("--model-class", default=None, help="transformers class to load (default CLIPVisionModelWithProjection)")
    p.add_argument("--feature-output", default=None,
                   choices=("image_embeds", "pooler_output", "image_features", "cls_token", "mean_tokens"),
                   help="which model output is the feature (default image_embeds)")
    p.add_argument("--normalize", default=None, choices=("none", "l2"), help="normalise each feature (default none)")
    p.add_argument("--resize", default=None, choices=("image_processor", "decoder"),
                   help="resize with the image processor (PIL bicubic, default) or in the decoder (swscale, faster)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="extractor precision")
    p.add_argument("--batch-size", type=int, default=32, help="frames per forward pass")
    p.add_argument("--threads", type=int, default=0, help="decoder threads per process (0: FFmpeg's choice)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: this process's device in the launch)")
    p.add_argument("--recursive", action="store_true", help="also look for videos in sub-folders")
    p.add_argument("--allow-partial", action="store_true",
                   help="keep the decodable part of truncated/damaged files (marked partial in the manifest) instead of failing")
    p.add_argument("--overwrite", action="store_true", help="re-extract everything (an existing manifest is replaced)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--clear-cache", action="store_true", help="empty the pipeline's video-feature cache and exit")
    p.add_argument("--cache-dir", default=None, help="with --clear-cache: the cache folder (default: the pipeline's)")
    return p


def _process_state(device: Optional[str]):
    import torch
    from accelerate import PartialState

    # cpu=True without CUDA: otherwise accelerate does not see a multi-process CPU launch
    return PartialState(cpu=not torch.cuda.is_available() or (device is not None and device.startswith("cpu")))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clear_cache:
        from ..video_features_mscl import VideoFeatureCache

        cache = VideoFeatureCache(args.cache_dir)
        n, size = cache.clear()
        print(f"removed {n} cached feature file(s), {size / 2**20:.1f} MiB, from {cache.cache_dir}")
        return 0
    if not args.videos or not args.output:
        print("error: --videos and --output are required (or --clear-cache)", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        source, preset = resolve_source(args)
        videos = find_videos(args.videos, recursive=args.recursive)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not videos:
        print(f"error: no video file found in {', '.join(args.videos)} (extensions: {', '.join(VIDEO_FILE_EXTENSIONS)})",
              file=sys.stderr)
        return 2

    import torch

    from ..video_features_mscl import HFImageFeatureExtractor, atomic_write, extract_video_features, file_identity

    state = _process_state(args.device)
    rank, world = state.process_index, state.num_processes
    device = torch.device(args.device) if args.device else state.device
    if device.type == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, state.num_processes)))
    os.makedirs(args.output, exist_ok=True)

    extractor = HFImageFeatureExtractor(source, device=device)
    header = _header(extractor.source, extractor.fingerprint, preset)
    previous = None if args.overwrite else read_manifest(args.output)
    if previous is not None and not _same_extractor(previous, header):
        if rank == 0:
            print(f"error: {args.output} holds features of another extractor or sampling "
                  f"({previous.get('extractor', {}).get('name_or_path')}, {previous.get('sampling')}); use another "
                  "--output, or --overwrite to start it afresh", file=sys.stderr)
        return 2
    done: Dict[str, Dict[str, Any]] = dict((previous or {}).get("videos", {}))
    if not args.overwrite:
        for line in _read_journals(args.output):
            if "entry" in line and line.get("extractor_fingerprint") == header["extractor_fingerprint"]:
                done[line["id"]] = line["entry"]
    state.wait_for_everyone()  # every rank has read the old journals before rank 0 may rewrite them

    mine = videos[rank::world]
    journal = _journal_path(args.output, rank)
    failures: Dict[str, Dict[str, str]] = {}
    extracted, skipped = 0, 0
    progress = not args.no_progress
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), unit="video", desc=f"rank {rank}" if world > 1 else "videos", position=rank, leave=True)
    started = time.time()
    with open(journal, "a", encoding="utf-8") as log:
        for vid, path in mine:
            target = os.path.join(args.output, vid + ".npy")
            try:
                ident = file_identity(path) if os.path.isfile(path) else None
                entry = done.get(vid)
                if (not args.overwrite and ident is not None and entry is not None and os.path.isfile(target)
                        and entry.get("file_identity") == ident):
                    skipped += 1
                    continue
                out = extract_video_features(path, extractor, batch_size=args.batch_size, use_cache=False,
                                             allow_partial=args.allow_partial, progress=None if progress else False,
                                             threads=args.threads)
                atomic_write(target, lambda f, out=out: np.save(f, out.features, allow_pickle=False))
                entry = {"source": path, "file": vid + ".npy", "num_features": int(out.features.shape[0]),
                         "dim": int(out.features.shape[1]), "duration": out.duration, "duration_source": out.duration_source,
                         "decoded_end": out.decoded_end, "frames_decoded": out.frames_decoded, "partial": out.partial,
                         "partial_reason": out.partial_reason, "file_identity": ident, "info": out.info}
                log.write(json.dumps({"id": vid, "time": time.time(), "entry": entry,
                                      "extractor_fingerprint": header["extractor_fingerprint"]}) + "\n")
                log.flush()
                extracted += 1
            except KeyboardInterrupt:
                raise
            except Exception as err:  # one bad file must not stop the others: reported at the end
                failures[vid] = {"source": path, "error": f"{type(err).__name__}: {err}"}
                if os.path.isfile(target):  # features of an earlier version of this file no longer describe it
                    os.remove(target)
                log.write(json.dumps({"id": vid, "time": time.time(), "failure": failures[vid]}) + "\n")
                log.flush()
            finally:
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    print(f"[rank {rank}/{world}] extracted {extracted}, already done {skipped}, failed {len(failures)} "
          f"in {time.time() - started:.1f} s", flush=True)

    state.wait_for_everyone()
    status = 1 if failures else 0
    if rank == 0:
        merged = dict(done)
        all_failures: Dict[str, Dict[str, str]] = {}
        # in time order over all ranks' journals: the latest word on a video wins
        for line in sorted(_read_journals(args.output), key=lambda x: x.get("time", 0.0)):
            if "entry" in line:
                if line.get("extractor_fingerprint") != header["extractor_fingerprint"]:
                    continue
                merged[line["id"]] = line["entry"]
                all_failures.pop(line["id"], None)
            elif "failure" in line:
                all_failures[line["id"]] = line["failure"]
                merged.pop(line["id"], None)
        manifest = {**header, "videos": dict(sorted(merged.items())), "failures": dict(sorted(all_failures.items()))}
        atomic_write(os.path.join(args.output, MANIFEST_NAME),
                      lambda f: f.write((json.dumps(manifest, indent=1) + "\n").encode("utf-8")))
        for r in range(world):
            try:
                os.remove(_journal_path(args.output, r))
            except OSError:
                pass
        print(f"{len(manifest['videos'])} video(s) with features in {args.output} ({MANIFEST_NAME} written)")
        if all_failures:
            print(f"\n{len(all_failures)} video(s) FAILED:", file=sys.stderr)
            for vid, failure in sorted(all_failures.items()):
                print(f"  {vid} ({failure['source']}): {failure['error']}", file=sys.stderr)
            status = 1
    state.wait_for_everyone()
    return status


if __name__ == "__main__":
    sys.exit(main())
