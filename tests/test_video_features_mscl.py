# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Frame features from a Hugging Face image model and the on-disk feature cache
(modeling_mscl/video_features_mscl.py).

A tiny random CLIP (saved to a folder with its image processor and tokenizer, tests/video_helpers.py)
stands in for openai/clip-vit-base-patch32: the code path is the real one (``from_pretrained`` on a folder).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("av")

import modeling_mscl.video_processing_mscl as vp  # noqa: E402
from modeling_mscl.video_features_mscl import (  # noqa: E402
    CACHE_ENV,
    HFImageFeatureExtractor,
    NoVideoExtractorError,
    VideoFeatureCache,
    build_video_extractor,
    clear_video_feature_cache,
    default_video_cache_dir,
    extract_video_features,
    file_identity,
    normalize_video_feature_source,
)
from modeling_mscl.video_processing_mscl import VideoDecodeError, select_frames  # noqa: E402

from video_helpers import (  # noqa: E402
    cache_files,
    clip_source,
    decode_all,
    make_tiny_clip,
    read_index,
    reference_features,
    truncate_half,
    write_audio_only,
    write_video,
    write_zero_frame_video,
)

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {
        "cfr": write_video(root / "cfr.mp4", 90, fps=30, size=(48, 80)),
        "vfr": write_video(root / "vfr.mkv", 12, times_ms=[0, 50, 400, 450, 1000, 1100, 1150, 1800, 1900, 2300, 2310, 2900]),
        "rot": write_video(root / "rot.mp4", 30, size=(32, 64), rotation=90),
    }


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = vp._open

    def counting(path, av):
        calls.append(path)
        return real(path, av)

    monkeypatch.setattr(vp, "_open", counting)
    return calls


# ----------------------------------------------------------------------------------------------------
# the features are the model's output on exactly the mapped frames
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cfr", "vfr", "rot"])
def test_features_equal_the_model_on_the_sampled_frames(clip_dir, videos, tmp_path, name):
    path = videos[name]
    out = extract_video_features(str(path), clip_source(clip_dir), cache_dir=str(tmp_path / "cache"), batch_size=4)
    frames = decode_all(path)  # independent decode of every frame
    picked = select_frames([t for t, _ in frames], out.decoded_end, 5.0)
    if name == "cfr":
        assert picked == [6 * j + 3 for j in range(15)]
    assert [read_index(np.rot90(frames[k][1], k=-1) if name == "rot" else frames[k][1]) for k in picked] == picked
    expected = reference_features(clip_dir, [frames[k][1] for k in picked])
    assert out.features.shape == (len(picked), 16) and out.features.dtype == np.float32
    np.testing.assert_allclose(out.features, expected, atol=1e-5, rtol=0)
    assert out.frames_decoded == len(frames) and not out.partial and not out.from_cache


def test_outputs_normalisation_and_decoder_resize(clip_dir, videos, tmp_path):
    path = str(videos["cfr"])
    base = extract_video_features(path, clip_source(clip_dir), use_cache=False).features
    frames = decode_all(path)
    picked = [6 * j + 3 for j in range(15)]
    pooled = extract_video_features(path, clip_source(clip_dir, output="pooler_output", model_class="CLIPVisionModel", dim=32),
                                    use_cache=False).features
    np.testing.assert_allclose(pooled, reference_features(clip_dir, [frames[k][1] for k in picked], output="pooler_output"),
                               atol=1e-5, rtol=0)
    l2 = extract_video_features(path, clip_source(clip_dir, normalize="l2"), use_cache=False).features
    np.testing.assert_allclose(l2, base / np.linalg.norm(base, axis=1, keepdims=True), atol=1e-6, rtol=0)
    dual = extract_video_features(path, clip_source(clip_dir, output="image_features", model_class="CLIPModel"), use_cache=False)
    np.testing.assert_allclose(dual.features, base, atol=1e-5, rtol=0)

    # resize in the decoder: swscale bicubic to the size the processor would resize to (short side 32)
    fast = extract_video_features(path, clip_source(clip_dir, resize="decoder"), use_cache=False).features
    import av
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(clip_dir, backend="pil")
    resized = []
    with av.open(path) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k in picked:
                resized.append(frame.to_ndarray(format="rgb24", width=53, height=32, interpolation="BICUBIC"))  # 80x48 -> 53x32
    pixel_values = processor(images=resized, do_resize=False, return_tensors="pt")["pixel_values"]
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    np.testing.assert_allclose(fast, ext.embed(pixel_values).numpy(), atol=1e-5, rtol=0)
    assert not np.allclose(fast, base, atol=1e-5)  # a different resize: slightly different features


