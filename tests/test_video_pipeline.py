# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``pipe("movie.mp4", queries)``: the pipeline grounds sentences in a video file (decode, extract, cache).

A tiny random CLIP (tests/video_helpers.py) is both the frame extractor and the sentence encoder of a tiny
checkpoint, as openai/clip-vit-base-patch32 is for ``mad_clip``.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from conftest import tiny_config

pytest.importorskip("av")

import modeling_mscl.video_processing_mscl as vp  # noqa: E402
from modeling_mscl import MSCLConfig, MSCLForTemporalGrounding  # noqa: E402
from modeling_mscl.video_features_mscl import NoVideoExtractorError, extract_video_features  # noqa: E402

from video_helpers import (  # noqa: E402
    cache_files,
    clip_source,
    make_tiny_clip,
    truncate_half,
    write_audio_only,
    write_video,
    write_zero_frame_video,
)

TASK = "video-temporal-grounding"
SENTENCES = ["a red circle moves left", "the man opens the door", "a blue square"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(clip_dir, seed=0, **overrides):
    values = dict(
        video_input_dim=16, text_input_dim=16, fps=5.0, clip_size=1, clip_stride=1,
        pre_nms_threshold=0.0, nms_min_score=0.0,  # random weights: keep every query's top moments
        video_feature_source=clip_source(clip_dir),
        text_feature_source={"type": "hf", "name_or_path": str(clip_dir), "layout": "clip_text_tokens"},
    )
    values.update(overrides)
    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(tiny_config(**values)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # spread the scores out (no near-ties in Soft-NMS)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def _moments(result):
    return np.array([[m["start"], m["end"], m["score"]] for m in result["moments"]], dtype=np.float64).reshape(-1, 3)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def model(clip_dir):
    return _model(clip_dir, seed=3)


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    root = tmp_path_factory.mktemp("movies")
    return {
        "a": write_video(root / "a.mp4", 12 * 30, fps=30, size=(48, 64)),  # 12 s: 60 features
        "b": write_video(root / "b.mkv", 200, times_ms=[int(k * 41.7) for k in range(200)]),  # ~8.3 s, mkv
    }


@pytest.fixture
def pipe(model, tmp_path):
    return pipeline(TASK, model=model, video_cache_dir=str(tmp_path / "cache"))


def test_moments_from_a_file_equal_moments_from_its_features(pipe, movies, clip_dir, tmp_path):
    path = str(movies["a"])
    from_file = pipe(path, SENTENCES, top_k=4)
    feats = extract_video_features(path, clip_source(clip_dir), use_cache=False)
    assert feats.features.shape == (60, 16) and feats.duration == pytest.approx(12.0)
    from_array = pipe(feats.features, SENTENCES, duration=feats.duration, top_k=4)
    assert [r["query"] for r in from_file] == SENTENCES
    for a, b in zip(from_file, from_array):
        assert set(a) == {"query", "moments"}
        np.testing.assert_allclose(_moments(a), _moments(b), atol=1e-6, rtol=0)
        assert len(a["moments"]) == 4 and all(0.0 <= m["start"] <= m["end"] <= 12.0 for m in a["moments"])
    # the pipeline's own extraction is the same
    np.testing.assert_allclose(pipe.extract_video_features(path).features, feats.features, atol=1e-6, rtol=0)


def test_second_question_about_the_same_file_decodes_nothing(pipe, movies, tmp_path, monkeypatch):
    opened = []
    real = vp._open
    monkeypatch.setattr(vp, "_open", lambda path, av: opened.append(path) or real(path, av))
    first = pipe(str(movies["a"]), SENTENCES[0])
    assert len(opened) == 1 and len(cache_files(tmp_path / "cache")) == 1
    # another pipeline on the same cache (a new session), another question: no decoding, no extractor weights
    other = pipeline(TASK, model=pipe.model, video_cache_dir=str(tmp_path / "cache"))
    second = other(str(movies["a"]), SENTENCES[1])
    third = other(str(movies["a"]), SENTENCES[0])
    assert len(opened) == 1, "the second question decoded the video again"
    assert other.video_extractor._model is None
    np.testing.assert_allclose(_moments(first), _moments(third), atol=1e-6, rtol=0)
    assert second["query"] == SENTENCES[1]


def test_list_of_video_dicts_with_paths(pipe, movies):
    batch = [{"video": str(movies["a"]), "queries": SENTENCES[:2]}, {"video": str(movies["b"]), "queries": [SENTENCES[2]]}]
    results = pipe(batch, top_k=3)
    assert len(results) == 2 and len(results[0]) == 2 and len(results[1]) == 1
    for item, result in zip(batch, results):
        alone = pipe(item["video"], item["queries"], top_k=3)
        for a, b in zip(result, alone):
            np.testing.assert_allclose(_moments(a), _moments(b), atol=1e-6, rtol=0)
    # the mkv's duration comes from its frames' timeline (~8.3 s), and moments stay inside it
    duration = pipe.extract_video_features(str(movies["b"])).duration
    assert 8.2 < duration < 8.4
    assert results[1][0]["moments"] and max(m["end"] for m in results[1][0]["moments"]) <= duration + 1e-9


def test_time_mapping_of_a_file_is_the_checkpoints(pipe, movies):
    path = str(movies["a"])
    with pytest.raises(ValueError, match=r"a\.mp4.*checkpoint's sampling.*fps=10"):
        pipe(path, SENTENCES[0], fps=10.0)
    with pytest.raises(ValueError, match="clip_stride"):
        pipe({"video": path, "queries": SENTENCES[0], "clip_stride": 2})
    same = pipe(path, SENTENCES[0], fps=5.0)  # equal to the checkpoint's: fine
    np.testing.assert_allclose(_moments(same), _moments(pipe(path, SENTENCES[0])), atol=1e-9)
    clamped = pipe(path, SENTENCES[0], duration=4.0)
    assert clamped["moments"] and max(m["end"] for m in clamped["moments"]) <= 4.0


def test_checkpoint_whose_features_have_no_extractor(movies, tmp_path):
    model = MSCLForTemporalGrounding(tiny_config()).eval()
    pipe = pipeline(TASK, model=model, video_cache_dir=str(tmp_path / "cache"))
    with pytest.raises(NoVideoExtractorError) as err:
        pipe(str(movies["a"]), np.zeros((3, 32), np.float32))
    text = str(err.value)
    assert str(movies["a"]) in text and "synthetic 32-d features" in text and "(T, 32)" in text and "How to produce" in text
    tacos = MSCLForTemporalGrounding(MSCLConfig.from_preset("tacos_c3d", hidden_size=16, text_hidden_size=16,
                                                           num_attention_heads=2, text_num_layers=1)).eval()
    with pytest.raises(ValueError, match=r"C3D clip features.*4096-d.*C3D network.*\(T, 4096\)"):
        pipeline(TASK, model=tacos, video_cache_dir=str(tmp_path / "cache"))(str(movies["a"]), np.zeros((3, 300), np.float32))
    assert cache_files(tmp_path / "cache") == []


def test_bad_files_name_the_file_and_write_nothing(pipe, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 40)
    full = write_video(tmp_path / "full.mp4", 300, fps=30, container_options={"movflags": "faststart"})
    cases = {
        str(tmp_path / "missing.mp4"): "not found",
        str(text): "cannot be opened as a video",
        str(write_zero_frame_video(tmp_path / "empty.mkv")): "no decodable video frame",
        str(truncate_half(full, tmp_path / "cut.mp4")): "truncated or damaged",
        str(write_audio_only(tmp_path / "speech.m4a")): "has no video stream",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            pipe(path, SENTENCES[0])
        assert path in str(err.value)
    assert cache_files(tmp_path / "cache") == []
    # asked for explicitly, the decodable part of the truncated file is grounded and every result says so
    part = pipe(str(tmp_path / "cut.mp4"), SENTENCES[:2], allow_partial=True)
    for r in part:
        assert r["partial"] is True and 1.0 < r["decoded_duration"] < 9.0
        assert all(m["end"] <= r["decoded_duration"] + 1e-9 for m in r["moments"])
    assert cache_files(tmp_path / "cache") == []
    with pytest.raises(ValueError, match="allow_partial must be True or False"):
        pipe(str(full), SENTENCES[0], allow_partial="yes")


def test_progress_bar_while_decoding(pipe, movies, capsys):
    pipe(str(movies["b"]), SENTENCES[0], progress=True)
    assert "decoding b.mkv" in capsys.readouterr().err


@pytest.mark.slow
def test_fresh_process_grounds_a_file_without_the_package(model, movies, clip_dir, tmp_path):
    folder = tmp_path / "checkpoint"
    pipe = pipeline(TASK, model=model, video_cache_dir=False)
    model.save_pretrained(folder)
    pipe.save_pretrained(folder)
    for name in ("pipeline_mscl.py", "video_features_mscl.py", "video_processing_mscl.py"):
        assert (folder / name).is_file(), name
    for py in folder.glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+modeling_mscl\b", py.read_text(), flags=re.MULTILINE), py.name
    assert json.loads((folder / "config.json").read_text())["video_feature_source"]["name_or_path"] == str(clip_dir)
    script = textwrap.dedent(
        f"""
        import json, sys
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)
        out = pipe({str(movies["a"])!r}, {SENTENCES!r}, top_k=3)
        again = pipe({str(movies["a"])!r}, {SENTENCES[:1]!r}, top_k=3)
        print(json.dumps({{"out": out, "again": again, "leaked": "modeling_mscl" in sys.modules, "cls": type(pipe).__module__}}))
        """
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["leaked"] is False and answer["cls"].startswith("transformers_modules.")
    local = pipe(str(movies["a"]), SENTENCES, top_k=3)
    for remote, mine in zip(answer["out"], local):
        np.testing.assert_allclose(_moments(remote), _moments(mine), atol=1e-5, rtol=0)
    # the fresh process cached the features under its own HF_HOME
    assert len(cache_files(Path(tmp_path / "hf_home" / "mscl" / "video_features"))) == 1
