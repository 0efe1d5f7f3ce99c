"""Time mapping (SnAG §7.3 / §5.9) and fixed-length resampling."""

import numpy as np
import pytest
import torch

from modeling_mscl.processing_mscl import TimeMapping, fixed_length_clip_size, resample_to_fixed_length


def test_feature_index_formulas_of_the_snag_notes():
    t = np.array([0.5, 3.0, 12.25])
    tacos = TimeMapping(fps=29.4, clip_size=16, clip_stride=4, downsample_rate=4, duration=100.0)
    assert np.allclose(tacos.seconds_to_feature_index(t), t * 29.4 / 16 - 0.5)
    mad = TimeMapping(fps=5, clip_size=1, clip_stride=1, input_stride=2, duration=7200.0)
    assert np.allclose(mad.seconds_to_feature_index(t), 5 * t - 0.5)
    assert np.allclose(mad.seconds_to_grid(t), (5 * t - 0.5) / 2)
    ego = TimeMapping(fps=30, clip_size=32, clip_stride=16, duration=500.0)
    assert np.allclose(ego.seconds_to_feature_index(t), 30 * t / 16 - 1)


@pytest.mark.parametrize(
    "mapping",
    [
        TimeMapping(fps=29.4, clip_size=16, clip_stride=4, downsample_rate=4, duration=300.0),
        TimeMapping(fps=5, clip_size=1, clip_stride=1, input_stride=2, duration=300.0),
        TimeMapping(fps=24, clip_size=16, clip_stride=4, duration=300.0).with_fixed_length(700, 256),
    ],
)
def test_round_trip_is_exact(mapping):
    t = torch.linspace(1.0, 290.0, 57, dtype=torch.float64)
    back = mapping.grid_to_seconds(mapping.seconds_to_grid(t))
    assert torch.allclose(back, t, atol=1e-5)


def test_grid_to_seconds_clamps_to_video():
    m = TimeMapping(fps=1, clip_size=1, clip_stride=1, duration=10.0)
    assert m.grid_to_seconds(-3.0) == 0.0
    assert m.grid_to_seconds(50.0) == 10.0


def test_fixed_length_stride():
    m = TimeMapping(fps=24, clip_size=16, clip_stride=4, duration=30.0)
    fixed = m.with_fixed_length(num_features=177, fixed_length=256)
    size = ((177 - 1) * 4 + 16) / 256
    assert fixed.clip_size == fixed.clip_stride == pytest.approx(size)
    assert fixed_length_clip_size(177, 256, 4, 16) == pytest.approx(size)
    # step i is centred on frame i*size + size/2
    assert fixed.feature_index_to_seconds(10.0) == pytest.approx((10 * size + size / 2) / 24)


def test_resample_to_fixed_length():
    x = torch.arange(700, dtype=torch.float32)[:, None].repeat(1, 3)
    y = resample_to_fixed_length(x, 256)
    assert y.shape == (256, 3)
    assert torch.all(y[1:, 0] > y[:-1, 0])  # order preserved
    const = resample_to_fixed_length(torch.full((90, 2), 4.0), 256)  # short video: stretched
    assert const.shape == (256, 2) and torch.allclose(const, torch.full_like(const, 4.0))
    with pytest.raises(ValueError, match="empty"):
        resample_to_fixed_length(torch.zeros(0, 3), 256)


def test_invalid_mapping_values():
    with pytest.raises(ValueError, match="fps"):
        TimeMapping(fps=0, clip_size=1, clip_stride=1)
    with pytest.raises(ValueError, match="downsample_rate"):
        TimeMapping(fps=1, clip_size=1, clip_stride=1, downsample_rate=0)
    with pytest.raises(ValueError, match="duration"):
        TimeMapping(fps=1, clip_size=1, clip_stride=1, duration=-1.0)
