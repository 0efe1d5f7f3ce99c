# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Helpers of the web-demo tests: tiny checkpoints that read video files, the app on a loopback port, and a
headless Chromium driven by Playwright (Debian's ``chromium``, never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # the closed network makes Chromium hang on its background requests without these
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
REQUIRE_BROWSER_ENV = "MSCL_REQUIRE_BROWSER"  # set by .ci/run: a missing browser fails instead of skipping


def chromium_path() -> Optional[str]:
    explicit = os.environ.get("MSCL_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found


def browser_or_skip() -> str:
    """The Chromium executable, after checking Playwright and Gradio are importable; skips (or, under
    ``MSCL_REQUIRE_BROWSER=1``, fails) with the reason otherwise."""
    import importlib.util

    import pytest

    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright; the browser itself is Debian's chromium)")
    if importlib.util.find_spec("gradio") is None:
        missing.append("gradio (pip install 'mscl[demo]')")
    path = chromium_path()
    if path is None:
        missing.append(f"a Chromium executable (apt-get install chromium; looked for {', '.join(CHROMIUM_CANDIDATES)} and PATH)")
    if missing:
        reason = "browser test needs " + "; ".join(missing)
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(reason + f" ({REQUIRE_BROWSER_ENV}=1)")
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float = 120.0, proc=None) -> None:
    import urllib.request

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server process exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s ({last})")


@contextmanager
def chromium_page(executable: str, *, width: int = 1280, height: int = 1000) -> Iterator:
    """A Playwright page in a fresh headless Chromium profile (deleted afterwards)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="mscl-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(60_000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------------
def grounding_model(clip_dir, seed: int = 3, **overrides):
    """A tiny MSCL model (the tests' tiny config) whose video features are the tiny CLIP's frame embeddings (5 per second) and
    whose sentences go through the tiny CLIP's text tower; weights perturbed so scores spread out."""
    import torch

    from modeling_mscl import MSCLForTemporalGrounding

    from conftest import tiny_config
    from video_helpers import clip_source

    values = dict(
        video_input_dim=16, text_input_dim=16, fps=5.0, clip_size=1, clip_stride=1,
        pre_nms_threshold=0.0, nms_min_score=0.0, preset="quickstart",  # the card publishing renders
        video_feature_source=clip_source(clip_dir),
        text_feature_source={"type": "hf", "name_or_path": str(clip_dir), "layout": "clip_text_tokens"},
    )
    values.update(overrides)
    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(tiny_config(**values)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def hub_sources(repo_id: str) -> dict:
    """``video_feature_source`` / ``text_feature_source`` naming a tiny CLIP uploaded to the (fake) Hub as
    ``repo_id``: what a Space can load."""
    from video_helpers import clip_source

    return {"video_feature_source": clip_source(repo_id),
            "text_feature_source": {"type": "hf", "name_or_path": repo_id, "layout": "clip_text_tokens"}}


def no_extractor_model(seed: int = 5):
    """A tiny model whose features are TACoS's C3D ones: no Hugging Face extractor."""
    import torch

    from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding

    from conftest import tiny_config

    source = MSCLConfig.from_preset("tacos_c3d").video_feature_source
    torch.manual_seed(seed)
    return MSCLForTemporalGrounding(tiny_config(video_feature_source=source)).eval()


def save_checkpoint(model, folder) -> Path:
    """``save_pretrained`` with the pipeline's code (``custom_pipelines``), as an exported checkpoint."""
    from modeling_mscl import MSCLGroundingPipeline

    MSCLGroundingPipeline(model=model).save_pretrained(str(folder))
    return Path(folder)


def rows_of(results) -> List[List[str]]:
    """``[sentence index, start, end, score]`` per moment at the page's display precision."""
    from modeling_mscl.demo.render import fmt_score, fmt_seconds

    return [[str(qi), fmt_seconds(m["start"]), fmt_seconds(m["end"]), fmt_score(m["score"])]
            for qi, r in enumerate(results) for m in r["moments"]]


def image_stats(path) -> dict:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    colours = np.unique(img.reshape(-1, 3)[:: max(1, img.shape[0] * img.shape[1] // 200_000)], axis=0)
    return {"shape": img.shape, "std": float(img.std()), "colours": int(len(colours))}
