#!/usr/bin/env python
# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Make the README's screenshot of the web demo (docs/images/demo.png) in headless Chromium.

    python docs/make_demo_screenshot.py                 # the trained shapes demo (notebooks/shapes_demo)
    python docs/make_demo_screenshot.py --tiny          # the browser tests' tiny random-weight stand-in

The app is started on 127.0.0.1 as ``python -m modeling_mscl.demo --shapes-demo`` serves it, the first
example clip is loaded with its sentences, top-k is set to 3, the answer is awaited, a moment is clicked (the
player seeks to it; ``--seek``) and the page is saved as a 256-colour PNG. The shapes demo is a model trained
on rendered videos of coloured shapes (``modeling_mscl.data.shapes_demo``), so its moments are real answers;
``--tiny`` shows the page with random weights (its moments mean nothing). Needs ``pip install 'mscl[demo]'
playwright`` and Debian's ``chromium``.
"""

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # Chromium helpers and the tiny stand-in model of the tests


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="the tests' tiny random-weight model instead of the shapes demo")
    p.add_argument("--output", default=str(REPO / "docs" / "images" / "demo.png"))
    p.add_argument("--chromium", default=None, help="Chromium executable (default: /usr/bin/chromium or PATH)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--seek", default="auto", help="the moment to click, '<sentence>-<rank>' (default 'auto': the top "
                   "moment of the first sentence whose top moment is its event, IoU >= 0.5; else 1-1)")
    args = p.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    work = Path(tempfile.mkdtemp(prefix="mscl-screenshot-"))
    os.environ.setdefault("MSCL_DEMO_EXAMPLES", str(work / "examples"))

    from modeling_mscl.demo import GroundingDemo, build_demo, launch_kwargs

    from demo_helpers import chromium_page, chromium_path, free_port, image_stats, wait_for_http

    chromium = args.chromium or chromium_path()
    if chromium is None:
        print("error: no Chromium found (apt-get install chromium, or pass --chromium)", file=sys.stderr)
        return 2
    if args.tiny:
        from transformers import pipeline

        from modeling_mscl.demo.examples import ensure_example_videos

        from demo_helpers import grounding_model
        from video_helpers import make_tiny_clip

        clip = make_tiny_clip(work / "tiny-clip")
        pipe = pipeline("video-temporal-grounding", model=grounding_model(clip), video_cache_dir=str(work / "cache"))
        name = "tiny-random-mscl (random weights: moments not meaningful)"
        (example, path), *_ = ensure_example_videos()
        examples, truth = True, [(a, b) for _, a, b in example.events]  # in sentence order
        label = "shapes (16 s)"
    else:
        from modeling_mscl.demo.cli import load_shapes_demo, shapes_demo_examples

        pipe = load_shapes_demo(video_cache_dir=str(work / "cache"))
        name = "mscl shapes demo (trained on rendered videos)"
        clips = shapes_demo_examples()
        examples = [(path, text, label) for path, text, label, _ in clips]
        label, truth = clips[0][2], [(e["start"], e["end"]) for e in clips[0][3]["events"]]  # in sentence order
    demo = build_demo(GroundingDemo(pipe, model_name=name), examples=examples)
    port = free_port()
    demo.queue().launch(**launch_kwargs(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                                        ssr_mode=False, allowed_paths=demo.mscl_allowed_paths))
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url)
    raw = work / "raw.png"
    try:
        with chromium_page(chromium, width=args.width, height=900) as page:
            page.goto(url)
            page.wait_for_selector("#mscl-submit")
            page.get_by_text(label).click()
            page.wait_for_function("() => { const v = document.querySelector('#mscl-video video'); return v && v.readyState >= 1; }")
            box = page.locator("#mscl-topk input[type=number]")
            box.fill("3")
            box.press("Enter")
            page.click("#mscl-submit")
            page.wait_for_selector("#mscl-answer .mscl-table", timeout=600_000)
            rows = page.eval_on_selector_all("#mscl-answer tr.mscl-row[data-rank='1']",
                                             "rs => rs.map(r => [r.dataset.key, +r.dataset.start, +r.dataset.end])")
            overlaps = [_iou((a, b), t) for (_, a, b), t in zip(rows, truth)]
            for (k, a, b), t, o in zip(rows, truth, overlaps):
                print(f"sentence {k.split('-')[0]}: top moment {a:.2f}-{b:.2f} s, its event {t[0]:.2f}-{t[1]:.2f} s, IoU {o:.2f}")
            key = args.seek
            if key == "auto":
                key = next((k for (k, _, _), o in zip(rows, overlaps) if o >= 0.5), "1-1")
            page.click(f'#mscl-answer tr.mscl-row[data-key="{key}"]')
            page.wait_for_function("() => !document.querySelector('#mscl-video video').seeking")
            page.wait_for_timeout(500)
            page.mouse.move(0, 0)
            page.screenshot(path=str(raw), full_page=True)
    finally:
        demo.close()

    from PIL import Image

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(raw).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True)
    stats = image_stats(out)
    print(f"{out}: {stats['shape'][1]}x{stats['shape'][0]}, {out.stat().st_size / 1024:.0f} KiB, {stats['colours']} colours "
          f"(model: {name}; Chromium {chromium}; {platform.platform()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
