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
    atomic_path,
    atomic_write,
    build_video_extractor,
    clear_video_feature_cache,
    default_video_cache_dir,
    extract_video_features,
    file_identity,
    mscl_home_folder,
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



def test_atomic_writes_replace_whole_files_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.npy"
    atomic_write(str(target), lambda f: f.write(b"first"))
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["out.npy"]

    def half_then_killed(f):
        f.write(b"half of the second")
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), half_then_killed)
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["out.npy"]  # old file kept, no leftover

    clip = tmp_path / "clip.mp4"
    with atomic_path(str(clip), suffix=".mp4", mode=0o644) as tmp:
        # the temporary file sits beside the target, hidden, with the extension a format-sniffing writer needs
        assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".clip.mp4.")
        assert tmp.endswith(".mp4") and not clip.exists()
        Path(tmp).write_bytes(b"video")
    assert clip.read_bytes() == b"video" and (clip.stat().st_mode & 0o777) == 0o644

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("MSCL_SOMETHING", raising=False)
    assert mscl_home_folder("things", "MSCL_SOMETHING") == str(tmp_path / "hf" / "mscl" / "things")
    monkeypatch.setenv("MSCL_SOMETHING", "~/x")
    assert mscl_home_folder("things", "MSCL_SOMETHING") == os.path.expanduser("~/x")
    monkeypatch.delenv("HF_HOME")
    from huggingface_hub import constants

    assert mscl_home_folder("things") == os.path.join(os.path.expanduser(constants.HF_HOME), "mscl", "things")


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


# ----------------------------------------------------------------------------------------------------
# exact fast preprocessing: bit-identical to the image processor
# ----------------------------------------------------------------------------------------------------
_SIZES = [(720, 1280), (1080, 1920), (1280, 720), (480, 854), (361, 641), (240, 320), (224, 224), (100, 400),
          (47, 61), (33, 32), (5, 900), (640, 480)]


def _processor_pixels(processor, image, **kwargs):
    return np.asarray(processor(images=[image], return_tensors="np", **kwargs)["pixel_values"][0])


@pytest.mark.parametrize("kind", ["clip224", "clip-tiny", "siglip", "clip-no-crop", "clip-rescale-only", "clip-bilinear"])
def test_exact_pil_preprocessing_is_bit_identical_to_the_processor(kind, clip_dir):
    from transformers import AutoImageProcessor, CLIPImageProcessorPil, SiglipImageProcessorPil

    from modeling_mscl.video_features_mscl import ExactPilPreprocessing

    processor = {
        "clip224": lambda: CLIPImageProcessorPil(),  # openai/clip-vit-base-patch32's settings
        "clip-tiny": lambda: AutoImageProcessor.from_pretrained(clip_dir, backend="pil"),
        "siglip": lambda: SiglipImageProcessorPil(size={"height": 64, "width": 48}),  # fixed size, mean/std 0.5, no crop
        "clip-no-crop": lambda: CLIPImageProcessorPil(do_center_crop=False, size={"shortest_edge": 40}),
        "clip-rescale-only": lambda: CLIPImageProcessorPil(do_normalize=False),
        "clip-bilinear": lambda: CLIPImageProcessorPil(resample=2, image_mean=[0.1, 0.2, 0.3], image_std=0.5),
    }[kind]()
    fast = ExactPilPreprocessing.from_processor(processor)
    assert fast is not None
    rng = np.random.default_rng(0)
    for h, w in _SIZES:
        # noise, flat areas and the extreme values, so every value of the lookup table and PIL's clipping are used
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[: h // 3] = 255
        image[h // 3: h // 2, : w // 2] = 0
        out = fast(image)
        ref = _processor_pixels(processor, image)
        assert out is not None and out.dtype == ref.dtype == np.float32, (h, w)
        assert out.shape == ref.shape and np.array_equal(out, ref), (kind, h, w, np.abs(out - ref).max())
        # frames the decoder already resized: the processor only crops and normalises (and pads what is smaller
        # than the crop, which the fast path leaves to it)
        unresized = fast(image, do_resize=False)
        if fast.crop is None or (h >= fast.crop[0] and w >= fast.crop[1]):
            assert np.array_equal(unresized, _processor_pixels(processor, image, do_resize=False)), (kind, h, w)
        else:
            assert unresized is None


def test_exact_pil_preprocessing_declines_what_it_does_not_reproduce():
    from transformers import CLIPImageProcessorPil

    from modeling_mscl.video_features_mscl import ExactPilPreprocessing

    class CustomResize(CLIPImageProcessorPil):
        def resize(self, image, size, resample=None, **kwargs):  # a processor that changes a step
            return super().resize(image, size, resample, **kwargs)

    assert ExactPilPreprocessing.from_processor(CustomResize()) is None
    assert ExactPilPreprocessing.from_processor(CLIPImageProcessorPil(do_pad=True, pad_size={"height": 300, "width": 300})) is None
    assert ExactPilPreprocessing.from_processor(CLIPImageProcessorPil(size={"shortest_edge": 100, "longest_edge": 200})) is None
    assert ExactPilPreprocessing.from_processor(CLIPImageProcessorPil(do_rescale=False, do_normalize=False)) is None
    assert ExactPilPreprocessing.from_processor(object()) is None
    fast = ExactPilPreprocessing.from_processor(CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 32, "width": 32}))
    # a crop larger than the resized image: the processor pads, which this class leaves to it
    assert fast(np.zeros((20, 30, 3), np.uint8)) is None
    assert fast(np.zeros((3, 30, 3), np.uint8)) is None  # 3 pixels high: the processor reads it as channels-first


