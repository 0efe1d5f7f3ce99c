# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""plot_moments renders headless and draws one rectangle per moment and per ground-truth segment."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from modeling_mscl.visualization import plot_moments  # noqa: E402


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_pipeline_output_with_ground_truth():
    results = [
        {"query": "a person opens the door", "moments": [
            {"start": 1.0, "end": 4.0, "score": 0.9}, {"start": 6.0, "end": 8.5, "score": 0.3}, {"start": 2.0, "end": 3.0, "score": 0.1}]},
        {"query": "the dog runs away", "moments": [{"start": 10.0, "end": 12.0, "score": 0.5}]},
    ]
    ax = plot_moments(results, ground_truth=[(1.5, 4.2), (9.0, 12.5)], duration=20.0, title="demo")
    rects = _rects(ax)
    assert len(rects) == 4 + 2
    assert ax.get_xlim() == (0.0, 20.0)
    assert ax.get_title() == "demo"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a person opens the door", "the dog runs away"]
    # opacity grows with the score (predictions are the taller bars of each row)
    preds = [r for r in rects if r.get_height() > 0.4]
    assert len(preds) == 4
    alphas = {round(r.get_x(), 3): r.get_alpha() for r in preds}
    assert alphas[1.0] > alphas[6.0] > alphas[2.0]
    ax.figure.canvas.draw()  # renders with the Agg backend
    plt.close(ax.figure)


def test_other_formats_top_k_and_given_axes():
    fig, ax = plt.subplots()
    arr = np.array([[0.0, 1.0, 0.2], [2.0, 3.0, 0.8], [4.0, 5.0, 0.5]])
    out = plot_moments(arr, ground_truth=(2.0, 3.5), ax=ax, top_k=2)
    assert out is ax
    assert len(_rects(ax)) == 2 + 1
    assert ax.get_xlim()[1] == pytest.approx(5.0)  # default: largest end drawn

    ax2 = plot_moments([[(0.0, 1.0), (1.0, 2.0)], []], ground_truth=[None, [(0, 1), (2, 3)]])
    assert len(_rects(ax2)) == 2 + 2
    fig.canvas.draw()
    plt.close("all")


def test_mismatched_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="ground-truth"):
        plot_moments([[(0.0, 1.0, 0.5)], [(1.0, 2.0, 0.5)]], ground_truth=[(0, 1)] * 3)
    plt.close("all")
