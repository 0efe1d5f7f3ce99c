# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""``python -m modeling_mscl.data.extract_features``: a folder of videos → ``<video_id>.npy`` + manifest, resume,
failure report and exit status, presets, several processes under ``accelerate launch``, and the output read
back by ``python -m modeling_mscl.data.convert``."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

import modeling_mscl.video_processing_mscl as vp  # noqa: E402
from modeling_mscl.data.extract_features import find_videos, main, read_manifest  # noqa: E402
from modeling_mscl.video_features_mscl import extract_video_features  # noqa: E402

from video_helpers import clip_source, make_tiny_clip, truncate_half, write_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture
def video_dir(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    write_video(d / "kitchen.mp4", 60, fps=30)
    write_video(d / "street.mkv", 45, fps=15, size=(48, 64))
    write_video(d / "garden.webm", 50, fps=25)
    (d / "broken.mp4").write_text("this file is not a video\n" * 30)
    full = write_video(tmp_path / "full.mkv", 240, fps=30)
    truncate_half(full, d / "cut.mkv")
    (d / "notes.txt").write_text("not a video extension: ignored")
    return d


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = vp._open
    monkeypatch.setattr(vp, "_open", lambda path, av: calls.append(os.path.basename(path)) or real(path, av))
    return calls


def _run(*args):
    return main([str(a) for a in args] + ["--no-progress"])


def test_extracts_every_video_reports_failures_and_resumes(clip_dir, video_dir, tmp_path, capsys, count_decodes):
    out = tmp_path / "feats"
    status = _run("--videos", video_dir, "--extractor", clip_dir, "--fps", 5, "--output", out, "--batch-size", 4)
    assert status == 1  # something failed
    err = capsys.readouterr().err
    assert "2 video(s) FAILED" in err and "broken" in err and "cannot be opened as a video" in err
    assert "cut" in err and "truncated or damaged" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["garden.npy", "kitchen.npy", "street.npy"]
    manifest = read_manifest(str(out))
    assert sorted(manifest["videos"]) == ["garden", "kitchen", "street"] and sorted(manifest["failures"]) == ["broken", "cut"]
    assert manifest["sampling"] == {"fps": 5.0, "clip_size": 1.0, "clip_stride": 1.0}
    assert manifest["extractor"]["name_or_path"] == str(clip_dir) and manifest["extractor"]["output"] == "image_embeds"
    for vid, name in (("kitchen", "kitchen.mp4"), ("street", "street.mkv"), ("garden", "garden.webm")):
        saved = np.load(out / f"{vid}.npy", allow_pickle=False)
        expected = extract_video_features(str(video_dir / name), clip_source(clip_dir), use_cache=False, batch_size=4)
        np.testing.assert_array_equal(saved, expected.features)
        entry = manifest["videos"][vid]
        assert entry["num_features"] == saved.shape[0] and entry["dim"] == 16
        assert entry["duration"] == pytest.approx(expected.duration) and entry["source"] == str(video_dir / name)
    assert manifest["videos"]["kitchen"]["num_features"] == 10  # 2 s at 5 features per second
    assert not list(out.glob(".manifest.rank*"))

    # resume: finished videos are skipped, failed ones retried
    count_decodes.clear()
    mtime = (out / "kitchen.npy").stat().st_mtime_ns
    assert _run("--videos", video_dir, "--extractor", clip_dir, "--fps", 5, "--output", out) == 1
    assert sorted(count_decodes) == ["broken.mp4", "cut.mkv"] and (out / "kitchen.npy").stat().st_mtime_ns == mtime
    assert "already done 3" in capsys.readouterr().out
    # a video that changed is extracted again
    write_video(video_dir / "kitchen.mp4", 30, fps=30)
    os.remove(video_dir / "broken.mp4")
    count_decodes.clear()
    assert _run("--videos", video_dir, "--extractor", clip_dir, "--fps", 5, "--output", out, "--allow-partial") == 0
    assert sorted(count_decodes) == ["cut.mkv", "kitchen.mp4"]
    manifest = read_manifest(str(out))
    assert manifest["videos"]["kitchen"]["num_features"] == 5 and manifest["failures"] == {}
    assert manifest["videos"]["cut"]["partial"] is True and "broken" not in manifest["videos"]


def test_a_killed_run_resumes_from_its_journal(clip_dir, video_dir, tmp_path, monkeypatch, count_decodes):
    out = tmp_path / "feats"
    import modeling_mscl.video_features_mscl as vf

    real = vf.extract_video_features
    seen = []

    def dies_on_the_second(path, *a, **k):
        seen.append(path)
        if len(seen) == 2:
            raise KeyboardInterrupt("killed")
        return real(path, *a, **k)

    monkeypatch.setattr(vf, "extract_video_features", dies_on_the_second)
    videos = [video_dir / "garden.webm", video_dir / "kitchen.mp4"]
    with pytest.raises(KeyboardInterrupt):
        _run("--videos", *videos, "--extractor", clip_dir, "--fps", 5, "--output", out)
    assert (out / "garden.npy").is_file() and not (out / "kitchen.npy").exists() and read_manifest(str(out)) is None
    monkeypatch.setattr(vf, "extract_video_features", real)
    count_decodes.clear()
    assert _run("--videos", *videos, "--extractor", clip_dir, "--fps", 5, "--output", out) == 0
    assert count_decodes == ["kitchen.mp4"]
    assert sorted(read_manifest(str(out))["videos"]) == ["garden", "kitchen"]


def test_presets_and_conflicting_arguments(clip_dir, video_dir, tmp_path, capsys):
    out = tmp_path / "mad"
    # the preset's extractor and sampling, with its model replaced by a local copy (here: the stand-in)
    assert _run("--videos", video_dir / "kitchen.mp4", "--preset", "mad_clip", "--extractor", clip_dir, "--output", out) == 0
    manifest = read_manifest(str(out))
    assert manifest["preset"] == "mad_clip" and manifest["extractor"]["model_class"] == "CLIPVisionModelWithProjection"
    assert manifest["extractor"]["image_processor_backend"] == "pil" and manifest["extractor"]["normalize"] is None
    assert manifest["time_mapping"] == {"fps": 5.0, "clip_size": 1.0, "clip_stride": 1.0} and "--preset mad_clip" in manifest["convert"]
    capsys.readouterr()
    cases = [
        (["--preset", "tacos_c3d"], r"C3D clip features.*no Hugging Face"),
        (["--preset", "mad_clip", "--fps", "2"], "samples at 5 features per second"),
        (["--preset", "mad_clip", "--feature-output", "pooler_output"], "cannot be combined with --preset"),
        (["--extractor", str(clip_dir)], "needs --fps"),
        ([], "give --preset"),
    ]
    for extra, message in cases:
        assert _run("--videos", video_dir, "--output", tmp_path / "x", *extra) == 2
        assert __import__("re").search(message, capsys.readouterr().err), message
    # another extractor into the same folder is refused; --overwrite starts afresh
    assert _run("--videos", video_dir / "kitchen.mp4", "--extractor", clip_dir, "--fps", 2.5, "--output", out) == 2
    assert "another extractor or sampling" in capsys.readouterr().err
    assert _run("--videos", video_dir / "kitchen.mp4", "--extractor", clip_dir, "--fps", 2.5, "--output", out, "--overwrite") == 0
    assert read_manifest(str(out))["videos"]["kitchen"]["num_features"] == 5


def test_video_ids_must_be_unique(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_video(tmp_path / "a" / "clip.mp4", 5)
    write_video(tmp_path / "b" / "clip.mkv", 5)
    assert [v for v, _ in find_videos([str(tmp_path / "a")])] == ["clip"]
    with pytest.raises(ValueError, match="share a video id.*clip"):
        find_videos([str(tmp_path)], recursive=True)


def test_output_is_read_by_convert(clip_dir, video_dir, tmp_path):
    from modeling_mscl.data.loading import load_grounding_dataset

    feats = tmp_path / "feats"
    videos = [video_dir / "kitchen.mp4", video_dir / "street.mkv"]
    assert _run("--videos", *videos, "--extractor", clip_dir, "--fps", 5, "--output", feats) == 0
    manifest = read_manifest(str(feats))
    ann = {vid: {"duration": manifest["videos"][vid]["duration"], "timestamps": [[0.4, 1.2]], "sentences": [f"{vid} event"]}
           for vid in ("kitchen", "street")}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    tm = manifest["time_mapping"]
    from modeling_mscl.data.convert import main as convert_main  # python -m modeling_mscl.data.convert

    argv = ["--format", "activitynet", "--annotations", str(tmp_path / "ann.json"), "--video-features", str(feats),
            "--output", str(tmp_path / "ds"), "--split", "train", "--fps", str(tm["fps"]), "--clip-size", str(tm["clip_size"]),
            "--clip-stride", str(tm["clip_stride"]), "--text-dim", "16", "--no-progress"]
    assert convert_main(argv) == 0
    rows = {r["video_id"]: r for r in load_grounding_dataset(tmp_path / "ds", "train", streaming=False)}
    assert sorted(rows) == ["kitchen", "street"]
    for vid in rows:
        np.testing.assert_array_equal(rows[vid]["video_features"], np.load(feats / f"{vid}.npy"))
        assert rows[vid]["fps"] == 5.0 and rows[vid]["clip_size"] == 1.0


def test_clear_cache_command(clip_dir, video_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    extract_video_features(str(video_dir / "kitchen.mp4"), clip_source(clip_dir), cache_dir=str(cache))
    assert main(["--clear-cache", "--cache-dir", str(cache)]) == 0
    assert "removed 1 cached feature file(s)" in capsys.readouterr().out
    assert not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(clip_dir, tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    for i in range(5):
        write_video(d / f"v{i}.mp4", 15 + 5 * i, fps=15)
    (d / "v5.mp4").write_text("corrupt")
    out = tmp_path / "feats"
    cmd = [shutil.which("accelerate") or "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "modeling_mscl.data.extract_features",
           "--videos", str(d), "--extractor", str(clip_dir), "--fps", "5", "--output", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "home"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode != 0, "a corrupt video must make the launch fail"
    assert "[rank 0/2] extracted 3" in done.stdout and "[rank 1/2] extracted 2" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "v5 (" in done.stderr and "1 video(s) FAILED" in done.stderr
    manifest = read_manifest(str(out))
    assert sorted(manifest["videos"]) == [f"v{i}" for i in range(5)] and list(manifest["failures"]) == ["v5"]
    for i in range(5):
        duration = (15 + 5 * i) / 15
        assert np.load(out / f"v{i}.npy").shape == (sum(1 for j in range(20) if (j + 0.5) / 5 < duration), 16)
    assert not list(out.glob(".manifest.rank*"))