def test_extractor_checks_its_fast_preprocessing_on_the_first_frame(clip_dir, caplog):
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    assert ext.fast_preprocessing
    image = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    reference = _processor_pixels(ext.processor, image)
    assert np.array_equal(ext.preprocess_frame(image), reference)
    assert ext.fast_preprocessing  # proved on the first frame, kept

    broken = HFImageFeatureExtractor(clip_source(clip_dir))
    broken._fast.lut = broken._fast.lut + 1e-3  # as if transformers changed its arithmetic
    with caplog.at_level("WARNING", logger="modeling_mscl.video_features_mscl"):
        out = broken.preprocess_frame(image)
    assert np.array_equal(out, reference) and not broken.fast_preprocessing
    assert "differs from its image processor" in caplog.text


# ----------------------------------------------------------------------------------------------------
# pipelined decoding: the same features, in order, errors raised in the caller
# ----------------------------------------------------------------------------------------------------
def _decode_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "mscl-video-decode"]


@pytest.mark.parametrize("name", ["cfr", "vfr", "rot"])
@pytest.mark.parametrize("resize", ["image_processor", "decoder"])
def test_pipelined_extraction_equals_sequential(clip_dir, videos, name, resize):
    path = str(videos[name])
    source = clip_source(clip_dir, resize=resize)
    seq = extract_video_features(path, source, use_cache=False, batch_size=4, pipeline=False)
    par = extract_video_features(path, source, use_cache=False, batch_size=4, pipeline=True)
    np.testing.assert_array_equal(par.features, seq.features)
    assert (par.frames_decoded, par.duration, par.duration_source, par.decoded_end) == (
        seq.frames_decoded, seq.duration, seq.duration_source, seq.decoded_end)
    assert par.info == seq.info and not _decode_threads()
    if resize == "image_processor":  # and both are the model on the processor's pixels of the mapped frames
        frames = decode_all(path)
        picked = select_frames([t for t, _ in frames], seq.decoded_end, 5.0)
        np.testing.assert_allclose(par.features, reference_features(clip_dir, [frames[k][1] for k in picked]), atol=1e-5, rtol=0)


