# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Converters: exact counts on the real annotation files, every format on synthetic files, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_mscl.configuration_mscl import MSCLConfig
from modeling_mscl.data.convert import (
    ArrayFeatures,
    convert,
    expected_num_features,
    main,
    read_annotations,
)
from modeling_mscl.data.loading import load_grounding_dataset
from modeling_mscl.data.schema import read_metadata

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANN = SHARED / "data" / "annotations"
DIM = 8


def need_shared():
    if not ANN.is_dir():
        pytest.skip("../shared not found: real annotation files are only in the development checkout")


def parse_summary(text):
    """``{key: count}`` from the printed summary table."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].replace("_", "").isalnum() and parts[1].replace(",", "").isdigit():
            out[parts[0]] = int(parts[1].replace(",", ""))
    return out


def stand_in_features(parsed, fps, clip_size, clip_stride, dim=DIM):
    """Features of the length a real extractor gives, generated lazily (no files for 10k videos)."""
    lengths = {}
    for video in parsed.videos:
        key = video.keys()[0][0]
        lengths[key] = expected_num_features(video.duration, video.fps or fps, clip_size, clip_stride)

    def get(key):
        if key not in lengths:
            return None
        return np.full((lengths[key], dim), 0.25, np.float32)

    return ArrayFeatures(get, shapes=lambda key: (lengths[key], dim) if key in lengths else None)


# ----------------------------------------------------------------------------------------------------
# Real files
# ----------------------------------------------------------------------------------------------------
# (format, file, split, preset, expected counts). Counting rules are in convert.py's docstring.
REAL = [
    ("charades-sta", "charades_sta/charades_sta_train.txt", "train", "charades_i3d",
     dict(videos_in=5338, annotations_in=12408, dropped_inverted=4, clipped_end=1802, clipped_start=0,
          videos_dropped_no_queries=2, videos_out=5336, queries_out=12404)),
    ("charades-sta", "charades_sta/charades_sta_test.txt", "test", "charades_i3d",
     dict(videos_in=1334, annotations_in=3720, dropped_inverted=0, clipped_end=562, videos_out=1334, queries_out=3720)),
    ("tacos-2dtan", "tacos/train.json", "train", "tacos_c3d",
     dict(videos_in=75, annotations_in=9790, clipped_end=43, videos_out=75, queries_out=9790)),
    ("tacos-2dtan", "tacos/val.json", "val", "tacos_c3d",
     dict(videos_in=27, annotations_in=4436, clipped_end=0, queries_out=4436)),
    ("tacos-2dtan", "tacos/test.json", "test", "tacos_c3d",
     dict(videos_in=25, annotations_in=4001, clipped_end=5, queries_out=4001)),
    ("activitynet", "activitynet_captions/train.json", "train", "anet_c3d",
     dict(videos_in=10009, annotations_in=37421, dropped_inverted=2, dropped_zero_length=2, clipped_end=29,
          clipped_float_noise=232, videos_out=10009, queries_out=37417)),
    ("activitynet", "activitynet_captions/val_1.json", "val_1", "anet_c3d",
     dict(videos_in=4917, annotations_in=17505, dropped_inverted=0, clipped_end=5, clipped_float_noise=129, queries_out=17505)),
    ("qvhighlights", "qvhighlights/highlight_val_release.jsonl", "val", None,
     dict(source_queries=1550, source_queries_multi_window=530, annotations_in=2803, videos_in=1519, clipped_end=0,
          videos_out=1519, queries_out=2803)),
]


@pytest.mark.parametrize("fmt, rel, split, preset, expected", REAL, ids=[f"{r[0]}-{r[2]}" for r in REAL])
def test_real_annotation_counts(tmp_path, capsys, fmt, rel, split, preset, expected):
    need_shared()
    parsed = read_annotations(fmt, str(ANN / rel))
    if preset:
        p = MSCLConfig.load_preset_dict(preset)
        fps, cs, st = p["fps"], p["clip_size"], p["clip_stride"]
        kw = {"preset": preset}
    else:  # QVHighlights: 2-second clips
        fps, cs, st = 1.0, 2.0, 2.0
        kw = {"fps": fps, "clip_size": cs, "clip_stride": st, "text_dim": 16}
    summary = convert(fmt, parsed, stand_in_features(parsed, fps, cs, st), str(tmp_path / "ds"), split, progress=False, **kw)
    for key, value in expected.items():
        assert summary[key] == value, (key, summary[key], value)
    assert summary["videos_dropped_missing_features"] == 0 and summary["videos_feature_length_mismatch"] == 0
    # The printed summary carries the same numbers.
    printed = parse_summary(summary.format_table())
    for key, value in expected.items():
        assert printed[key] == value, key
    meta = read_metadata(tmp_path / "ds")
    assert meta["splits"][split]["num_queries"] == expected["queries_out"]
    assert meta["splits"][split]["conversion"]["counts"]["queries_out"] == expected["queries_out"]
    if fmt == "qvhighlights":
        ds = load_grounding_dataset(tmp_path / "ds", split, streaming=False, columns=["video_id", "queries"])
        ids = [q["query_id"] for row in ds for q in row["queries"]]
        assert len(ids) == len(set(ids)) == 2803
        assert all(i.rsplit("_", 1)[1].isdigit() for i in ids)  # "{qid}_{k}"
    if fmt == "tacos-2dtan":
        ds = load_grounding_dataset(tmp_path / "ds", split, streaming=False, columns=["video_id", "fps", "downsample_rate", "duration"])
        assert ds[0]["downsample_rate"] == 4 and 25 < ds[0]["fps"] < 35  # fps from the file


def test_real_charades_policy_drop_and_cli_subset(tmp_path, capsys):
    """The CLI on a small Charades-STA subset with real feature files, both policies."""
    need_shared()
    lines = (ANN / "charades_sta" / "charades_sta_train.txt").read_text().splitlines()
    subset = tmp_path / "subset.txt"
    subset.write_text("\n".join(lines[:60]) + "\n")
    parsed = read_annotations("charades-sta", str(subset), durations=[str(ANN / "charades_sta" / "Charades_v1_train.csv")])
    feat_dir = tmp_path / "feats"
    feat_dir.mkdir()
    for video in parsed.videos[:-1]:  # the last video's features are missing
        n = expected_num_features(video.duration, 24.0, 16, 4)
        np.save(feat_dir / f"{video.video_id}.npy", np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32))
    common = ["--format", "charades-sta", "--annotations", str(subset), "--durations", str(ANN / "charades_sta" / "Charades_v1_train.csv"),
              "--video-features", str(feat_dir), "--preset", "charades_i3d", "--no-progress"]
    assert main(common + ["--output", str(tmp_path / "clip"), "--split", "train", "--summary-json", str(tmp_path / "s.json")]) == 0
    printed = parse_summary(capsys.readouterr().out)
    clipped = sum(1 for v in parsed.videos[:-1] for q in v.queries if q.end > v.duration and q.end >= q.start)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert printed == summary["counts"]
    assert summary["counts"]["clipped_end"] == clipped > 0
    assert summary["counts"]["videos_dropped_missing_features"] == 1
    assert summary["examples"]["videos_dropped_missing_features"] == [parsed.videos[-1].video_id]
    assert main(common + ["--output", str(tmp_path / "drop"), "--split", "train", "--policy", "drop",
                          "--summary-json", str(tmp_path / "d.json")]) == 0
    dropped = json.loads((tmp_path / "d.json").read_text())["counts"]
    assert dropped["dropped_out_of_range"] == clipped and dropped.get("clipped_end", 0) == 0
    assert dropped["queries_out"] == summary["counts"]["queries_out"] - clipped
    # --strict turns the missing file into an error, and nothing is written.
    assert main(common + ["--output", str(tmp_path / "strict"), "--split", "train", "--strict"]) == 1
    assert "features not found" in capsys.readouterr().err and not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_cli_runs_as_module(tmp_path):
    """``python -m modeling_mscl.data.convert`` works end to end (one subprocess: imports are slow)."""
    ann = {"train": {"vA": {"fps": 10.0, "num_frames": 100, "annotations": [{"segment": [1.0, 4.0], "sentence": "a dog runs"}]}}}
    (tmp_path / "a.json").write_text(json.dumps(ann))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "vA.npy", np.ones((25, DIM), np.float32))
    cmd = [sys.executable, "-m", "modeling_mscl.data.convert", "--format", "snag", "--annotations", str(tmp_path / "a.json"),
           "--video-features", str(tmp_path / "f"), "--clip-size", "4", "--clip-stride", "4", "--text-dim", "5",
           "--output", str(tmp_path / "ds"), "--split", "train"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "queries_out" in res.stdout and "Conversion summary" in res.stdout


def test_cli_unknown_format(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--format", "nope", "--annotations", "x", "--video-features", "x", "--output", "x", "--split", "x"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# Synthetic files per format
# ----------------------------------------------------------------------------------------------------
def test_snag_json(tmp_path):
    ann = {
        "train": {
            "v1": {"fps": 25.0, "num_frames": 250, "annotations": [
                {"segment": [1.0, 3.0], "sentence": "first", "sentence_id": "s1"},
                {"segment": [-0.5, 12.0], "sentence": "second"},
                {"segment": [5.0, 5.0], "sentence": "zero"},
            ]},
            "v2": {"fps": 30.0, "num_frames": 300, "duration": 9.5, "annotations": []},
        },
        "test": {"v3": {"fps": 25.0, "num_frames": 100, "annotations": [{"segment": [0.0, 1.0], "sentence": "x"}]}},
    }
    (tmp_path / "snag.json").write_text(json.dumps(ann))
    rng = np.random.default_rng(0)
    feats = {"v1": rng.standard_normal((60, DIM)).astype(np.float32), "v2": rng.standard_normal((70, DIM)).astype(np.float32)}
    s = convert("snag", str(tmp_path / "snag.json"), feats, str(tmp_path / "ds"), "train", clip_size=16, clip_stride=4,
                text_dim=4, progress=False, source_split="train")
    assert s["videos_in"] == 2 and s["annotations_in"] == 3 and s["clipped_start"] == 1 and s["clipped_end"] == 1
    assert s["dropped_zero_length"] == 1 and s["videos_dropped_no_queries"] == 1 and s["queries_out"] == 2
    row = load_grounding_dataset(tmp_path / "ds", "train", streaming=False)[0]
    assert row["video_id"] == "v1" and row["fps"] == 25.0 and row["duration"] == 10.0
    assert [q["query_id"] for q in row["queries"]] == ["s1", "v1_0001"]
    assert [(q["start"], q["end"]) for q in row["queries"]] == [(1.0, 3.0), (0.0, 10.0)]
    assert np.array_equal(row["video_features"], feats["v1"])
    with pytest.raises(ValueError, match="no split 'val'"):
        convert("snag", str(tmp_path / "snag.json"), feats, str(tmp_path / "x"), "val", clip_size=16, clip_stride=4, text_dim=4,
                progress=False, source_split="val")


def test_mad_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    ann = {
        "q1": {"movie": "m1", "movie_duration": 20.0, "ext_timestamps": [1.0, 3.5], "sentence": "Someone opens a door."},
        "q2": {"movie": "m1", "movie_duration": 20.0, "ext_timestamps": [18.0, 21.0], "sentence": "He leaves."},
        "q3": {"movie": "m2", "movie_duration": 10.0, "ext_timestamps": [2.0, 4.0], "sentence": "She sits."},
        "q4": {"movie": "m3", "movie_duration": 10.0, "ext_timestamps": [2.0, 4.0], "sentence": "No features."},
    }
    (tmp_path / "MAD_train.json").write_text(json.dumps(ann))
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "video.h5", "w") as f:
        f["m1"] = rng.standard_normal((100, DIM)).astype(np.float32)
        f["m2"] = rng.standard_normal((50, DIM)).astype(np.float32)
    with h5py.File(tmp_path / "text.h5", "w") as f:
        for q in ("q1", "q2", "q3", "q4"):
            f[q] = rng.standard_normal((int(rng.integers(3, 9)), 12)).astype(np.float32)
    s = convert("mad", str(tmp_path / "MAD_train.json"), str(tmp_path / "video.h5"), str(tmp_path / "ds"), "train",
                text_features=str(tmp_path / "text.h5"), preset="mad_clip", progress=False)
    assert s["videos_in"] == 3 and s["videos_dropped_missing_features"] == 1 and s["clipped_end"] == 1 and s["queries_out"] == 3
    assert s.text_dim == 12 and s.video_dim == DIM
    ds = load_grounding_dataset(tmp_path / "ds", "train", streaming=False)
    rows = {r["video_id"]: r for r in ds}
    with h5py.File(tmp_path / "video.h5") as fv, h5py.File(tmp_path / "text.h5") as ft:
        assert np.array_equal(rows["m1"]["video_features"], fv["m1"][()])
        q2 = [q for q in rows["m1"]["queries"] if q["query_id"] == "q2"][0]
        assert np.array_equal(q2["text_features"], ft["q2"][()]) and q2["end"] == 20.0
    assert rows["m1"]["fps"] == 5.0 and rows["m1"]["clip_size"] == 1.0


def _ego4d_json():
    def q(s, e, text):
        return {"clip_start_sec": s, "clip_end_sec": e, "video_start_sec": s + 100, "video_end_sec": e + 100,
                "template": "T", "query": text}

    return {
        "version": "v2",
        "videos": [
            {
                "video_uid": "VID", "clips": [
                    {"clip_uid": "clipA", "video_start_sec": 100.0, "video_end_sec": 130.0, "clip_start_sec": 0.0, "clip_end_sec": 30.0,
                     "annotations": [{"annotation_uid": "annA",
                                      "language_queries": [q(1.0, 2.0, "where is the cup?"), q(5.0, 9.0, None)]}]},
                    {"clip_uid": "clipB", "video_start_sec": 200.0, "video_end_sec": 216.0, "clip_start_sec": 0.0, "clip_end_sec": 16.0,
                     "annotations": [{"language_queries": [q(3.0, 20.0, "what did I put in the fridge?")]}]},
                    {"clip_uid": "clipC", "video_start_sec": 300.0, "video_end_sec": 310.0, "clip_start_sec": 0.0, "clip_end_sec": 10.0,
                     "annotations": []},
                ],
            }
        ],
    }


def test_ego4d_nlq_clip_and_video_level_features(tmp_path):
    (tmp_path / "nlq_val.json").write_text(json.dumps(_ego4d_json()))
    feats = tmp_path / "feats"
    feats.mkdir()
    rng = np.random.default_rng(2)
    clip_a = rng.standard_normal((55, DIM)).astype(np.float32)
    video = rng.standard_normal((800, DIM)).astype(np.float32)  # video-level, 30 fps / stride 16
    np.save(feats / "clipA.npy", clip_a)
    torch.save(torch.from_numpy(video), feats / "VID.pt")
    s = convert("ego4d-nlq", str(tmp_path / "nlq_val.json"), str(feats), str(tmp_path / "ds"), "val",
                preset="ego4d_slowfast_bert", progress=False)
    assert s["videos_in"] == 3 and s["ego4d_clips_without_queries"] == 1 and s["videos_dropped_no_queries"] == 1
    assert s["dropped_empty_sentence"] == 1 and s["clipped_end"] == 1 and s["queries_out"] == 2
    rows = {r["video_id"]: r for r in load_grounding_dataset(tmp_path / "ds", "val", streaming=False)}
    assert set(rows) == {"clipA", "clipB"}
    assert np.array_equal(rows["clipA"]["video_features"], clip_a)
    # clipB is cut from the video-level features: floor(200*30/16) .. ceil(216*30/16).
    assert np.array_equal(rows["clipB"]["video_features"], video[375:405])
    assert rows["clipB"]["duration"] == 16.0 and rows["clipB"]["queries"][0]["end"] == 16.0
    assert rows["clipA"]["queries"][0]["query_id"] == "annA_0"
    assert rows["clipB"]["queries"][0]["query_id"] == "clipB_0_0"


def test_text_feature_files_and_encoder(tmp_path):
    ann = {"train": {"v": {"fps": 1.0, "num_frames": 20, "annotations": [
        {"segment": [1, 2], "sentence": "a", "sentence_id": "qa"}, {"segment": [3, 4], "sentence": "b", "sentence_id": "qb"},
        {"segment": [5, 6], "sentence": "", "sentence_id": "qc"}]}}}
    (tmp_path / "a.json").write_text(json.dumps(ann))
    vf = {"v": np.zeros((20, DIM), np.float32)}
    tdir = tmp_path / "text"
    tdir.mkdir()
    np.save(tdir / "qa.npy", np.ones((3, 7), np.float32))
    np.save(tdir / "qc.npy", np.ones((2, 7), np.float32))  # empty sentence but token features: kept
    s = convert("snag", str(tmp_path / "a.json"), vf, str(tmp_path / "ds"), "train", text_features=str(tdir),
                clip_size=1, clip_stride=1, progress=False)
    assert s["dropped_missing_text_features"] == 1 and s["queries_out"] == 2 and s.text_dim == 7
    row = load_grounding_dataset(tmp_path / "ds", "train", streaming=False)[0]
    assert [q["query_id"] for q in row["queries"]] == ["qa", "qc"] and row["queries"][0]["text_features"].shape == (3, 7)

    calls = []

    def encoder(sentences):
        calls.append(list(sentences))
        return [np.full((len(x) + 1, 5), 0.5, np.float32) for x in sentences]

    s = convert("snag", str(tmp_path / "a.json"), vf, str(tmp_path / "ds2"), "train", text_encoder=encoder,
                clip_size=1, clip_stride=1, progress=False)
    assert calls == [["a", "b"]] and s["dropped_empty_sentence"] == 1 and s.text_dim == 5
    row = load_grounding_dataset(tmp_path / "ds2", "train", streaming=False)[0]
    assert row["queries"][1]["text_features"].shape == (2, 5)


# ----------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------
def _three_videos(tmp_path):
    ann = {"train": {f"v{i}": {"fps": 1.0, "num_frames": 10, "annotations": [{"segment": [1, 3], "sentence": "s"}]} for i in range(3)}}
    (tmp_path / "a.json").write_text(json.dumps(ann))
    d = tmp_path / "f"
    d.mkdir()
    for i in range(3):
        np.save(d / f"v{i}.npy", np.zeros((10, DIM), np.float32))
    return str(tmp_path / "a.json"), d


def _run(tmp_path, ann, feats, **kw):
    return convert("snag", ann, str(feats), str(tmp_path / "ds"), "train", clip_size=1, clip_stride=1, text_dim=4, progress=False, **kw)


def test_wrong_dim_names_the_file(tmp_path):
    ann, d = _three_videos(tmp_path)
    np.save(d / "v2.npy", np.zeros((10, DIM + 1), np.float32))
    with pytest.raises(ValueError, match=r"v2\.npy: video feature dim is 9, expected 8"):
        _run(tmp_path, ann, d)
    assert not (tmp_path / "ds").exists()  # the crash mid-conversion left nothing behind
    with pytest.raises(ValueError, match=r"v0\.npy: video feature dim is 8, expected 16"):
        _run(tmp_path, ann, d, video_dim=16)


def test_nan_names_the_file(tmp_path):
    ann, d = _three_videos(tmp_path)
    bad = np.zeros((10, DIM), np.float32)
    bad[4, 1] = np.nan
    np.save(d / "v1.npy", bad)
    with pytest.raises(ValueError, match=r"v1\.npy: video features contain NaN/inf values \(1 of 10"):
        _run(tmp_path, ann, d)
    assert not (tmp_path / "ds").exists()


def test_missing_feature_file_dropped_or_strict(tmp_path):
    ann, d = _three_videos(tmp_path)
    os.remove(d / "v1.npy")
    s = _run(tmp_path, ann, d)
    assert s["videos_dropped_missing_features"] == 1 and s["queries_dropped_with_videos"] == 1 and s["videos_out"] == 2
    assert "v1" in s.format_table()
    with pytest.raises(ValueError, match=r"video 'v1': features not found .*v1\.npy"):
        _run(tmp_path, ann, d, strict=True, overwrite=True)


def test_pickled_files_are_refused(tmp_path):
    ann, d = _three_videos(tmp_path)
    np.save(d / "v0.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled object array.*nothing is unpickled"):
        _run(tmp_path, ann, d)
    os.remove(d / "v0.npy")
    torch.save({"features": np.zeros((10, DIM))}, d / "v0.pt")  # a numpy array inside: needs unpickling
    with pytest.raises(ValueError, match=r"v0\.pt: not a plain tensor file.*weights_only=True"):
        _run(tmp_path, ann, d)
    torch.save(torch.zeros(10, DIM), d / "v0.pt")  # a plain tensor is fine
    assert _run(tmp_path, ann, d)["videos_out"] == 3


def test_unknown_format_and_missing_time_params(tmp_path):
    ann, d = _three_videos(tmp_path)
    with pytest.raises(ValueError, match="unknown format 'youcook'"):
        convert("youcook", ann, str(d), str(tmp_path / "ds"), "train", clip_size=1, clip_stride=1)
    with pytest.raises(ValueError, match="unknown policy"):
        _run(tmp_path, ann, d, policy="fix")
    with pytest.raises(ValueError, match="missing time-mapping value.*fps"):
        convert("activitynet", ann, str(d), str(tmp_path / "ds"), "train", clip_size=16, clip_stride=8)
    with pytest.raises(ValueError, match="feature folder not found"):
        _run(tmp_path, ann, tmp_path / "nowhere")


def test_segments_outside_the_video(tmp_path):
    ann = {"train": {"v": {"fps": 1.0, "num_frames": 10, "annotations": [
        {"segment": [-2, 3], "sentence": "starts early"}, {"segment": [8, 14], "sentence": "ends late"},
        {"segment": [11, 14], "sentence": "entirely after"}, {"segment": [5, 4], "sentence": "inverted"},
        {"segment": [2, 10.0000001], "sentence": "float noise"}, {"segment": [2, 4], "sentence": "fine"}]}}}
    (tmp_path / "a.json").write_text(json.dumps(ann))
    vf = {"v": np.zeros((10, DIM), np.float32)}
    kw = dict(clip_size=1, clip_stride=1, text_dim=4, progress=False)
    s = convert("snag", str(tmp_path / "a.json"), vf, str(tmp_path / "c"), "train", **kw)
    assert (s["clipped_start"], s["clipped_end"], s["dropped_outside_video"], s["dropped_inverted"],
            s["clipped_float_noise"]) == (1, 2, 1, 1, 1)
    assert s["queries_out"] == 4
    s = convert("snag", str(tmp_path / "a.json"), vf, str(tmp_path / "d"), "train", policy="drop", **kw)
    assert (s["dropped_out_of_range"], s["dropped_inverted"], s["clipped_float_noise"], s["queries_out"]) == (3, 1, 1, 2)
    rows = load_grounding_dataset(tmp_path / "d", "train", streaming=False)
    assert [(q["start"], q["end"]) for q in rows[0]["queries"]] == [(2.0, 10.0), (2.0, 4.0)]


def test_feature_length_mismatch_is_counted(tmp_path):
    ann, d = _three_videos(tmp_path)
    np.save(d / "v2.npy", np.zeros((40, DIM), np.float32))  # 40 features for a 10-frame video
    s = _run(tmp_path, ann, d)
    assert s["videos_feature_length_mismatch"] == 1 and s["videos_out"] == 3
    assert "v2 (40 vs ~10)" in s.format_table()


def test_multiple_feature_dirs_concatenate(tmp_path):
    ann, d = _three_videos(tmp_path)
    d2 = tmp_path / "flow"
    d2.mkdir()
    for i in range(3):
        np.save(d2 / f"v{i}.npy", np.ones((9 if i == 0 else 10, 3), np.float32))  # one step short: padded
    s = convert("snag", ann, [str(d), str(d2)], str(tmp_path / "ds"), "train", clip_size=1, clip_stride=1, text_dim=4, progress=False)
    assert s.video_dim == DIM + 3
    row = [r for r in load_grounding_dataset(tmp_path / "ds", "train", streaming=False) if r["video_id"] == "v0"][0]
    assert row["video_features"].shape == (10, DIM + 3) and np.all(row["video_features"][9, DIM:] == 1)


def test_min_shards_from_the_converter(tmp_path):
    ann, d = _three_videos(tmp_path)
    s = _run(tmp_path, ann, d, min_shards=2)
    meta = read_metadata(tmp_path / "ds")["splits"]["train"]
    assert s.num_shards == meta["num_shards"] == 2 and sorted(x["num_rows"] for x in meta["shards"]) == [1, 2]
