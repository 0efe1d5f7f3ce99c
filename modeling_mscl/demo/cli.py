# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Command line of the web demo, and the shapes demo (a trained model that ships with the repo).

    python -m modeling_mscl.demo --model PATH_OR_REPO
    python -m modeling_mscl.demo --model PATH --extractor ORG/CLIP --word-vectors glove.txt
    python -m modeling_mscl.demo --shapes-demo            # the trained shapes demo of notebooks/shapes_demo

``--shapes-demo`` serves the model of ``notebooks/shapes_demo`` (made by :mod:`modeling_mscl.data.shapes_demo`:
rendered videos of coloured shapes moving, a frozen frame extractor trained on such frames, word vectors),
with example clips rendered the same way, so the page shows a model that really grounds what it sees,
offline. This module is the package's only (the Space folder does not copy it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .app import GroundingDemo, build_demo, launch_kwargs, load_pipeline
from .examples import default_examples_dir

__all__ = ["build_parser", "default_shapes_demo_dir", "load_shapes_demo", "main", "shapes_demo_examples"]

SHAPES_DEMO_ENV = "MSCL_SHAPES_DEMO"
# seeds of the shapes demo's example clips (none is a seed of its training set, seed 0)
SHAPES_EXAMPLE_SEEDS = (20260101, 20260202, 20260303)


def default_shapes_demo_dir() -> Path:
    """``$MSCL_SHAPES_DEMO``, else ``notebooks/shapes_demo`` of the source checkout."""
    explicit = os.environ.get(SHAPES_DEMO_ENV)
    return Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "notebooks" / "shapes_demo"


def shapes_demo_examples(folder: Optional[str] = None, count: int = 3) -> List[Tuple[str, str, str, Dict[str, Any]]]:
    """Example clips for the shapes demo (written once into ``folder``): ``(path, sentences, label, spec)``."""
    import numpy as np

    from ..data.shapes_demo import sample_video_spec, sentence_of, write_shapes_video
    from ..video_features_mscl import atomic_path

    root = Path(folder or default_examples_dir()) / "shapes_demo"
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, seed in enumerate(SHAPES_EXAMPLE_SEEDS[:count]):
        rng = np.random.default_rng(seed)
        spec = sample_video_spec(rng, f"example_{i + 1}")
        while len(spec["events"]) < 3:
            spec = sample_video_spec(rng, f"example_{i + 1}")
        path = root / f"shapes_{i + 1}.mp4"
        if not path.is_file():
            # atomic, as the other example clips; readable by the web server (mkstemp makes files private)
            with atomic_path(str(path), suffix=".mp4", mode=0o644) as tmp:
                write_shapes_video(tmp, spec)
        sentences = "\n".join(sentence_of(e, e["template"]) for e in spec["events"])
        label = f"shapes {i + 1} ({spec['duration']:g} s, {len(spec['events'])} events)"
        out.append((str(path), sentences, label, spec))
    return out


def load_shapes_demo(folder: Optional[os.PathLike] = None, **pipeline_kwargs):
    """The shapes demo's pipeline: its model, its frame extractor and its word vectors, from ``folder``."""
    from ..data.shapes_demo import demo_video_source

    root = Path(folder) if folder else default_shapes_demo_dir()
    missing = [p for p in ("model/config.json", "extractor/config.json", "words.txt") if not (root / p).is_file()]
    if missing:
        raise ValueError(
            f"no shapes demo in {root} (missing {', '.join(missing)}); make one with "
            "`python -m modeling_mscl.data.shapes_demo --output demo/ --train-epochs 30 --export DIR` and pass "
            f"--shapes-demo DIR (or set {SHAPES_DEMO_ENV})"
        )
    return load_pipeline(str(root / "model"), video_feature_source=demo_video_source(str(root / "extractor")),
                         word_vectors_path=str(root / "words.txt"), **pipeline_kwargs)


def _config_of(model: str) -> Dict[str, Any]:
    path = Path(model)
    if path.is_dir():
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download

    return json.loads(Path(hf_hub_download(model, "config.json")).read_text(encoding="utf-8"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modeling_mscl.demo",
        description="A local web demo: upload a video, type sentences (one per line), see the moments.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="checkpoint folder or Hub repo id (whose features come from video files)")
    what.add_argument("--shapes-demo", nargs="?", const="", metavar="DIR",
                      help="the trained shapes demo (default: notebooks/shapes_demo of the checkout, or $MSCL_SHAPES_DEMO)")
    p.add_argument("--extractor", default=None,
                   help="load the checkpoint's frame extractor from this folder or repo instead of the one its config names")
    p.add_argument("--word-vectors", default=None, help="word-vector file of a checkpoint whose sentences use word vectors")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    p.add_argument("--device", default=None, help="torch device of the model and the extractor (default: CPU)")
    p.add_argument("--cache-dir", default=None, help="video feature cache (default: the pipeline's, under HF_HOME)")
    p.add_argument("--examples-dir", default=None, help="where the example clips are written (default: under HF_HOME)")
    p.add_argument("--no-examples", dest="examples", action="store_false", help="no example clips")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="use the checkpoint's own code even though the mscl package is installed")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    common = dict(device=args.device, video_cache_dir=args.cache_dir)
    examples: Any = args.examples
    try:
        if args.shapes_demo is not None:
            pipe = load_shapes_demo(args.shapes_demo or None, **common)
            name = "mscl shapes demo (trained on rendered videos)"
            if args.examples:
                examples = [(p, s, label) for p, s, label, _ in shapes_demo_examples(args.examples_dir)]
        else:
            extra: Dict[str, Any] = {}
            if args.extractor:
                source = dict(_config_of(args.model).get("video_feature_source") or {})
                if source.get("type") != "hf":
                    raise ValueError(f"{args.model} records no Hugging Face frame extractor to replace with --extractor")
                extra["video_feature_source"] = dict(source, name_or_path=args.extractor)
            if args.word_vectors:
                extra["word_vectors_path"] = args.word_vectors
            pipe = load_pipeline(args.model, trust_remote_code=args.trust_remote_code or None, **common, **extra)
            name = args.model
    except (OSError, ValueError, ImportError) as err:
        print(f"error: cannot load {args.model or 'the shapes demo'!r}: {err}", file=sys.stderr)
        return 2
    demo = build_demo(GroundingDemo(pipe, model_name=name), examples=examples, examples_dir=args.examples_dir)
    demo.queue().launch(**launch_kwargs(server_name=args.host, server_port=args.port, share=args.share,
                                        allowed_paths=demo.mscl_allowed_paths))
    return 0
