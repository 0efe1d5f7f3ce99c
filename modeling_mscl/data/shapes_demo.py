# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A small demo of grounding *from pixels*: rendered videos of coloured shapes that move, and sentences.

Every video is a dark, textured stage on which a few events happen one after another: a coloured shape
(red / green / blue / yellow circle, square or triangle) appears and moves left, right, up or down for a
few seconds, then leaves. Each event is described by a sentence (``"the red circle moves left"``), and the
events of a video share colours and shapes, so a sentence is grounded only by reading colour, shape *and*
direction of motion. Nothing here is a feature vector: the videos are real H.264 files, decoded and
embedded by the same path as any user video (``modeling_mscl.data.extract_features``), with a fixed frame
extractor, and the sentences are embedded with word vectors (GloVe text format).

The frame extractor is a small CLIP-architecture vision tower (``CLIPVisionModelWithProjection``, 64 px,
64-d) trained once on single rendered frames to recognise the shape on screen (colour, shape, position) and
then frozen (:func:`make_demo_extractor`): no pretrained image model can be downloaded where the package is
tested, so the demo makes its own, and the grounding model learns to read its features the way a real
checkpoint learns to read CLIP's. The word vectors are random (one per word).

    python -m modeling_mscl.data.shapes_demo --output demo/            # videos, features, dataset (+ extractor)
    python -m modeling_mscl.data.shapes_demo --output demo/ --train-epochs 30 --export notebooks/shapes_demo

Everything is deterministic given the seed. Functions: :func:`sample_video_spec`, :func:`render_frame`,
:func:`write_shapes_video`, :func:`make_demo_extractor`, :func:`write_demo_word_vectors`,
:func:`generate_shapes_demo`, :data:`DEMO_MODEL_OVERRIDES`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

