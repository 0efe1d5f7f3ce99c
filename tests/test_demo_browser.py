# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The web demo in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright against the
app served on 127.0.0.1 — in this process (the package's app), and in a fresh process without the package
(the Space folder pulled from the loopback fake Hub, loading the model repo's remote code).

What a person sees is checked as they see it: the moments read from the page's DOM equal the pipeline's for
the same file and sentences (at the displayed precision), a click on a moment moves the video player's
``currentTime`` to the moment's start, bad input shows a message in the page and the next request is
answered, and a screenshot of the page is a real picture. Skips with the reason where Chromium, Playwright or
Gradio is missing (fails instead under ``MSCL_REQUIRE_BROWSER=1``, as ``.ci/run`` sets it).
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("av")

import modeling_mscl.video_processing_mscl as vp  # noqa: E402

from demo_helpers import (  # noqa: E402
    browser_or_skip,
    chromium_page,
    free_port,
    grounding_model,
    hub_sources,
    image_stats,
    no_extractor_model,
    rows_of,
    save_checkpoint,
    wait_for_http,
)
from video_helpers import make_tiny_clip  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
TASK = "video-temporal-grounding"
REPO_ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["a red circle moves from left to right", "a blue square appears and grows"]
MORE_SENTENCES = ["the square shrinks", "a circle stops"]
ROWS_JS = """rows => rows.map(r => [r.dataset.query, r.querySelector('.mscl-start').textContent,
                                  r.querySelector('.mscl-end').textContent, r.querySelector('.mscl-score').textContent])"""
BOXES_JS = "bs => bs.map(b => [b.dataset.query, b.dataset.rank, b.dataset.start, b.dataset.end, b.dataset.score])"


@pytest.fixture(scope="module")
def chromium():
    return browser_or_skip()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Example clips in a folder of this module; Gradio without analytics or server-side rendering."""
    values = {"MSCL_DEMO_EXAMPLES": str(tmp_path_factory.mktemp("examples")), "GRADIO_ANALYTICS_ENABLED": "False",
              "GRADIO_SSR_MODE": "False"}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def model(clip_dir):
    return grounding_model(clip_dir)


@pytest.fixture(scope="module")
def upload(env, tmp_path_factory):
    """A synthetic video file to upload: the shapes clip, copied under another name."""
    from modeling_mscl.demo.examples import ensure_example_videos

    (_, path), *_ = ensure_example_videos()
    target = tmp_path_factory.mktemp("upload") / "my_video.mp4"
    shutil.copyfile(path, target)
    return str(target)


def _serve(demo):
    from modeling_mscl.demo import launch_kwargs

    port = free_port()
    demo.queue().launch(**launch_kwargs(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                                        ssr_mode=False, allowed_paths=demo.mscl_allowed_paths))
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url)
    return url


@pytest.fixture(scope="module")
def app(chromium, env, model, tmp_path_factory):
    from transformers import pipeline

    from modeling_mscl.demo import GroundingDemo, build_demo

    pipe = pipeline(TASK, model=model, video_cache_dir=str(tmp_path_factory.mktemp("feature-cache")))
    demo = build_demo(GroundingDemo(pipe, model_name="tiny-random-mscl"))
    url = _serve(demo)
    yield {"url": url, "demo": demo, "pipe": pipe}
    demo.close()


def _open(page, url):
    page.goto(url)
    page.wait_for_selector("#mscl-submit")


def _upload(page, path):
    page.set_input_files("#mscl-video input[type=file]", path)
    page.wait_for_function("() => { const v = document.querySelector('#mscl-video video'); return v && v.readyState >= 1; }")


def _submit_and_wait(page, what=".mscl-table"):
    """Press the button and wait for a new answer (the answer box is replaced on every request)."""
    page.evaluate("() => { const a = document.querySelector('#mscl-answer .mscl-answer, #mscl-answer .mscl-message');"
                  " if (a) a.setAttribute('data-old', '1'); }")
    page.click("#mscl-submit")
    page.wait_for_selector(f"#mscl-answer {what}:not([data-old])" if what != ".mscl-table" else
                           "#mscl-answer .mscl-answer:not([data-old]) .mscl-table", timeout=180_000)


def _pick_example(page, label, sentence, stem):
    """Click an example and wait until its sentences *and* its video are in the form. Gradio loads an
    example's values in a round trip to the server; waiting for the text alone let a slow round trip land
    after the next ``fill`` and overwrite it."""
    page.get_by_text(label).click()
    page.wait_for_function(
        """([sentence, stem]) => { const v = document.querySelector('#mscl-video video');
            return document.querySelector('#mscl-sentences textarea').value.includes(sentence)
                && v && v.readyState >= 1 && decodeURIComponent(v.currentSrc).includes(stem + '.mp4'); }""",
        arg=[sentence, stem],
    )


def _set_slider(page, elem_id, value):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#{elem_id} input[type=range]').value == '{value}'")


def _seek_to(page, selector):
    page.click(selector)
    start = float(page.get_attribute(selector, "data-start"))
    page.wait_for_function(
        "s => { const v = document.querySelector('#mscl-video video'); return Math.abs(v.currentTime - s) < 1e-3 && !v.seeking; }",
        arg=start,
    )
    state = page.eval_on_selector("#mscl-video video", "v => [v.currentTime, v.paused]")
    return start, state


def _message(page):
    return page.inner_text("#mscl-answer .mscl-message")


# ----------------------------------------------------------------------------------------------------
def test_page_shows_the_pipelines_moments_and_seeks_the_video(app, chromium, upload, tmp_path, monkeypatch):
    with chromium_page(chromium) as page:
        _open(page, app["url"])
        _upload(page, upload)
        page.fill("#mscl-sentences textarea", "\n".join(SENTENCES))
        _set_slider(page, "mscl-topk", 3)
        _submit_and_wait(page)

        expected = rows_of(app["pipe"](upload, SENTENCES, top_k=3, threshold=0.0))
        table = page.eval_on_selector_all("#mscl-answer tr.mscl-row", ROWS_JS)
        assert table == expected and len(table) == 6
        boxes = sorted(page.eval_on_selector_all("#mscl-answer .mscl-moment", BOXES_JS), key=lambda b: (b[0], int(b[1])))
        assert [[q, s, e, sc] for q, _, s, e, sc in boxes] == expected
        head = page.inner_text("#mscl-answer .mscl-head")
        assert "my_video.mp4: 16.00 s, 80 features (features extracted in" in head and "2 sentences, top-3" in head
        assert page.eval_on_selector_all("#mscl-answer .mscl-film img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")

        # a click on a moment (its box on the timeline, then a row of the table) seeks the player there
        start, (now, paused) = _seek_to(page, '#mscl-answer .mscl-moment[data-key="1-1"]')
        assert start == float(expected[0][1]) and abs(now - start) < 1e-3 and paused
        start, (now, _) = _seek_to(page, '#mscl-answer tr.mscl-row[data-key="2-3"]')
        assert start == float(expected[5][1]) and abs(now - start) < 1e-3
        assert page.eval_on_selector_all("#mscl-answer .mscl-active", "es => es.map(e => e.dataset.key)") == ["2-3", "2-3"]
        assert "Video at" in page.inner_text("#mscl-answer .mscl-seek-status")

        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        stats = image_stats(shot)
        assert stats["shape"][1] == 1280 and stats["shape"][0] > 800
        assert stats["std"] > 20 and stats["colours"] > 100, stats  # a page, not a blank image
        copy = os.environ.get("MSCL_DEMO_SCREENSHOT_COPY")
        if copy:
            shutil.copyfile(shot, copy)

        # a second question about the same video: from the feature cache, nothing decoded
        opened = []
        real = vp._open
        monkeypatch.setattr(vp, "_open", lambda path, av: opened.append(path) or real(path, av))
        stats_before = dict(app["demo"].mscl.stats)
        page.fill("#mscl-sentences textarea", "\n".join(MORE_SENTENCES))
        _submit_and_wait(page)
        assert "features from the cache" in page.inner_text("#mscl-answer .mscl-head")
        assert opened == [], "the second question decoded the video again"
        stats_after = app["demo"].mscl.stats
        assert stats_after["cache_hits"] == stats_before["cache_hits"] + 1
        assert stats_after["extractions"] == stats_before["extractions"]
        assert page.eval_on_selector_all("#mscl-answer tr.mscl-row", ROWS_JS) == rows_of(
            app["pipe"](upload, MORE_SENTENCES, top_k=3, threshold=0.0))


def test_bad_inputs_show_messages_and_the_app_keeps_answering(app, chromium, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("shopping list: milk, eggs\n")
    with chromium_page(chromium) as page:
        _open(page, app["url"])
        # no video at all
        page.fill("#mscl-sentences textarea", SENTENCES[0])
        _submit_and_wait(page, ".mscl-message")
        assert "Upload a video file first" in _message(page)
        # a file that is not a video: the decoder's reason, named after the file the person uploaded
        page.set_input_files("#mscl-video input[type=file]", str(not_video))
        page.wait_for_timeout(500)
        _submit_and_wait(page, ".mscl-message")
        message = _message(page)
        assert "'notes.mp4': cannot be opened as a video" in message and "/tmp" not in message
        toasts = page.eval_on_selector_all("[data-testid='toast-body']", "ts => ts.map(t => t.innerText)")
        assert any("notes.mp4" in t for t in toasts), toasts
        # an example clip replaces it; an empty sentence list is refused
        page.click("#mscl-answer")  # (focus away from the toast)
        _pick_example(page, "shapes (16 s)", "red circle", "shapes")
        page.fill("#mscl-sentences textarea", " \n\n ")
        _submit_and_wait(page, ".mscl-message")
        assert "Type at least one sentence" in _message(page)
        # and the next request is answered (the long example: its extraction reports progress in the page)
        _pick_example(page, "long scene (180 s)", "blue square grows", "long_scene")
        page.evaluate(
            """() => { window.msclProgress = [];
                new MutationObserver(() => { const t = document.body.innerText;
                    const m = t.match(/Decoding and embedding long_scene\\.mp4: \\d+ \\/ 180 s of video/);
                    if (m) window.msclProgress.push(m[0]); })
                  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
        )
        _submit_and_wait(page)
        progress = page.evaluate("() => window.msclProgress")
        assert progress, "no extraction progress was shown"
        assert "long_scene.mp4: 180.00 s, 900 features" in page.inner_text("#mscl-answer .mscl-head")
        assert len(page.query_selector_all("#mscl-answer tr.mscl-row")) == 10


def test_checkpoint_without_video_extractor_says_so(chromium, env, upload, tmp_path):
    from transformers import pipeline

    from modeling_mscl.demo import GroundingDemo, build_demo

    demo = build_demo(GroundingDemo(pipeline(TASK, model=no_extractor_model(), video_cache_dir=str(tmp_path / "cache"))))
    url = _serve(demo)
    try:
        with chromium_page(chromium) as page:
            _open(page, url)
            banner = page.inner_text("#mscl-banner")
            assert "C3D clip features" in banner and "cannot ground an uploaded video" in banner
            assert page.query_selector("text=shapes (16 s)") is None  # no example clips for such a checkpoint
            _upload(page, upload)
            page.fill("#mscl-sentences textarea", "\n".join(SENTENCES))
            _submit_and_wait(page, ".mscl-message")
            assert "C3D clip features" in _message(page) and "How to produce them" in _message(page)
            page.fill("#mscl-sentences textarea", "")
            _submit_and_wait(page, ".mscl-message")  # still serving
            assert "Type at least one sentence" in _message(page)
    finally:
        demo.close()


# ----------------------------------------------------------------------------------------------------
# the Space: pushed to the fake Hub with its model, pulled, run without the package
# ----------------------------------------------------------------------------------------------------
SPACE_LAUNCHER = textwrap.dedent(
    """
    import os, runpy, sys

    class _NoPackage:  # a Space has no mscl package: everything must come from the Space and the model repo
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_mscl" or name.startswith("modeling_mscl."):
                raise ImportError("modeling_mscl is blocked in this process")
            return None

    sys.meta_path.insert(0, _NoPackage())
    space = sys.argv[1]
    os.chdir(space)
    sys.path.insert(0, space)
    import mscl_demo.app as app

    load = app.load_pipeline

    def reporting_load(*args, **kwargs):
        pipe = load(*args, **kwargs)
        print("PIPELINE", type(pipe).__module__, "modeling_mscl" in sys.modules, flush=True)
        return pipe

    app.load_pipeline = reporting_load
    runpy.run_path("app.py", run_name="__main__")
    """
)


def test_space_from_the_hub_runs_without_the_package(fake_hub, chromium, env, clip_dir, upload, tmp_path):
    from huggingface_hub import snapshot_download
    from transformers import pipeline

    from modeling_mscl.hub.publish import main as publish_main, push_folder

    # everything the Space loads lives on the (fake) Hub: the tiny CLIP (frames and sentences) and the model
    push_folder(clip_dir, "org/tiny-clip")
    model = grounding_model(clip_dir, **hub_sources("org/tiny-clip"))
    checkpoint = save_checkpoint(model, tmp_path / "mscl-clip")
    assert publish_main([str(checkpoint), "--repo-id", "org/mscl-clip", "--space", "org/mscl-clip-demo", "--no-verify"]) == 0
    space = Path(snapshot_download("org/mscl-clip-demo", repo_type="space", local_dir=str(tmp_path / "space")))
    assert (space / "app.py").is_file() and (space / "mscl_demo" / "app.py").is_file()

    port = free_port()
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != REPO_ROOT)
    environ.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), OMP_NUM_THREADS="1",
                   MSCL_VIDEO_FEATURES_CACHE=str(tmp_path / "space-cache"))
    log = open(tmp_path / "space.log", "w+")
    proc = subprocess.Popen([sys.executable, "-c", SPACE_LAUNCHER, str(space)], cwd=tmp_path, env=environ,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", timeout=300, proc=proc)
        except Exception:
            log.seek(0)
            pytest.fail("the Space app did not start:\n" + log.read()[-4000:])
        with chromium_page(chromium) as page:
            _open(page, f"http://127.0.0.1:{port}/")
            assert "org/mscl-clip" in page.inner_text(".mscl-title")
            _upload(page, upload)
            page.fill("#mscl-sentences textarea", "\n".join(SENTENCES))
            _submit_and_wait(page)
            shown = page.eval_on_selector_all("#mscl-answer tr.mscl-row", ROWS_JS)
        reference = pipeline(TASK, model=model, video_cache_dir=False)
        assert shown == rows_of(reference(upload, SENTENCES, top_k=5, threshold=0.0))
        log.seek(0)
        output = log.read()
        line = next(x for x in output.splitlines() if x.startswith("PIPELINE"))
        module, package_imported = line.split()[1:]
        # the model repo's remote code served the page; the package was never imported
        assert module.startswith("transformers_modules.") and package_imported == "False", line
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        time.sleep(0.2)
