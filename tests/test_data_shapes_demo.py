# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The shapes demo's videos show what their sentences say (modeling_mscl/data/shapes_demo.py)."""

import numpy as np
import pytest

pytest.importorskip("av")

from modeling_mscl.data.shapes_demo import (  # noqa: E402
    COLOURS,
    VOCABULARY,
    event_position,
    render_frame,
    sample_video_spec,
    sentence_of,
    write_demo_word_vectors,
    write_shapes_video,
)
from modeling_mscl.text_embedding_mscl import basic_english_tokenize, load_word_vectors  # noqa: E402
from modeling_mscl.video_processing_mscl import read_frames_at  # noqa: E402


def test_specs_are_deterministic_and_well_formed():
    a = [sample_video_spec(np.random.default_rng(3), f"v{i}") for i in range(30)]
    b = [sample_video_spec(np.random.default_rng(3), f"v{i}") for i in range(30)]
    assert a == b
    for spec in [sample_video_spec(np.random.default_rng(s), "v") for s in range(50)]:
        events = spec["events"]
        assert 2 <= len(events) <= 4
        assert all(e["start"] >= 1.0 and e["end"] <= spec["duration"] - 1.0 for e in events)
        assert all(x["end"] < y["start"] for x, y in zip(events, events[1:]))  # one after another
        sentences = [sentence_of(e, e["template"]) for e in events]
        assert len(set(sentences)) == len(sentences)
        assert len({(e["colour"], e["shape"], e["direction"]) for e in events}) == len(events)


def test_the_file_shows_the_described_event(tmp_path):
    spec = {"video_id": "x", "duration": 12.0, "background_seed": 1, "events": [
        {"colour": "red", "shape": "circle", "direction": "right", "start": 2.0, "end": 6.0, "across": 0.5, "size": 0.24,
         "template": 0},
        {"colour": "blue", "shape": "square", "direction": "up", "start": 7.0, "end": 11.0, "across": 0.3, "size": 0.24,
         "template": 1},
    ]}
    path = write_shapes_video(str(tmp_path / "x.mp4"), spec)
    times = [1.0, 2.5, 5.5, 8.0, 10.5]
    frames = read_frames_at(path, times)
    assert frames[0].shape == (96, 96, 3)

    def colour_centre(img, rgb):
        mask = (np.abs(img.astype(int) - np.array(rgb)).sum(axis=2) < 90)
        if mask.sum() < 20:
            return None
        ys, xs = np.nonzero(mask)
        return xs.mean(), ys.mean()

    assert colour_centre(frames[0], COLOURS["red"]) is None and colour_centre(frames[0], COLOURS["blue"]) is None
    early, late = colour_centre(frames[1], COLOURS["red"]), colour_centre(frames[2], COLOURS["red"])
    assert late[0] - early[0] > 40  # moved right
    assert abs(early[0] - event_position(spec["events"][0], 2.5)[0]) < 4
    up_early, up_late = colour_centre(frames[3], COLOURS["blue"]), colour_centre(frames[4], COLOURS["blue"])
    assert up_early[1] - up_late[1] > 30 and colour_centre(frames[3], COLOURS["red"]) is None  # moved up
    assert sentence_of(spec["events"][0], 0) == "the red circle moves right"
    assert np.array_equal(render_frame(spec, 1.0), render_frame(spec, 1.5))  # a still stage between events


def test_word_vectors_cover_every_sentence(tmp_path):
    table = load_word_vectors(write_demo_word_vectors(str(tmp_path / "words.txt")), 32)
    assert len(table) == len(VOCABULARY)
    for seed in range(20):
        for e in sample_video_spec(np.random.default_rng(seed), "v")["events"]:
            assert all(tok in table for tok in basic_english_tokenize(sentence_of(e, e["template"])))