COLOURS = {"red": (225, 45, 45), "green": (50, 200, 70), "blue": (60, 100, 240), "yellow": (235, 215, 50)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
TEMPLATES = ("the {colour} {shape} moves {direction}", "a {colour} {shape} goes {direction}",
             "a {colour} {shape} slides {direction}")
VOCABULARY = sorted({w for t in TEMPLATES for w in t.format(colour="", shape="", direction="").split()}
                    | set(COLOURS) | set(SHAPES) | set(DIRECTIONS))

FRAME_SIZE = 96  # pixels, square
VIDEO_FPS = 10
FEATURES_PER_SECOND = 2.0
EXTRACTOR_DIM = 64
WORD_DIM = 32

#: MSCLConfig overrides (on the ``debug`` preset) of the demo's grounding model.
DEMO_MODEL_OVERRIDES: Dict[str, Any] = {
    "video_input_dim": EXTRACTOR_DIM, "text_input_dim": WORD_DIM, "fps": FEATURES_PER_SECOND, "clip_size": 1,
    "clip_stride": 1, "max_video_length": 128, "num_pyramid_levels": 5,
}


# ----------------------------------------------------------------------------------------------------
# what happens in a video
# ----------------------------------------------------------------------------------------------------
def sentence_of(event: Dict[str, Any], template: int = 0) -> str:
    return TEMPLATES[template].format(colour=event["colour"], shape=event["shape"], direction=event["direction"])


def sample_video_spec(rng: np.random.Generator, video_id: str) -> Dict[str, Any]:
    """Duration, background and 2–4 non-overlapping events (3–9 s each) whose sentences all differ."""
    duration = float(rng.integers(30, 46))
    num_events = int(rng.integers(2, 5))
    # a few colours and shapes per video, so that events share attributes and sentences must be read whole
    colours = list(rng.choice(list(COLOURS), size=2, replace=False))
    shapes = list(rng.choice(SHAPES, size=2, replace=False))
    events: List[Dict[str, Any]] = []
    seen = set()
    t = float(rng.uniform(1.0, 4.0))
    for _ in range(num_events):
        length = float(rng.uniform(3.0, 9.0))
        if t + length > duration - 1.0:
            break
        while True:
            key = (str(rng.choice(colours)), str(rng.choice(shapes)), str(rng.choice(list(DIRECTIONS))))
            if key not in seen:
                break
        seen.add(key)
        colour, shape, direction = key
        # travel across most of the stage along the direction, at a random height / column
        across = float(rng.uniform(0.3, 0.7))
        events.append({
            "colour": colour, "shape": shape, "direction": direction, "start": round(t, 2), "end": round(t + length, 2),
            "across": across, "size": float(rng.uniform(0.18, 0.26)), "template": int(rng.integers(len(TEMPLATES))),
        })
        t += length + float(rng.uniform(1.5, 5.0))
    return {"video_id": video_id, "duration": duration, "background_seed": int(rng.integers(2**31)), "events": events}


def _background(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(25, 60, (size // 8, size // 8, 1)).astype(np.uint8)
    bg = np.kron(blocks, np.ones((8, 8, 1), np.uint8))
    return np.repeat(bg, 3, axis=2)


def _shape_mask(shape: str, cx: float, cy: float, half: float, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= half * half
    if shape == "square":
        return (np.abs(xs - cx) <= half * 0.85) & (np.abs(ys - cy) <= half * 0.85)
    # an upward triangle
    top, bottom = cy - half, cy + half
    inside = (ys >= top) & (ys <= bottom)
    width = (ys - top) / (2 * half) * half
    return inside & (np.abs(xs - cx) <= width)


def event_position(event: Dict[str, Any], t: float, size: int = FRAME_SIZE):
    """Centre (x, y) in pixels of an event's shape at time ``t`` (within the event)."""
    progress = (t - event["start"]) / max(1e-6, event["end"] - event["start"])
    dx, dy = DIRECTIONS[event["direction"]]
    along = 0.15 + 0.7 * progress  # from 15 % to 85 % of the stage
    if dx:
        x = along if dx > 0 else 1.0 - along
        y = event["across"]
    else:
        y = along if dy > 0 else 1.0 - along
        x = event["across"]
    return x * size, y * size


def render_frame(spec: Dict[str, Any], t: float, size: int = FRAME_SIZE, background: Optional[np.ndarray] = None) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 RGB frame of a video spec at time ``t`` seconds."""
    img = (background if background is not None else _background(spec["background_seed"], size)).copy()
    for event in spec["events"]:
        if event["start"] <= t < event["end"]:
            cx, cy = event_position(event, t, size)
            img[_shape_mask(event["shape"], cx, cy, event["size"] * size / 2, size)] = COLOURS[event["colour"]]
    return img


def write_shapes_video(path: str, spec: Dict[str, Any], fps: int = VIDEO_FPS, size: int = FRAME_SIZE) -> str:
    """Render a spec to an H.264 mp4 file with PyAV."""
    from ..video_processing_mscl import import_av

    av = import_av()
    background = _background(spec["background_seed"], size)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for k in range(int(round(spec["duration"] * fps))):
            frame = av.VideoFrame.from_ndarray(render_frame(spec, k / fps, size, background), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ----------------------------------------------------------------------------------------------------
# the fixed extractor and the word vectors
# ----------------------------------------------------------------------------------------------------
def _random_frame(rng: np.random.Generator, size: int = FRAME_SIZE):
    """A frame with no shape or one shape anywhere, and its labels (present, colour, shape, x, y)."""
    spec = {"background_seed": int(rng.integers(2**31)), "events": []}
    label = {"present": 0.0, "colour": 0, "shape": 0, "x": 0.5, "y": 0.5}
    if rng.random() < 0.85:
        colour, shape = int(rng.integers(len(COLOURS))), int(rng.integers(len(SHAPES)))
        x, y = rng.uniform(0.12, 0.88, 2)
        event = {"colour": list(COLOURS)[colour], "shape": SHAPES[shape], "direction": "right", "start": 0.0, "end": 1.0,
                 "across": float(y), "size": float(rng.uniform(0.18, 0.26))}
        spec["events"].append(event)
        t = (float(x) - 0.15) / 0.7  # event_position: x = 0.15 + 0.7 * progress
        label = {"present": 1.0, "colour": colour, "shape": shape, "x": float(x), "y": float(y)}
        return render_frame(spec, t, size), label
    return render_frame(spec, 0.0, size), label


def make_demo_extractor(folder: str, seed: int = 0, num_frames: int = 6000, epochs: int = 10, progress: bool = False) -> str:
    """The demo's frame extractor: a small CLIP-architecture vision tower (64 px input, 8 px patches, 64-d
    ``image_embeds``), trained once on single rendered frames to tell whether a shape is on screen, its colour,
    its shape and where it is (linear heads on ``image_embeds``, discarded afterwards), then frozen and saved with
    its image processor. It plays the part of a pretrained image model: it never sees a video, a sentence or a
    moment. A tower with random weights would not do: its small random position embeddings leave little trace of
    where a shape is in the pooled output, so a grounding model could hardly tell "moves left" from "moves right".
    """
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              image_size=64, patch_size=8, projection_dim=EXTRACTOR_DIM)
    model = CLIPVisionModelWithProjection(config)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    frames, labels = zip(*(_random_frame(rng) for _ in range(num_frames)))
    pixels = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    present = torch.tensor([lb["present"] for lb in labels])
    colour = torch.tensor([lb["colour"] for lb in labels])
    shape = torch.tensor([lb["shape"] for lb in labels])
    xy = torch.tensor([[lb["x"], lb["y"]] for lb in labels])
    head = torch.nn.Linear(EXTRACTOR_DIM, 1 + len(COLOURS) + len(SHAPES) + 2)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    steps_per_epoch = (num_frames + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(num_frames, generator=gen)
        total = 0.0
        for i in range(0, num_frames, 64):
            idx = order[i:i + 64]
            out = head(model(pixel_values=pixels[idx]).image_embeds)
            on = present[idx] > 0
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], present[idx])
            if on.any():
                c0, s0 = 1, 1 + len(COLOURS)
                loss = loss + torch.nn.functional.cross_entropy(out[on, c0:s0], colour[idx][on])
                loss = loss + torch.nn.functional.cross_entropy(out[on, s0:s0 + len(SHAPES)], shape[idx][on])
                loss = loss + 10.0 * torch.nn.functional.mse_loss(out[on, -2:], xy[idx][on])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            print(f"extractor epoch {epoch + 1}/{epochs}: loss {total / num_frames:.3f}", flush=True)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def demo_video_source(extractor: str) -> Dict[str, Any]:
    """The demo checkpoint's ``video_feature_source``."""
    return {"type": "hf", "name_or_path": os.path.abspath(extractor), "model_class": "CLIPVisionModelWithProjection",
            "output": "image_embeds", "normalize": None, "image_processor_backend": "pil", "resize": "image_processor",
            "dtype": "float32", "sampling": {"fps": FEATURES_PER_SECOND, "clip_size": 1, "clip_stride": 1},
            "dim": EXTRACTOR_DIM, "note": "the shapes demo's frame extractor: a small CLIP vision tower trained on rendered frames, frozen"}


def demo_text_source() -> Dict[str, Any]:
    return {"type": "word_vectors", "tokenizer": "basic_english", "dim": WORD_DIM, "name": "shapes-demo words",
            "note": "one random 32-d vector per word of the shapes demo (words.txt)"}


def write_demo_word_vectors(path: str, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for word in VOCABULARY:
            vec = rng.standard_normal(WORD_DIM).astype(np.float32)
            f.write(word + " " + " ".join(f"{x:.6f}" for x in vec) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------
# the dataset
# ----------------------------------------------------------------------------------------------------
def generate_shapes_demo(
    output: str,
    *,
    num_train: int = 200,
    num_test: int = 40,
    seed: int = 0,
    extractor: Optional[str] = None,
    word_vectors: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Render the videos, extract their features, and write an mscl dataset (splits ``train`` and ``test``).

    Layout of ``output``: ``videos/<split>/<id>.mp4``, ``annotations/<split>.json`` (ActivityNet-Captions
    format), ``features/<split>/<id>.npy`` + ``manifest.json`` (from ``extract_features``), ``dataset/``
    (parquet, with the sentences' word-vector token features), and ``extractor/`` / ``words.txt`` unless
    given. Returns the paths.
    """
    from ..text_embedding_mscl import WordVectorTextEncoder, load_word_vectors
    from .convert import convert
    from .extract_features import main as extract_main

    os.makedirs(output, exist_ok=True)
    extractor = extractor or make_demo_extractor(os.path.join(output, "extractor"), seed=seed, progress=progress)
    word_vectors = word_vectors or write_demo_word_vectors(os.path.join(output, "words.txt"), seed=seed)
    encoder = WordVectorTextEncoder(load_word_vectors(word_vectors, WORD_DIM))
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("test", num_test)):
        video_dir = os.path.join(output, "videos", split)
        os.makedirs(video_dir, exist_ok=True)
        annotations = {}
        for i in range(count):
            spec = sample_video_spec(rng, f"{split}_{i:04d}")
            write_shapes_video(os.path.join(video_dir, spec["video_id"] + ".mp4"), spec)
            annotations[spec["video_id"]] = {
                "duration": spec["duration"],
                "timestamps": [[e["start"], e["end"]] for e in spec["events"]],
                "sentences": [sentence_of(e, e["template"]) for e in spec["events"]],
                "spec": spec,
            }
        os.makedirs(os.path.join(output, "annotations"), exist_ok=True)
        ann_path = os.path.join(output, "annotations", f"{split}.json")
        with open(ann_path, "w", encoding="utf-8") as f:
            json.dump(annotations, f, indent=1)
        features = os.path.join(output, "features", split)
        argv = ["--videos", video_dir, "--extractor", extractor, "--fps", str(FEATURES_PER_SECOND), "--output", features]
        if not progress:
            argv.append("--no-progress")
        if extract_main(argv) != 0:
            raise RuntimeError(f"feature extraction of the {split} videos failed (see above)")
        convert("activitynet", ann_path, features, os.path.join(output, "dataset"), split,
                fps=FEATURES_PER_SECOND, clip_size=1, clip_stride=1, text_dim=WORD_DIM,
                text_encoder=lambda sentences: [encoder(s).numpy() for s in sentences], progress=progress, overwrite=True)
    return {"dataset": os.path.join(output, "dataset"), "extractor": extractor, "word_vectors": word_vectors,
            "annotations": os.path.join(output, "annotations")}


def train_shapes_demo(dataset: str, extractor: str, output_dir: str, *, num_epochs: int = 30, warmup_epochs: int = 2,
                      progress: bool = False) -> Dict[str, Any]:
    """Train the demo's grounding model on ``dataset`` with the package's trainer (``run_training``: the ``debug``
    preset with :data:`DEMO_MODEL_OVERRIDES`, EMA weights, evaluation on ``test``); returns the metrics."""
    from ..training.args import TrainingOptions
    from ..training.experiment import run_training

    overrides = dict(DEMO_MODEL_OVERRIDES, video_feature_source=demo_video_source(extractor),
                     text_feature_source=demo_text_source(), num_epochs=num_epochs, warmup_epochs=warmup_epochs)
    return run_training(TrainingOptions(dataset=dataset, output_dir=output_dir, progress=progress),
                        overrides)


def export_shapes_demo(extractor: str, word_vectors: str, run_dir: str, target: str) -> str:
    """Copy what the notebook needs: ``extractor/``, ``words.txt`` and the trained model's config + weights
    (``model/``; the extractor path in its ``video_feature_source`` made relative, the remote-code keys dropped
    since the notebook loads the model with the package's class)."""
    import shutil

    os.makedirs(os.path.join(target, "model"), exist_ok=True)
    if os.path.abspath(extractor) != os.path.abspath(os.path.join(target, "extractor")):
        shutil.copytree(extractor, os.path.join(target, "extractor"), dirs_exist_ok=True)
    if os.path.abspath(word_vectors) != os.path.abspath(os.path.join(target, "words.txt")):
        shutil.copy(word_vectors, os.path.join(target, "words.txt"))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    for key in ("auto_map", "custom_pipelines"):
        config.pop(key, None)
    config["video_feature_source"]["name_or_path"] = "extractor"
    config["video_feature_source"]["note"] += " (path relative to the shapes_demo folder)"
    with open(os.path.join(target, "model", "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copy(os.path.join(run_dir, "model.safetensors"), os.path.join(target, "model", "model.safetensors"))
    shutil.copy(os.path.join(run_dir, "metrics.json"), os.path.join(target, "model", "metrics.json"))
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m modeling_mscl.data.shapes_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", required=True)
    p.add_argument("--train-videos", type=int, default=200)
    p.add_argument("--test-videos", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extractor", default=None, help="an existing extractor folder (default: make one from --seed)")
    p.add_argument("--word-vectors", default=None, help="an existing words file (default: make one from --seed)")
    p.add_argument("--train-epochs", type=int, default=0, help="then train the demo model for this many epochs (0: don't)")
    p.add_argument("--export", default=None, help="with --train-epochs: copy extractor, words and model here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    paths = generate_shapes_demo(args.output, num_train=args.train_videos, num_test=args.test_videos, seed=args.seed,
                                 extractor=args.extractor, word_vectors=args.word_vectors, progress=not args.no_progress)
    print(json.dumps(paths, indent=1))
    if args.train_epochs > 0:
        run_dir = os.path.join(args.output, "run")
        train_shapes_demo(paths["dataset"], paths["extractor"], run_dir, num_epochs=args.train_epochs,
                          progress=not args.no_progress)
        if args.export:
            print("exported to", export_shapes_demo(paths["extractor"], paths["word_vectors"], run_dir, args.export))
    return 0


if __name__ == "__main__":
    sys.exit(main())