def test_pipelined_batches_keep_time_order_and_stay_bounded(clip_dir, tmp_path, monkeypatch):
    """Features come back in time order, and the decoder thread runs at most the queue's depth ahead."""
    import time

    import modeling_mscl.video_features_mscl as vf

    path = str(write_video(tmp_path / "long.mp4", 300, fps=30))  # 10 s: 50 features, batches of 4
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    produced, ahead = [], []
    real_pre, real_embed = ext.preprocess_frame, ext.embed

    def counting_preprocess(image):
        produced.append(read_index(image))
        return real_pre(image)

    embedded = [0]

    def slow_embed(pixel_values):
        time.sleep(0.05)  # a slow model: the decoder must wait for it, not run ahead
        ahead.append(len(produced) - embedded[0])
        embedded[0] += pixel_values.shape[0]
        return real_embed(pixel_values)

    monkeypatch.setattr(ext, "preprocess_frame", counting_preprocess)
    monkeypatch.setattr(ext, "embed", slow_embed)
    out = extract_video_features(path, ext, use_cache=False, batch_size=4)
    assert produced == [6 * j + 3 for j in range(50)]
    # queue (PREFETCH_BATCHES) + the batch being embedded + the one being built
    assert max(ahead) <= (vf.PREFETCH_BATCHES + 2) * 4, ahead
    monkeypatch.undo()
    np.testing.assert_array_equal(out.features, extract_video_features(path, clip_source(clip_dir), use_cache=False,
                                                                      batch_size=4, pipeline=False).features)


def test_errors_in_the_decoder_thread_reach_the_caller(clip_dir, videos, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    real = ext.preprocess_frame
    seen = []

    def failing(image):
        seen.append(1)
        if len(seen) == 6:
            raise RuntimeError("processor failed on frame 6")
        return real(image)

    monkeypatch.setattr(ext, "preprocess_frame", failing)
    with pytest.raises(RuntimeError, match="processor failed on frame 6"):
        extract_video_features(str(videos["cfr"]), ext, cache_dir=cache, batch_size=4)
    assert not _decode_threads() and cache_files(cache) == []
    monkeypatch.undo()

    # a truncated file: the decoder thread's VideoDecodeError, as in the sequential path; partial results agree
    full = write_video(tmp_path / "full.mkv", 300, fps=30)
    cut = str(truncate_half(full, tmp_path / "cut.mkv"))
    for pipeline in (True, False):
        with pytest.raises(VideoDecodeError, match="truncated or damaged") as err:
            extract_video_features(cut, ext, cache_dir=cache, batch_size=4, pipeline=pipeline)
        assert cut in str(err.value)
    assert not _decode_threads() and cache_files(cache) == []
    parts = [extract_video_features(cut, ext, use_cache=False, batch_size=4, allow_partial=True, pipeline=p) for p in (True, False)]
    assert parts[0].partial and parts[1].partial and parts[0].partial_reason == parts[1].partial_reason
    np.testing.assert_array_equal(parts[0].features, parts[1].features)


def test_an_error_in_the_model_stops_the_decoder_thread(clip_dir, tmp_path, monkeypatch):
    opened = []
    real_open = vp._open

    def tracking_open(path, av):
        container = real_open(path, av)
        opened.append(container)
        return container

    monkeypatch.setattr(vp, "_open", tracking_open)
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    calls = []

    def failing_embed(pixel_values):
        calls.append(1)
        raise KeyboardInterrupt("stopped by the user")

    monkeypatch.setattr(ext, "embed", failing_embed)
    path = str(write_video(tmp_path / "long.mp4", 600, fps=30))
    with pytest.raises(KeyboardInterrupt):
        extract_video_features(path, ext, use_cache=False, batch_size=2)
    assert calls == [1] and not _decode_threads()
    # the decoder thread stopped early and closed the file
    assert len(opened) == 1
    with pytest.raises(IndexError):  # PyAV: a closed container has no streams left
        _ = opened[0].streams.video[0]


def test_progress_callbacks_run_in_the_calling_thread(clip_dir, videos):
    import threading

    calls = []
    extract_video_features(str(videos["cfr"]), clip_source(clip_dir), use_cache=False,
                           progress=lambda done, total: calls.append((threading.current_thread().name, done, total)))
    assert calls and {name for name, _, _ in calls} == {threading.current_thread().name}
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls) and calls[-1][2] == pytest.approx(3.0)


