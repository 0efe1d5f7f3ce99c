# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The web demo's logic without a browser (modeling_mscl/demo): answers equal the pipeline's, one pipeline
call per request, the feature cache on a second question, progress, thumbnails, example clips, the page's
HTML, and bad input turned into messages. The page itself is tested in a real browser in
tests/test_demo_browser.py."""

import html
import os
import re
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

import modeling_mscl.video_processing_mscl as vp  # noqa: E402
from modeling_mscl.demo import DemoInputError, GroundingDemo  # noqa: E402
from modeling_mscl.demo.examples import EXAMPLES, ensure_example_videos, render_frame  # noqa: E402
from modeling_mscl.demo.frames import frames_at  # noqa: E402
from modeling_mscl.demo.render import answer_html, fmt_score, fmt_seconds, message_html  # noqa: E402

from demo_helpers import grounding_model, no_extractor_model, rows_of  # noqa: E402
from video_helpers import make_tiny_clip, read_index, write_video  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TASK = "video-temporal-grounding"
SENTENCES = ["a red circle moves left", "the man opens the door", "a blue square"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def model(clip_dir):
    return grounding_model(clip_dir)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return str(write_video(tmp_path_factory.mktemp("movies") / "movie.mp4", 12 * 30, fps=30, size=(48, 64)))


@pytest.fixture
def pipe(model, tmp_path):
    from transformers import pipeline

    return pipeline(TASK, model=model, video_cache_dir=str(tmp_path / "cache"))


class _Recorder:
    """Stands in for ``gr.Progress``: records ``(fraction or (done, total), desc)``."""

    def __init__(self):
        self.calls = []

    def __call__(self, value, desc=None, **kwargs):
        self.calls.append((value, desc))


# ----------------------------------------------------------------------------------------------------
# answers
# ----------------------------------------------------------------------------------------------------
def test_answer_equals_the_pipeline_in_one_call(pipe, movie, monkeypatch):
    calls = []
    real_call = type(pipe).__call__
    with monkeypatch.context() as m:
        m.setattr(type(pipe), "__call__", lambda self, *a, **k: calls.append(a) or real_call(self, *a, **k))
        demo = GroundingDemo(pipe)
        answer = demo.ground(movie, "\n".join(SENTENCES) + "\n\n   \n", top_k=4, threshold=0.0)
    assert len(calls) == 1 and calls[0][1] == SENTENCES  # every sentence in one pipeline call, blank lines dropped
    expected = pipe(movie, SENTENCES, top_k=4, threshold=0.0)
    assert [r["query"] for r in answer.results] == SENTENCES
    for got, want in zip(answer.results, expected):
        assert got["moments"] == want["moments"]  # the very same numbers
        assert len(got["moments"]) == 4
    assert answer.duration == pytest.approx(12.0) and answer.num_features == 60 and not answer.from_cache
    # the page shows each moment at display precision, in the table and on the timeline
    page = answer.html
    for qi, start, end, score in rows_of(expected):
        assert re.search(
            rf'<tr class="mscl-row"[^>]*data-query="{qi}"[^>]*data-start="{start}" data-end="{end}" data-score="{score}"', page
        ), (qi, start, end, score)
        assert f'data-query="{qi}"' in page and f'<td class="num mscl-start">{start}</td>' in page
    assert page.count('class="mscl-moment"') == 12 and page.count('<tr class="mscl-row"') == 12
    # a threshold drops the weaker moments, exactly as the pipeline does
    cut = sorted(m["score"] for r in expected for m in r["moments"])[6]
    thresholded = demo.ground(movie, "\n".join(SENTENCES), top_k=4, threshold=cut)
    assert rows_of(thresholded.results) == rows_of(pipe(movie, SENTENCES, top_k=4, threshold=cut))
    assert sum(len(r["moments"]) for r in thresholded.results) == 6


def test_second_question_reads_the_cache_without_decoding(pipe, movie, monkeypatch):
    opened = []
    real = vp._open
    monkeypatch.setattr(vp, "_open", lambda path, av: opened.append(path) or real(path, av))
    demo = GroundingDemo(pipe)
    first = demo.ground(movie, SENTENCES[0], top_k=3)
    assert not first.from_cache and len(opened) == 1 and demo.stats["extractions"] == 1
    second = demo.ground(movie, "\n".join(SENTENCES[1:]), top_k=3)
    assert second.from_cache and demo.stats["cache_hits"] == 1
    assert len(opened) == 1, "the second question decoded the video again"
    assert "features from the cache" in second.summary and "features from the cache" not in first.summary
    # the same answers as a fresh pipeline on the same file
    np.testing.assert_array_equal(
        np.array(rows_of(second.results)), np.array(rows_of(pipe(movie, SENTENCES[1:], top_k=3)))
    )


def test_progress_follows_the_decoded_seconds(pipe, tmp_path):
    long_movie = str(write_video(tmp_path / "long.mp4", 40 * 10, fps=10, size=(32, 32)))
    progress = _Recorder()
    GroundingDemo(pipe).ground(long_movie, SENTENCES[0], progress=progress)
    fractions = [v for v, desc in progress.calls if isinstance(v, float) and desc and desc.startswith("Decoding")]
    assert len(fractions) >= 30, progress.calls  # about one update per second of video
    assert fractions == sorted(fractions) and 0 < fractions[0] < 0.1 and fractions[-1] > 0.9
    assert any("/ 40 s of video" in desc for _, desc in progress.calls if desc)
    assert progress.calls[-1][0] == 1.0 and progress.calls[-1][1].startswith("Grounding")
    # from the cache: no decoding progress at all
    again = _Recorder()
    GroundingDemo(pipe).ground(long_movie, SENTENCES[1], progress=again)
    assert not any(desc and desc.startswith("Decoding") for _, desc in again.calls)


def test_sampler_reports_progress_to_a_callable(tmp_path):
    path = write_video(tmp_path / "c.mkv", 5 * 30, fps=30, size=(32, 32), container_options={"live": "1"})
    seen = []
    sampler = vp.VideoFrameSampler(str(path), 5.0, progress=lambda done, total: seen.append((done, total)))
    assert len(list(sampler)) == 25
    assert [round(d) for d, _ in seen] == [1, 2, 3, 4] and all(t is None for _, t in seen)  # no stated duration


# ----------------------------------------------------------------------------------------------------
# bad input: a message for the page, and the next request still works
# ----------------------------------------------------------------------------------------------------
def test_bad_inputs_give_messages_and_the_demo_keeps_answering(pipe, movie, tmp_path):
    demo = GroundingDemo(pipe, max_sentences=5)
    upload = tmp_path / "gradio-upload-3f9a" / "holiday.mp4"
    upload.parent.mkdir()
    upload.write_text("this is a text file, not a video")
    cases = [
        ((str(upload), SENTENCES[0]), r"^'holiday\.mp4': cannot be opened as a video"),
        ((None, SENTENCES[0]), "Upload a video file first"),
        ((movie, ""), "Type at least one sentence"),
        ((movie, "  \n\n \t"), "Type at least one sentence"),
        ((movie, "\n".join(["a"] * 6)), "6 sentences: at most 5"),
        ((str(tmp_path / "gone.mp4"), SENTENCES[0]), "'gone.mp4' is not there any more"),
    ]
    for (video, text), message in cases:
        with pytest.raises(DemoInputError, match=message) as info:
            demo.ground(video, text)
        assert "gradio-upload-3f9a" not in str(info.value)  # no server paths in the page
        ok = demo.ground(movie, SENTENCES[0], top_k=2)
        assert len(ok.results[0]["moments"]) == 2
    with pytest.raises(DemoInputError, match="Top-k must be at least 1"):
        demo.ground(movie, SENTENCES[0], top_k=0)
    with pytest.raises(DemoInputError, match="between 0 and 1"):
        demo.ground(movie, SENTENCES[0], threshold=1.5)
    assert demo.stats["input_errors"] == 8 and demo.stats["answers"] == 6
    assert not any(p.suffix == ".npz" and "holiday" in p.name for p in (tmp_path / "cache").rglob("*"))


def test_checkpoint_without_a_video_extractor(tmp_path, movie):
    from transformers import pipeline

    demo = GroundingDemo(pipeline(TASK, model=no_extractor_model(), video_cache_dir=str(tmp_path / "cache")))
    assert not demo.reads_video_files
    banner = demo.no_extractor_message()
    assert "C3D clip features" in banner and "4096-d" in banner and "How to produce them" in banner
    with pytest.raises(DemoInputError, match="C3D clip features.*cannot ground an uploaded video"):
        demo.ground(movie, SENTENCES[0])
    with pytest.raises(DemoInputError, match="Type at least one sentence"):
        demo.ground(movie, " ")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


# ----------------------------------------------------------------------------------------------------
# the HTML of the answer
# ----------------------------------------------------------------------------------------------------
def test_answer_html_positions_opacity_and_escaping():
    results = [
        {"query": "<script>alert(1)</script> & co", "moments": [{"start": 2.0, "end": 5.0, "score": 0.9},
                                                               {"start": 0.0, "end": 10.0, "score": 0.2}]},
        {"query": "nothing", "moments": []},
    ]
    page = answer_html(results, 10.0, thumbnails={(0, 1): "data:image/jpeg;base64,AAAA"})
    assert "<script>alert" not in page and html.escape("<script>alert(1)</script> & co") in page
    box = re.search(r'<div role="button"[^>]*data-key="1-1"[^>]*style="([^"]*)"', page).group(1)
    assert "left:20.000%" in box and "width:30.000%" in box and "opacity:0.915" in box  # 0.15 + 0.85 * score
    weak = re.search(r'data-key="1-2"[^>]*style="([^"]*)"', page).group(1)
    assert "left:0.000%" in weak and "width:100.000%" in weak and "opacity:0.32" in weak
    # the weaker box is drawn first, so the stronger one is on top where they overlap
    assert page.index('data-key="1-2" data-query') < page.index('data-key="1-1" data-query')
    assert page.count("no moment at or above the threshold") == 2  # its timeline and its table row
    assert 'src="data:image/jpeg;base64,AAAA"' in page
    assert fmt_seconds(1.005) in ("1.00", "1.01") and fmt_score(0.12345) == "0.123"
    assert 'role="alert"' in message_html("x <b>", "error") and "x &lt;b&gt;" in message_html("x <b>")


# ----------------------------------------------------------------------------------------------------
# thumbnails and example clips
# ----------------------------------------------------------------------------------------------------
def test_thumbnails_are_the_frames_on_screen(tmp_path):
    path = write_video(tmp_path / "idx.mp4", 90, fps=30, size=(64, 64), gop=12)
    times = [0.0, 0.01, 0.52, 0.55, 1.0, 1.7, 2.99, 5.0]
    frames = frames_at(str(path), times, height=64, reseek_after=0.2)
    # frame k is on screen during [k/30, (k+1)/30); past the end: the last frame
    expected = {t: min(int(Fraction(t).limit_denominator(1000) * 30), 89) for t in times}
    assert {t: read_index(img) for t, img in frames.items()} == expected
    assert all(img.shape == (64, 64, 3) for img in frames.values())


def test_example_clips_are_written_once_and_show_their_events(tmp_path):
    pairs = ensure_example_videos(str(tmp_path / "ex"))
    assert [e.name for e, _ in pairs] == [e.name for e in EXAMPLES] and len(pairs) >= 2
    mtimes = {p: os.stat(p).st_mtime_ns for _, p in pairs}
    assert ensure_example_videos(str(tmp_path / "ex")) == pairs
    assert {p: os.stat(p).st_mtime_ns for _, p in pairs} == mtimes  # reused, not rewritten
    assert not [p for p in (tmp_path / "ex").rglob(".*")]  # no temporary file left behind
    info = vp.probe_video(pairs[0][1])
    example = pairs[0][0]
    assert info.stated_duration == pytest.approx(example.duration, abs=0.05)
    # the clip shows what its sentences say, when they say it
    for sentence, start, end in example.events:
        assert sentence in example.sentences
        middle = (start + end) / 2
        got = frames_at(pairs[0][1], [middle], height=example.size[0])[middle].astype(float)
        want = render_frame(example, middle).astype(float)
        assert np.abs(got - want).mean() < 6.0
        before = render_frame(example, max(start - 1.0, 0.0))
        assert np.abs(want - before).mean() > 2.0  # the event changes the picture


def test_command_line_reports_a_bad_model(tmp_path, capsys):
    from modeling_mscl.demo.cli import main

    assert main(["--model", str(tmp_path / "missing")]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["--shapes-demo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no shapes demo in" in err and "modeling_mscl.data.shapes_demo" in err


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def test_shapes_demo_grounds_its_example_clips(tmp_path):
    from modeling_mscl.demo.cli import default_shapes_demo_dir, load_shapes_demo, shapes_demo_examples

    if not (default_shapes_demo_dir() / "model" / "config.json").is_file():
        pytest.skip(f"no shapes demo in {default_shapes_demo_dir()} (notebooks/shapes_demo of the checkout)")
    demo = GroundingDemo(load_shapes_demo(video_cache_dir=str(tmp_path / "cache")))
    assert demo.reads_video_files
    examples = shapes_demo_examples(str(tmp_path / "ex"))
    assert len(examples) == 3 and all(os.path.isfile(p) for p, *_ in examples)
    assert [os.stat(p).st_mtime_ns for p, *_ in shapes_demo_examples(str(tmp_path / "ex"))] == \
        [os.stat(p).st_mtime_ns for p, *_ in examples]  # written once
    hits = total = 0
    for path, text, _label, spec in examples:
        answer = demo.ground(path, text, top_k=1)
        assert [r["query"] for r in answer.results] == text.splitlines()
        assert answer.duration == pytest.approx(spec["duration"], abs=0.11)
        for result, event in zip(answer.results, spec["events"]):
            best = result["moments"][0]
            hits += _iou((best["start"], best["end"]), (event["start"], event["end"])) >= 0.5
            total += 1
    # a trained model: most of its top moments are the events the sentences describe (its card: R1@0.5 ~ 82 %)
    print(f"top-1 moments on the events: {hits} of {total}")
    assert total >= 9 and hits / total >= 0.6, (hits, total)
