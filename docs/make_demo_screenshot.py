#!/usr/bin/env python
# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Make the README's screenshot of the web demo (docs/images/demo.png) in headless Chromium.

    python docs/make_demo_screenshot.py                      # the tests' tiny random-weight stand-in model
    python docs/make_demo_screenshot.py --model ORG/REPO     # a real checkpoint whose features come from video files

The app is started on 127.0.0.1, the "shapes" example clip is loaded with its two sentences, top-k is set to
3, the answer is awaited, a moment is clicked (the player seeks to it; see ``--seek``), and the page is saved as a 256-colour PNG. Without ``--model`` the model is the one the browser tests use: a tiny
random CLIP as frame and sentence encoder and a debug-sized MSCL model with random weights, so the page is
real but its moments mean nothing. Needs ``pip install 'mscl[demo]' playwright`` and Debian's ``chromium``.
"""

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the tiny stand-in model of the tests (video_helpers, demo_helpers)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint folder or Hub repo (default: the tests' tiny random model)")
    p.add_argument("--output", default=str(REPO / "docs" / "images" / "demo.png"))
    p.add_argument("--chromium", default=None, help="Chromium executable (default: /usr/bin/chromium or PATH)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--seek", default="auto", help="the moment to click, '<sentence>-<rank>' (default 'auto': the first one "
                   "listed that starts during one of the clip's drawn events, so the player shows a shape; else 1-1)")
    args = p.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    work = Path(tempfile.mkdtemp(prefix="mscl-screenshot-"))
    os.environ.setdefault("MSCL_DEMO_EXAMPLES", str(work / "examples"))

    from demo_helpers import chromium_page, chromium_path, free_port, grounding_model, image_stats, wait_for_http
    from transformers import pipeline

    from modeling_mscl.demo import GroundingDemo, build_demo, launch_kwargs, load_pipeline

    chromium = args.chromium or chromium_path()
    if chromium is None:
        print("error: no Chromium found (apt-get install chromium, or pass --chromium)", file=sys.stderr)
        return 2
    if args.model:
        pipe = load_pipeline(args.model, video_cache_dir=str(work / "cache"))
        name = args.model
    else:
        from video_helpers import make_tiny_clip

        clip = make_tiny_clip(work / "tiny-clip")
        pipe = pipeline("video-temporal-grounding", model=grounding_model(clip), video_cache_dir=str(work / "cache"))
        name = "tiny-random-mscl (random weights: moments not meaningful)"
    demo = build_demo(GroundingDemo(pipe, model_name=name))
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
            page.get_by_text("shapes (16 s)").click()
            page.wait_for_function("() => { const v = document.querySelector('#mscl-video video'); return v && v.readyState >= 1; }")
            box = page.locator("#mscl-topk input[type=number]")
            box.fill("3")
            box.press("Enter")
            page.click("#mscl-submit")
            page.wait_for_selector("#mscl-answer .mscl-table", timeout=600_000)
            key = args.seek
            if key == "auto":
                from modeling_mscl.demo.examples import EXAMPLES

                events = next(e for e in EXAMPLES if e.name == "shapes").events
                rows = page.eval_on_selector_all("#mscl-answer tr.mscl-row", "rs => rs.map(r => [r.dataset.key, r.dataset.start])")
                key = next((k for k, t in rows if any(a <= float(t) < b for _, a, b in events)), "1-1")
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