# ----------------------------------------------------------------------------------------------------
# reduced precision: bf16 weights (fast on AMX CPUs), close to fp32, keyed in the cache
# ----------------------------------------------------------------------------------------------------
def test_bf16_weights_are_close_to_fp32_and_keyed(clip_dir, videos, tmp_path, count_decodes):
    path = str(videos["cfr"])
    cache = str(tmp_path / "cache")
    fp32 = extract_video_features(path, clip_source(clip_dir), cache_dir=cache)
    ext = HFImageFeatureExtractor(clip_source(clip_dir, dtype="bfloat16"))
    bf16 = extract_video_features(path, ext, cache_dir=cache)
    assert {p.dtype for p in ext.model.parameters()} == {torch.bfloat16}  # the weights, not autocast
    assert bf16.features.dtype == np.float32 and not bf16.from_cache
    auto_ext = HFImageFeatureExtractor(clip_source(clip_dir, dtype="bfloat16", dtype_mode="autocast"))
    auto = extract_video_features(path, auto_ext, cache_dir=cache)
    assert {p.dtype for p in auto_ext.model.parameters()} == {torch.float32} and not auto.from_cache
    for out in (bf16, auto):
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(out.features), torch.from_numpy(fp32.features), dim=1)
        assert cos.min() >= 0.999, cos
        assert not np.array_equal(out.features, fp32.features)  # really computed in bf16
    assert not np.array_equal(bf16.features, auto.features)
    # three extractors, three cache entries; the fp32 key is the one earlier versions wrote (no dtype_mode)
    assert len(cache_files(cache)) == 3 and len(count_decodes) == 3
    fingerprints = [HFImageFeatureExtractor(clip_source(clip_dir, **kw)).fingerprint
                    for kw in ({}, {"dtype": "bfloat16"}, {"dtype": "bfloat16", "dtype_mode": "autocast"})]
    assert "dtype_mode" not in fingerprints[0] and [f.get("dtype_mode") for f in fingerprints[1:]] == ["weights", "autocast"]
    for kw in ({}, {"dtype": "bfloat16"}, {"dtype": "bfloat16", "dtype_mode": "autocast"}):
        assert extract_video_features(path, clip_source(clip_dir, **kw), cache_dir=cache).from_cache
    assert len(count_decodes) == 3
    with pytest.raises(ValueError, match="dtype_mode"):
        normalize_video_feature_source(clip_source(clip_dir, dtype_mode="half"))


def test_model_threads_leave_a_core_to_the_decoder_thread_on_4_cores_and_are_restored(clip_dir, videos, monkeypatch):
    import modeling_mscl.video_features_mscl as vf

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(vf, "_usable_cores", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert vf._model_threads("auto", True, cpu) == 3
    assert vf._model_threads("auto", False, cpu) is None  # sequential: no decoder thread beside the model
    assert vf._model_threads("auto", True, cuda) is None and vf._model_threads(None, True, cpu) is None
    assert vf._model_threads(2, True, cpu) == 2
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert vf._model_threads("auto", True, cpu) is None  # already below cores - 1: never raised
    # on 2-3 cores the model keeps them all (a reserved core would idle most of the time)
    for cores in (2, 3):
        monkeypatch.setattr(vf, "_usable_cores", lambda n=cores: n)
        monkeypatch.setattr(torch, "get_num_threads", lambda n=cores: n)
        assert vf._model_threads("auto", True, cpu) is None
    monkeypatch.setattr(vf, "_usable_cores", lambda: 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert vf._model_threads("auto", True, cpu) is None  # at least one
    for bad in (0, -1, True, "all"):
        with pytest.raises(ValueError, match="model_threads"):
            vf._model_threads(bad, True, cpu)
    monkeypatch.undo()

    # in use: the model runs with the chosen count, and the caller's setting is back afterwards, also after an error
    before = torch.get_num_threads()
    ext = HFImageFeatureExtractor(clip_source(clip_dir))
    seen = []
    real = ext.embed
    monkeypatch.setattr(ext, "embed", lambda pv: (seen.append(torch.get_num_threads()), real(pv))[1])
    extract_video_features(str(videos["cfr"]), ext, use_cache=False, model_threads=2)
    assert set(seen) == {2} and torch.get_num_threads() == before
    monkeypatch.setattr(ext, "embed", lambda pv: (_ for _ in ()).throw(RuntimeError("model failed")))
    with pytest.raises(RuntimeError, match="model failed"):
        extract_video_features(str(videos["cfr"]), ext, use_cache=False, model_threads=2)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="model_threads"):
        extract_video_features(str(videos["cfr"]), ext, use_cache=False, model_threads=0)
