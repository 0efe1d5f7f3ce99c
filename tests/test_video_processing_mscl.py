# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Streaming decode + sampling by presentation time (modeling_mscl/video_processing_mscl.py).

Videos are written here with PyAV; frame k shows its own index (tests/video_helpers.py), so every test
reads back exactly which frames the sampler picked.
"""

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

from modeling_mscl.processing_mscl import TimeMapping  # noqa: E402
from modeling_mscl.video_processing_mscl import (  # noqa: E402
    VideoDecodeError,
    VideoFrameSampler,
    feature_time,
    feature_times,
    is_video_file_path,
    probe_video,
    read_frames_at,
    select_frames,
)

from video_helpers import (  # noqa: E402
    decode_all,
    index_pattern,
    mkv_stating_duration,
    read_index,
    truncate_half,
    write_audio_only,
    write_video,
    write_zero_frame_video,
)


def _sampled(path, fps=5.0, **kwargs):
    """(frame index read from the pixels, per feature), the sampler."""
    sampler = VideoFrameSampler(str(path), fps, **kwargs)
    picked = []
    for frame in sampler:
        picked += [read_index(frame.image)] * len(frame.indices)
    return picked, sampler


# ----------------------------------------------------------------------------------------------------
# the rule, by hand
# ----------------------------------------------------------------------------------------------------
def test_feature_times_are_the_time_mapping_of_stored_features():
    for fps, size, stride in ((5.0, 1, 1), (30.0, 16, 4), (29.4, 16, 4), (2.0, 1, 1)):
        mapping = TimeMapping(fps=fps, clip_size=size, clip_stride=stride)
        expected = [mapping.feature_index_to_seconds(j, clamp=False) for j in range(7)]
        np.testing.assert_allclose(feature_times(7, fps, size, stride), expected, rtol=0, atol=1e-12)
    assert feature_time(0, 5.0) == Fraction(1, 10) and feature_time(3, 5.0) == Fraction(7, 10)


def test_select_frames_by_hand():
    # 30 fps: frame k starts at k/30; at 5 features/s feature j is at (j + 0.5) / 5 = (6j + 3) / 30, a frame start
    times = [Fraction(k, 30) for k in range(90)]
    assert select_frames(times, Fraction(3), 5.0) == [6 * j + 3 for j in range(15)]
    # the end: feature j exists while its time is before the end of the last frame
    assert len(select_frames(times, Fraction(3), 5.0)) == 15
    assert len(select_frames(times[:88], Fraction(88, 30), 5.0)) == 15  # t_14 = 2.9 < 2.933
    assert len(select_frames(times[:87], Fraction(87, 30), 5.0)) == 14  # 2.9 is not before 2.9
    # variable frame times (ms): a sample takes the last frame starting at or before it
    ms = [0, 50, 400, 450, 1000, 1100, 1150, 1800, 1900]
    got = select_frames([Fraction(t, 1000) for t in ms], Fraction(2000, 1000), 5.0)
    # t = 100 300 500 700 900 1100 1300 1500 1700 1900 ms
    assert got == [1, 1, 3, 3, 3, 5, 6, 6, 6, 8]
    # denser features than frames: one frame serves several features; a time before the first frame takes it
    assert select_frames([Fraction(1, 2), Fraction(1)], Fraction(3, 2), 4.0) == [0, 0, 0, 0, 1, 1]


def test_is_video_file_path():
    assert is_video_file_path("movie.mp4") and is_video_file_path("clip.MKV") and is_video_file_path("noext")
    assert not is_video_file_path("feats.npy") and not is_video_file_path("feats.PT") and not is_video_file_path("x.pth")
    assert not is_video_file_path(np.zeros((3, 4)))


# ----------------------------------------------------------------------------------------------------
# real files: exactly the frames the time mapping names
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov", ".avi"])
def test_constant_rate_files_sample_exactly_the_mapped_frames(tmp_path, suffix):
    path = write_video(tmp_path / f"cfr{suffix}", 90, fps=30)
    picked, sampler = _sampled(path, 5.0)
    assert picked == [6 * j + 3 for j in range(15)]  # the frame on screen at (j + 0.5) / 5 s
    res = sampler.result
    assert res.frames_decoded == 90 and res.num_features == 15 and not res.partial
    assert res.duration == pytest.approx(3.0, abs=1e-6) and res.decoded_end == pytest.approx(3.0, abs=1e-6)
    if suffix in (".mkv", ".webm"):
        assert sampler.info.stated_frames is None  # the container states no frame count: nothing needs it


def test_mkv_without_frame_count_or_duration(tmp_path):
    path = write_video(tmp_path / "live.mkv", 90, fps=30, container_options={"live": "1"})
    info = probe_video(str(path))
    assert info.stated_frames is None and info.stated_duration is None
    picked, sampler = _sampled(path, 5.0)
    assert picked == [6 * j + 3 for j in range(15)]
    assert sampler.result.duration_source == "last_frame" and sampler.result.duration == pytest.approx(3.0)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate(tmp_path, suffix):
    ms = [0, 50, 400, 450, 1000, 1100, 1150, 1800, 1900, 2300, 2310, 2900]
    path = write_video(tmp_path / f"vfr{suffix}", len(ms), times_ms=ms)
    picked, sampler = _sampled(path, 5.0)
    # hand-computed for t = 0.1 ... 2.3 s (after that it depends on the last frame's stated duration)
    assert picked[:12] == [1, 1, 3, 3, 3, 5, 6, 6, 6, 8, 8, 9]  # 2.3 s: frame 9 starts exactly then
    frames = decode_all(path)
    assert [read_index(img) for _, img in frames] == list(range(len(ms)))
    assert picked == select_frames([t for t, _ in frames], Fraction(sampler.result.decoded_end), 5.0)
    assert sampler.result.decoded_end > 2.9


def test_denser_sampling_than_frames_and_other_rates(tmp_path):
    path = write_video(tmp_path / "cfr.mp4", 30, fps=10)
    picked, sampler = _sampled(path, 25.0)
    frames = decode_all(path)
    assert picked == select_frames([t for t, _ in frames], Fraction(3), 25.0)
    assert picked[:6] == [0, 0, 1, 1, 1, 2] and len(picked) == 75
    picked, _ = _sampled(path, 16.0, clip_size=16, clip_stride=8)  # clip features: the frame at the clip centre
    assert picked == select_frames([t for t, _ in frames], Fraction(3), 16.0, 16, 8)
    assert picked == [5, 10, 15, 20, 25]


def test_rotation_metadata_is_honoured(tmp_path):
    def marked(k, h, w):
        img = index_pattern(k, h, w)
        img[:4, :4] = (255, 0, 0)  # a red marker in the stored frame's top-left corner
        return img

    # stored 32 x 64 (landscape); the display matrix turns it 90 degrees clockwise, as phones record portrait video
    path = write_video(tmp_path / "rot.mp4", 30, size=(32, 64), rotation=-90, frame_fn=marked)
    sampler = VideoFrameSampler(str(path), 5.0)
    frames = list(sampler)
    assert sampler.info.rotation == 270 and (sampler.info.display_height, sampler.info.display_width) == (64, 32)
    image = frames[0].image
    assert image.shape == (64, 32, 3)
    # clockwise: the stored top-left corner is shown top-right (what ffmpeg's autorotate and players show)
    assert image[:3, -3:, 0].mean() > 200 and image[:3, -3:, 1].mean() < 60
    assert read_index(np.rot90(image, k=1)) == 3  # undo the turn to read the index: the frame at 0.1 s


def test_output_size_resizes_in_the_decoder(tmp_path):
    path = write_video(tmp_path / "wide.mp4", 15, size=(48, 96))
    sampler = VideoFrameSampler(str(path), 5.0, output_size=lambda h, w: (h // 2, w // 2))
    frames = list(sampler)
    assert frames[0].image.shape == (24, 48, 3)
    assert [read_index(f.image) for f in frames] == [3, 9]


def test_container_that_understates_its_duration(tmp_path):
    full = write_video(tmp_path / "full.mkv", 90, fps=30)
    lying = mkv_stating_duration(full, tmp_path / "lying.mkv", 1.0)
    assert probe_video(str(lying)).stated_duration == pytest.approx(1.0)
    picked, sampler = _sampled(lying, 5.0)
    assert picked == [6 * j + 3 for j in range(15)]
    assert sampler.result.duration_source == "last_frame" and sampler.result.duration == pytest.approx(3.0)


# ----------------------------------------------------------------------------------------------------
# bad input: a clear error that names the file
# ----------------------------------------------------------------------------------------------------
def test_bad_files_raise_errors_naming_the_file(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    cases = {
        str(tmp_path / "missing.mp4"): "not found",
        str(text): "cannot be opened as a video",
        str(write_zero_frame_video(tmp_path / "empty.mkv")): "no decodable video frame",
        str(write_audio_only(tmp_path / "speech.m4a")): "has no video stream .*1 audio stream",
    }
    for path, message in cases.items():
        with pytest.raises(VideoDecodeError, match=message) as err:
            list(VideoFrameSampler(path, 5.0))
        assert path in str(err.value) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_is_an_error_unless_partial_is_asked_for(tmp_path, suffix):
    opts = {"movflags": "faststart"} if suffix == ".mp4" else None  # index first: the cut file still opens
    full = write_video(tmp_path / f"full{suffix}", 300, fps=30, container_options=opts)
    cut = truncate_half(full, tmp_path / f"cut{suffix}")
    with pytest.raises(VideoDecodeError, match="truncated or damaged") as err:
        list(VideoFrameSampler(str(cut), 5.0))
    assert str(cut) in str(err.value) and "10.00 s" in str(err.value) and "allow_partial" in str(err.value)
    picked, sampler = _sampled(cut, 5.0, allow_partial=True)
    res = sampler.result
    assert res.partial and "10.00 s" in res.partial_reason
    assert 1.0 < res.decoded_end < 9.0 and res.duration == res.decoded_end
    # what it returns is right as far as it goes
    assert picked == [6 * j + 3 for j in range(len(picked))] and len(picked) == res.num_features


def test_a_sampler_is_single_use_and_checks_its_arguments(tmp_path):
    path = write_video(tmp_path / "a.mp4", 6)
    sampler = VideoFrameSampler(str(path), 5.0)
    list(sampler)
    with pytest.raises(RuntimeError, match="once"):
        list(sampler)
    with pytest.raises(ValueError, match="fps"):
        VideoFrameSampler(str(path), 0)


def test_read_frames_at_arbitrary_times(tmp_path):
    ms = [0, 50, 400, 450, 1000, 1100, 1150, 1800, 1900]
    path = write_video(tmp_path / "vfr.mkv", len(ms), times_ms=ms)
    times = [1.5, 0.0, 0.05, 0.3999, 0.4, 1.1, 25.0]
    assert [read_index(img) for img in read_frames_at(str(path), times)] == [6, 0, 1, 1, 2, 5, 8]
    rotated = write_video(tmp_path / "rot.mp4", 10, size=(32, 64), rotation=-90)
    (img,) = read_frames_at(str(rotated), [0.2])
    assert img.shape == (64, 32, 3) and read_index(np.rot90(img, k=1)) == 6