def test_siglip_style_model_by_the_same_field(tmp_path, videos):
    from transformers import SiglipImageProcessorPil, SiglipVisionConfig, SiglipVisionModel

    folder = tmp_path / "tiny-siglip"
    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                                 num_attention_heads=2, image_size=32, patch_size=8)).eval()
    model.save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    source = {"type": "hf", "name_or_path": str(folder), "model_class": "SiglipVisionModel", "output": "pooler_output",
              "sampling": {"fps": 5.0}}
    out = extract_video_features(str(videos["cfr"]), source, use_cache=False)
    frames = decode_all(videos["cfr"])
    processor = SiglipImageProcessorPil.from_pretrained(folder)
    pv = processor(images=[frames[6 * j + 3][1] for j in range(15)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pv).pooler_output.numpy()
    np.testing.assert_allclose(out.features, expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------------
def test_second_call_is_a_cache_hit_without_decoding(clip_dir, videos, tmp_path, count_decodes):
    cache = str(tmp_path / "cache")
    path = str(videos["cfr"])
    first = extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
    assert count_decodes == [path] and not first.from_cache
    assert cache_files(cache) == [os.path.relpath(first.cache_path, cache)]

    fresh = HFImageFeatureExtractor(clip_source(clip_dir))  # a new process would build a new extractor
    second = extract_video_features(path, fresh, cache_dir=cache)
    assert count_decodes == [path], "the second call decoded the video"
    assert fresh._model is None, "the second call loaded the extractor's weights"
    assert second.from_cache and second.cache_path == first.cache_path
    np.testing.assert_array_equal(second.features, first.features)
    assert (second.duration, second.duration_source, second.frames_decoded) == (first.duration, first.duration_source, 90)


def test_cache_misses_when_the_extractor_the_sampling_or_the_file_changes(clip_dir, videos, tmp_path, count_decodes):
    cache = str(tmp_path / "cache")
    path = tmp_path / "copy.mp4"
    path.write_bytes(Path(videos["cfr"]).read_bytes())
    base = extract_video_features(str(path), clip_source(clip_dir), cache_dir=cache)
    variants = [
        clip_source(clip_dir, output="pooler_output", model_class="CLIPVisionModel", dim=32),  # another output
        clip_source(clip_dir, normalize="l2"),
        clip_source(clip_dir, resize="decoder"),  # another preprocessing
        clip_source(clip_dir, sampling={"fps": 2.5, "clip_size": 1, "clip_stride": 1}),  # another sampling
        clip_source(make_tiny_clip(tmp_path / "other-clip", seed=1)),  # another model
    ]
    for i, source in enumerate(variants):
        out = extract_video_features(str(path), source, cache_dir=cache)
        assert not out.from_cache and len(count_decodes) == i + 2, source
    assert len(cache_files(cache)) == 1 + len(variants)
    # the same settings again: all hits
    n = len(count_decodes)
    for source in [clip_source(clip_dir)] + variants:
        assert extract_video_features(str(path), source, cache_dir=cache).from_cache
    assert len(count_decodes) == n
    # another image processor setting in the model folder is another extractor
    proc = json.loads((clip_dir / "preprocessor_config.json").read_text())
    other = tmp_path / "clip-other-processor"
    other.mkdir()
    for f in clip_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "preprocessor_config.json").write_text(json.dumps({**proc, "image_mean": [0.5, 0.5, 0.5]}))
    assert not extract_video_features(str(path), clip_source(other), cache_dir=cache).from_cache
    # the file changes (new content, new mtime): a miss, and the features follow the new content
    write_video(path, 30, fps=30, size=(48, 80))
    changed = extract_video_features(str(path), clip_source(clip_dir), cache_dir=cache)
    assert not changed.from_cache and changed.features.shape[0] == 5 and base.features.shape[0] == 15


def test_cache_key_and_location(clip_dir, videos, tmp_path, monkeypatch):
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    sampling = ext.sampling
    k = VideoFeatureCache.key(str(videos["cfr"]), ext.fingerprint, sampling)
    assert k == VideoFeatureCache.key(str(videos["cfr"]), ext.fingerprint, dict(sampling))
    assert k != VideoFeatureCache.key(str(videos["cfr"]), ext.fingerprint, {**sampling, "clip_stride": 2.0})
    ident = file_identity(str(videos["cfr"]))
    assert ident["size"] == os.path.getsize(videos["cfr"]) and len(ident["head_tail_blake2b"]) == 32
    assert ext.fingerprint["image_processor"]["resample"] == 3 and ext.fingerprint["image_processor_backend"] == "pil"
    assert ext.fingerprint["revision"].startswith("local:")

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_video_cache_dir() == str(tmp_path / "hf" / "mscl" / "video_features")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_video_cache_dir() == str(tmp_path / "elsewhere")
    out = extract_video_features(str(videos["cfr"]), ext)
    assert out.cache_path.startswith(str(tmp_path / "elsewhere"))
    size = os.path.getsize(out.cache_path)
    assert clear_video_feature_cache() == (1, size) and not os.path.exists(out.cache_path)


def test_clear_cache(clip_dir, videos, tmp_path):
    cache = str(tmp_path / "cache")
    a = extract_video_features(str(videos["cfr"]), clip_source(clip_dir), cache_dir=cache)
    extract_video_features(str(videos["vfr"]), clip_source(clip_dir), cache_dir=cache)
    (Path(a.cache_path).parent / ".leftover.tmp").write_bytes(b"half an entry")  # a killed write
    size = sum(os.path.getsize(os.path.join(cache, f)) for f in cache_files(cache))
    assert clear_video_feature_cache(cache) == (2, size)
    assert cache_files(cache) == []
    assert not extract_video_features(str(videos["cfr"]), clip_source(clip_dir), cache_dir=cache).from_cache


def test_a_write_killed_midway_leaves_no_complete_looking_entry(clip_dir, videos, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    path = str(videos["cfr"])

    def killed(fd):
        raise KeyboardInterrupt("killed while writing the cache entry")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
    assert [f for f in cache_files(cache) if f.endswith(".npz")] == []
    monkeypatch.undo()
    out = extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
    assert not out.from_cache
    # a damaged entry (a disk error, a half-copied cache) is detected, dropped and recomputed
    Path(out.cache_path).write_bytes(Path(out.cache_path).read_bytes()[:200])
    again = extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
    assert not again.from_cache
    np.testing.assert_array_equal(again.features, out.features)
    assert extract_video_features(path, clip_source(clip_dir), cache_dir=cache).from_cache


# ----------------------------------------------------------------------------------------------------
# bad input: an error naming the file, and nothing written to the cache
# ----------------------------------------------------------------------------------------------------
def test_bad_files_write_nothing_to_the_cache(clip_dir, tmp_path):
    cache = str(tmp_path / "cache")
    text = tmp_path / "notes.mp4"
    text.write_text("plain text, not a video\n" * 50)
    full = write_video(tmp_path / "full.mkv", 300, fps=30)
    cases = {
        str(tmp_path / "missing.mp4"): "not found",
        str(text): "cannot be opened as a video",
        str(write_zero_frame_video(tmp_path / "empty.mkv")): "no decodable video frame",
        str(truncate_half(full, tmp_path / "cut.mkv")): "truncated or damaged",
        str(write_audio_only(tmp_path / "speech.m4a")): "has no video stream",
    }
    for path, message in cases.items():
        with pytest.raises(VideoDecodeError, match=message) as err:
            extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
        assert path in str(err.value)
    # a partial result is returned when asked for, but not cached
    part = extract_video_features(str(tmp_path / "cut.mkv"), clip_source(clip_dir), cache_dir=cache, allow_partial=True)
    assert part.partial and part.features.shape[0] == sum(1 for j in range(100) if (j + 0.5) / 5 < part.decoded_end)
    assert cache_files(cache) == []


def test_sources_without_an_extractor(tmp_path):
    from modeling_mscl import MSCLConfig

    cfg = MSCLConfig.from_preset("tacos_c3d")
    with pytest.raises(NoVideoExtractorError, match=r"C3D.*4096-d.*How to produce them.*\(T, 4096\)"):
        build_video_extractor(cfg.video_feature_source, cfg.video_input_dim)
    with pytest.raises(NoVideoExtractorError, match="missing"):
        build_video_extractor(None, 512)
    src = normalize_video_feature_source(MSCLConfig.from_preset("mad_clip").video_feature_source)
    assert src["name_or_path"] == "openai/clip-vit-base-patch32" and src["output"] == "image_embeds"
    assert src["normalize"] is None and src["sampling"] == {"fps": 5.0, "clip_size": 1.0, "clip_stride": 1.0}
    for bad, msg in (({"type": "hf"}, "name_or_path"), ({"type": "hf", "name_or_path": "x"}, "sampling"),
                     ({"type": "hf", "name_or_path": "x", "sampling": {"fps": 5}, "output": "logits"}, "output"),
                     ({"type": "hf", "name_or_path": "x", "sampling": {"fps": -1}}, "fps"), ({"type": "clip"}, "type")):
        with pytest.raises(ValueError, match=msg):
            normalize_video_feature_source(bad)


# ----------------------------------------------------------------------------------------------------
# memory does not grow with the video's length (fresh processes, peak RSS)
# ----------------------------------------------------------------------------------------------------
_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from modeling_mscl.video_features_mscl import HFImageFeatureExtractor, extract_video_features
    source = json.loads(sys.argv[1])
    ext = HFImageFeatureExtractor(source)
    extract_video_features(sys.argv[2], ext, use_cache=False, batch_size=32)  # warm up: model loaded, buffers made
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    start = rss()
    out = extract_video_features(sys.argv[3], ext, use_cache=False, batch_size=32)
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork + exec
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"start_mb": start, "peak_mb": peak, "features": out.features.shape[0], "seconds": out.duration}))
    """
)


@pytest.mark.slow
def test_peak_memory_is_bounded_and_does_not_grow_with_length(tmp_path):
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs Linux /proc to read the RSS")
    clip = make_tiny_clip(tmp_path / "clip64", image_size=64, patch_size=16)
    source = json.dumps(clip_source(clip, fps=5.0))
    short = write_video(tmp_path / "short.mp4", 20, fps=1, size=(160, 160))
    minutes = {20: None, 40: None}
    for m in minutes:  # one 160 x 160 frame per second, 5 features per second: 1,200 / 2,400 frames embedded
        path = write_video(tmp_path / f"long{m}.mp4", m * 60, fps=1, size=(160, 160), gop=250)
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, source, str(short), str(path)],
                              capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        minutes[m] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert minutes[m]["features"] == m * 60 * 5 and minutes[m]["seconds"] == pytest.approx(m * 60)
    growth = {m: r["peak_mb"] - r["start_mb"] for m, r in minutes.items()}
    # keeping every decoded frame (as a whole-video reader does) would take 2,400 x 160 x 160 x 3 B = 176 MiB for
    # 40 min; the stream holds one frame and one batch, and the (T, 16) result grows by 0.4 MiB
    assert growth[40] < 60, growth
    assert growth[40] - growth[20] < 20, growth
