# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A semi-synthetic temporal-grounding benchmark (the default dataset of the training script and notebook).

What is real and what is synthetic
----------------------------------
* **Real: the shape of the data.** Video durations, queries per video, relative moment lengths and
  words per query are drawn from quantile tables of a real dataset (Charades-STA, TACoS or
  ActivityNet Captions, default ActivityNet: its moments range from ~1% to 100% of the video, so the
  pyramid's long-range levels matter). The tables (``synthetic_stats.json`` next to this file) hold only
  summary numbers computed once by :func:`compute_annotation_statistics`; no annotation row or sentence
  is copied. Durations are mapped affinely (the real 1% quantile to ``min_steps``, the 99% quantile to
  ``max_steps``, clipped) into feature steps, because the real range (1.6 s to 755 s for
  ActivityNet) is far wider than a CPU benchmark can afford.
* **Synthetic: words, sentences and features.** A vocabulary of random word vectors (token features)
  split into function words, verbs, objects and modifiers. A sentence has exactly three content words
  (one verb, one object, one modifier) in that order, padded with function words to the sampled length.
  Its *latent* is the normalised sum of its three content-word vectors: order-unaware and blind to the
  function words (which the model has to learn to ignore). A moment carries its sentence only through a
  fixed, hidden random MLP ``g`` (random partial isometry → ``tanh`` → random partial isometry, unit-norm
  output) from the latent to video-feature space, scaled by ``signal_amplitude`` and added to a
  background (per-video scene vector + AR(1) drift + white noise) over the moment's feature steps
  (fractional coverage at the boundaries). Distractors: every other query of the video is another
  moment with its own signal, plus unannotated "extra events"; with probability ``near_duplicate_prob``
  a video holds a near-duplicate pair, two queries whose token sequences differ in exactly one content
  word (same length, same function words), at different moments.

Time grid: ``fps = 1``, ``clip_size = clip_stride = 1``: feature ``i`` covers seconds ``[i, i+1)``, so a
time ``t`` is grid ``t − 0.5`` (SnAG's clip-centre convention).

Everything is a pure function of the seed: the "world" (vocabulary, mixing MLP) comes from
``(seed, "world")``, video ``k`` of split ``s`` from ``(seed, s, k)``, so features are bit-identical across
runs and independent of how many videos are generated.

The :func:`trivial_baseline` scores each step by the plain cosine between its feature and the mean
token feature (``video_dim == text_dim`` by design) and keeps the best windows; it shows how much of
the task is solvable without learning the hidden mixing.

Difficulty of the defaults (test split, 300 videos, 1,101 queries): the trivial baseline reaches
R1@0.5 ≈ 6.6 (R5@0.5 ≈ 14.4); a matched filter that *knows* the hidden mixing, with the same window
search, reaches R1@0.5 ≈ 75 (R5@0.5 ≈ 93): what remains is overlapping moments, distractors and the
near-duplicates, whose video signatures have cosine ≈ 0.6 (median; unrelated sentences ≈ 0 ± 0.19).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..processing_mscl import TimeMapping

# Bump whenever the generated data changes (code or defaults): it names the cache folder, whose
# fingerprint otherwise only covers the SyntheticBenchmarkConfig fields.
SYNTHETIC_VERSION = 2
STATS_FILENAME = "synthetic_stats.json"
STATS_NAMES = ("activitynet_captions", "charades_sta", "tacos")
DEFAULT_STATS = "activitynet_captions"
QUANTILE_LEVELS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)
SPLITS = ("train", "test")

# Ordinary English function words; carry no signal in the latent.
_FUNCTION_WORDS = (
    "a", "the", "person", "then", "is", "with", "of", "and", "to", "in",
    "on", "at", "his", "her", "their", "while", "into", "from", "up", "again",
)
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "pl", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")

__all__ = [
    "DEFAULT_STATS",
    "SyntheticBenchmarkConfig",
    "compute_annotation_statistics",
    "default_benchmark_path",
    "generate_synthetic_benchmark",
    "load_statistics",
    "synthetic_rows",
    "trivial_baseline",
]


# ----------------------------------------------------------------------------------------------------
# Summary statistics of the real datasets
# ----------------------------------------------------------------------------------------------------
def _quantiles(values: Sequence[float]) -> List[float]:
    return [round(float(v), 4) for v in np.quantile(np.asarray(values, dtype=np.float64), QUANTILE_LEVELS)]


def _summarise(durations: List[float], per_video: List[List[Tuple[float, float, str]]], source: str) -> Dict[str, Any]:
    qpv, frac, words = [], [], []
    for duration, moments in zip(durations, per_video):
        kept = 0
        for s, e, sentence in moments:
            s, e = sorted((float(s), float(e)))  # a few real segments are inverted
            s, e = max(0.0, s), min(duration, e)
            if e <= s:
                continue
            kept += 1
            frac.append((e - s) / duration)
            words.append(len(sentence.split()))
        qpv.append(kept)
    keep = [i for i, k in enumerate(qpv) if k > 0]
    return {
        "source": source,
        "num_videos": len(keep),
        "num_queries": len(frac),
        "duration_s": _quantiles([durations[i] for i in keep]),
        "queries_per_video": _quantiles([qpv[i] for i in keep]),
        "moment_fraction": _quantiles(frac),
        "words_per_query": _quantiles(words),
    }


def compute_annotation_statistics(annotation_dir: str) -> Dict[str, Any]:
    """Summary quantiles of the real training annotations (the content of ``synthetic_stats.json``).

    Reads ``charades_sta/charades_sta_train.txt`` (+ ``Charades_v1_train.csv`` for durations),
    ``tacos/train.json`` and ``activitynet_captions/train.json`` under ``annotation_dir``. Segments are
    sorted, clipped to ``[0, duration]`` and dropped when empty; quantiles at :data:`QUANTILE_LEVELS`.
    """
    out: Dict[str, Any] = {"quantile_levels": list(QUANTILE_LEVELS), "datasets": {}}

    anet_path = os.path.join(annotation_dir, "activitynet_captions", "train.json")
    with open(anet_path, encoding="utf-8") as f:
        anet = json.load(f)
    durs, moms = [], []
    for vid in sorted(anet):
        v = anet[vid]
        durs.append(float(v["duration"]))
        moms.append([(s, e, t) for (s, e), t in zip(v["timestamps"], v["sentences"])])
    out["datasets"]["activitynet_captions"] = _summarise(durs, moms, "activitynet_captions/train.json")

    tacos_path = os.path.join(annotation_dir, "tacos", "train.json")
    with open(tacos_path, encoding="utf-8") as f:
        tacos = json.load(f)
    durs, moms = [], []
    for vid in sorted(tacos):
        v = tacos[vid]
        fps = float(v["fps"])
        durs.append(float(v["num_frames"]) / fps)
        moms.append([(s / fps, e / fps, t) for (s, e), t in zip(v["timestamps"], v["sentences"])])
    out["datasets"]["tacos"] = _summarise(durs, moms, "tacos/train.json")

    lengths: Dict[str, float] = {}
    with open(os.path.join(annotation_dir, "charades_sta", "Charades_v1_train.csv"), encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            lengths[rec["id"]] = float(rec["length"])
    per_vid: Dict[str, List[Tuple[float, float, str]]] = {}
    with open(os.path.join(annotation_dir, "charades_sta", "charades_sta_train.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            head, sentence = line.split("##", 1)
            vid, s, e = head.split()
            per_vid.setdefault(vid, []).append((float(s), float(e), sentence))
    vids = sorted(v for v in per_vid if v in lengths)
    out["datasets"]["charades_sta"] = _summarise(
        [lengths[v] for v in vids], [per_vid[v] for v in vids], "charades_sta/charades_sta_train.txt"
    )
    return out


def _stats_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), STATS_FILENAME)


def load_statistics(name: Optional[str] = None) -> Dict[str, Any]:
    """The stored summary statistics: all datasets (``name=None``) or one of :data:`STATS_NAMES`.

    A single dataset's dict also carries ``quantile_levels``.
    """
    with open(_stats_path(), encoding="utf-8") as f:
        stats = json.load(f)
    if name is None:
        return stats
    if name not in stats["datasets"]:
        raise ValueError(f"unknown statistics {name!r}; available: {', '.join(sorted(stats['datasets']))}")
    return dict(stats["datasets"][name], quantile_levels=stats["quantile_levels"])


def _inverse_cdf(u: np.ndarray, levels: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Piecewise-linear quantile function through the stored table."""
    return np.interp(u, np.asarray(levels, dtype=np.float64), np.asarray(values, dtype=np.float64))


# ----------------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyntheticBenchmarkConfig:
    """Every parameter of the generator (its fingerprint names the cache folder).

    Args:
        seed: master seed.
        stats: which real dataset's statistics to follow (:data:`STATS_NAMES`).
        num_train_videos / num_test_videos: split sizes.
        video_dim / text_dim: feature widths; equal by default so the cosine baseline is defined.
        min_steps / max_steps: range of video lengths in feature steps (= seconds at ``fps=1``).
        min_moment_seconds: shortest moment (SnAG gives moments under ~1–2 grid steps no positives).
        max_queries_per_video: cap on the sampled query count.
        min_words / max_words: sentence length range (``max_words`` ≤ the model's ``max_text_length``
            keeps every content word inside training truncation).
        num_verbs / num_objects / num_modifiers: content vocabulary (function words are fixed).
        mixing_hidden / mixing_gain: hidden width and pre-activation std of the hidden latent→video MLP
            (two random partial isometries around a ``tanh``).
        signal_amplitude: norm of a moment's signal (per-event jitter ×U(0.8, 1.2)).
        scene_std / drift_std / drift_rho / noise_std: per-dimension std of the per-video scene vector,
            of the AR(1) drift (stationary std, correlation ``drift_rho`` per step) and of white noise.
        token_noise: per-dimension std of the per-occurrence noise added to word vectors.
        near_duplicate_prob: probability that a video with ≥ 2 queries holds a near-duplicate pair.
        extra_events_mean: Poisson mean of unannotated distractor events per video.
        num_shards: parquet shards per split (the shard count is a multiple of it). Streaming splits
            whole shards across processes, so it must be a multiple of the training world size; the
            default 4 serves 1, 2 or 4 processes (with fewer shards than ranks the loader falls back,
            with a warning, to every rank reading every row). Sharding does not change any row.
    """

    seed: int = 0
    stats: str = DEFAULT_STATS
    num_train_videos: int = 600
    num_test_videos: int = 300
    video_dim: int = 32
    text_dim: int = 32
    min_steps: int = 64
    max_steps: int = 256
    min_moment_seconds: float = 2.0
    max_queries_per_video: int = 10
    min_words: int = 4
    max_words: int = 16
    num_verbs: int = 40
    num_objects: int = 80
    num_modifiers: int = 40
    mixing_hidden: int = 32
    mixing_gain: float = 1.0
    signal_amplitude: float = 2.5
    scene_std: float = 0.1
    drift_std: float = 0.1
    drift_rho: float = 0.9
    noise_std: float = 0.15
    token_noise: float = 0.05
    near_duplicate_prob: float = 0.5
    extra_events_mean: float = 0.5
    num_shards: int = 4

    def __post_init__(self):
        if self.stats not in STATS_NAMES:
            raise ValueError(f"stats must be one of {STATS_NAMES}, got {self.stats!r}")
        for name in ("num_train_videos", "num_test_videos"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("video_dim", "text_dim", "min_steps", "num_verbs", "num_objects", "num_modifiers", "mixing_hidden", "num_shards"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps < self.min_steps:
            raise ValueError(f"max_steps ({self.max_steps}) must be >= min_steps ({self.min_steps})")
        if not 4 <= self.min_words <= self.max_words:
            raise ValueError(f"need 4 <= min_words <= max_words (3 content words + 1), got {self.min_words}, {self.max_words}")
        if not 0 < self.min_moment_seconds <= self.min_steps:
            raise ValueError(f"min_moment_seconds must be in (0, min_steps], got {self.min_moment_seconds}")
        if self.max_queries_per_video < 1:
            raise ValueError(f"max_queries_per_video must be >= 1, got {self.max_queries_per_video}")
        if not 0 <= self.near_duplicate_prob <= 1:
            raise ValueError(f"near_duplicate_prob must be in [0, 1], got {self.near_duplicate_prob}")
        if self.num_verbs < 2 or self.num_objects < 2 or self.num_modifiers < 2:
            raise ValueError("each content role needs at least 2 words (near-duplicates swap one)")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Stable hash of the version and every parameter (names the cache folder)."""
        text = json.dumps({"version": SYNTHETIC_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()

    def num_videos(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return int(self.num_train_videos if split == "train" else self.num_test_videos)


def _rng(*parts: Any) -> np.random.Generator:
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _partial_isometry(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A random ``(rows, cols)`` matrix with orthonormal columns (rows >= cols) or rows (rows < cols)."""
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))[None, :]  # unique QR (Haar-distributed q)
    return q if rows >= cols else q.T


class _World:
    """Vocabulary, word vectors and the hidden mixing MLP shared by all splits of one seed."""

    def __init__(self, spec: SyntheticBenchmarkConfig):
        rng = _rng("mscl-synthetic", SYNTHETIC_VERSION, spec.seed, "world")
        sizes = (spec.num_verbs, spec.num_objects, spec.num_modifiers)
        names = self._pseudo_words(rng, sum(sizes))
        self.verbs = [w + "s" for w in names[: sizes[0]]]
        self.objects = names[sizes[0] : sizes[0] + sizes[1]]
        self.modifiers = [w + "ly" for w in names[sizes[0] + sizes[1] :]]
        self.function_words = list(_FUNCTION_WORDS)
        # Token ids: function words, then verbs, objects, modifiers.
        self.words = self.function_words + self.verbs + self.objects + self.modifiers
        self.num_function = len(self.function_words)
        offsets = np.cumsum([self.num_function, *sizes])
        self.role_ranges = [(int(offsets[i]), int(offsets[i + 1])) for i in range(3)]
        d = spec.text_dim
        self.word_vectors = (rng.standard_normal((len(self.words), d)) / math.sqrt(d)).astype(np.float64)
        # Hidden mixing: latent (text_dim) -> tanh(hidden) -> video_dim. Both layers are random
        # partial isometries (orthonormal columns/rows), so different sentences get signatures about as
        # decorrelated as their latents (a product of Gaussian matrices is ill-conditioned and would make
        # all signatures share a few dominant directions); no bias, so tanh keeps them zero-mean.
        # Pre-activations have std ``mixing_gain``: the map is clearly nonlinear but smooth.
        h = spec.mixing_hidden
        self.w1 = _partial_isometry(rng, h, d) * (spec.mixing_gain * math.sqrt(h))
        self.w2 = _partial_isometry(rng, spec.video_dim, h)

    @staticmethod
    def _pseudo_words(rng: np.random.Generator, n: int) -> List[str]:
        seen, out = set(), []
        while len(out) < n:
            k = int(rng.integers(2, 4))
            w = "".join(_ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))] for _ in range(k))
            if w not in seen and w not in _FUNCTION_WORDS:
                seen.add(w)
                out.append(w)
        return out

    def latent(self, content: Sequence[int]) -> np.ndarray:
        z = self.word_vectors[list(content)].sum(axis=0)
        return z / max(np.linalg.norm(z), 1e-12)

    def signal(self, content: Sequence[int]) -> np.ndarray:
        """Unit-norm video-space signature of a sentence (through the hidden MLP)."""
        z = self.latent(content)
        v = self.w2 @ np.tanh(self.w1 @ z)
        return v / max(np.linalg.norm(v), 1e-12)

    def random_content(self, rng: np.random.Generator) -> Tuple[int, int, int]:
        return tuple(int(rng.integers(lo, hi)) for lo, hi in self.role_ranges)  # type: ignore[return-value]


def _sentence_tokens(world: _World, content: Sequence[int], length: int, rng: np.random.Generator) -> List[int]:
    """Content words in role order, function words filling the other positions."""
    slots = np.sort(rng.choice(length, size=3, replace=False))
    tokens = [int(rng.integers(world.num_function)) for _ in range(length)]
    for slot, word in zip(slots, content):
        tokens[int(slot)] = int(word)
    return tokens


def _token_features(world: _World, tokens: Sequence[int], spec: SyntheticBenchmarkConfig, rng: np.random.Generator) -> np.ndarray:
    base = world.word_vectors[list(tokens)]
    noise = rng.standard_normal(base.shape) * (spec.token_noise / math.sqrt(spec.text_dim))
    return (base + noise).astype(np.float32)


def _coverage(num_steps: int, start: float, end: float) -> np.ndarray:
    """Fraction of each step ``[i, i+1)`` covered by ``[start, end]`` (fps 1, clip 1)."""
    left = np.arange(num_steps, dtype=np.float64)
    return np.clip(np.minimum(left + 1.0, end) - np.maximum(left, start), 0.0, 1.0)


def _make_video(world: _World, spec: SyntheticBenchmarkConfig, stats: Dict[str, Any], split: str, index: int) -> Dict[str, Any]:
    rng = _rng("mscl-synthetic", SYNTHETIC_VERSION, spec.seed, split, index)
    levels = stats["quantile_levels"]

    # Duration: affine map of the real durations (1% quantile -> min_steps, 99% -> max_steps), clipped.
    q_dur = np.asarray(stats["duration_s"], dtype=np.float64)
    lo, hi = float(q_dur[levels.index(0.01)]), float(q_dur[levels.index(0.99)])
    real = float(_inverse_cdf(rng.random(), levels, q_dur))
    pos = 0.5 if hi <= lo else min(max((real - lo) / (hi - lo), 0.0), 1.0)
    steps = int(round(spec.min_steps + pos * (spec.max_steps - spec.min_steps)))
    duration = float(steps)

    n_queries = int(round(float(_inverse_cdf(rng.random(), levels, stats["queries_per_video"]))))
    n_queries = min(max(n_queries, 1), spec.max_queries_per_video)
    n_extra = int(rng.poisson(spec.extra_events_mean)) if spec.extra_events_mean > 0 else 0

    def draw_moment() -> Tuple[float, float]:
        frac = float(_inverse_cdf(rng.random(), levels, stats["moment_fraction"]))
        length = min(max(frac * duration, spec.min_moment_seconds), duration)
        start = float(rng.uniform(0.0, duration - length))
        # two decimals like real annotations; length >= min_moment_seconds keeps end > start
        return round(start, 2), round(min(start + length, duration), 2)

    def draw_length() -> int:
        n = int(round(float(_inverse_cdf(rng.random(), levels, stats["words_per_query"]))))
        return min(max(n, spec.min_words), spec.max_words)

    # Sentences: distinct content triples within a video; optionally one near-duplicate pair.
    contents: List[Tuple[int, ...]] = []
    while len(contents) < n_queries:
        c = world.random_content(rng)
        if c not in contents:
            contents.append(c)
    tokens = [_sentence_tokens(world, c, draw_length(), rng) for c in contents]
    duplicate_of: Dict[int, int] = {}
    if n_queries >= 2 and rng.random() < spec.near_duplicate_prob:
        a, b = (int(x) for x in rng.choice(n_queries, size=2, replace=False))
        role = int(rng.integers(3))
        lo_r, hi_r = world.role_ranges[role]
        while True:
            word = int(rng.integers(lo_r, hi_r))
            new = list(contents[a])
            new[role] = word
            if word != contents[a][role] and tuple(new) not in contents:
                break
        contents[b] = tuple(new)
        old_word = contents[a][role]
        tokens[b] = [word if t == old_word else t for t in tokens[a]]
        duplicate_of[b] = a

    moments = [draw_moment() for _ in range(n_queries)]
    extra = [(world.random_content(rng), draw_moment()) for _ in range(n_extra)]

    # Video features: background + one signal per event (queries and unannotated extras).
    d = spec.video_dim
    scene = rng.standard_normal(d) * spec.scene_std
    innovations = rng.standard_normal((steps, d)) * (spec.drift_std * math.sqrt(1.0 - spec.drift_rho**2))
    drift = np.empty((steps, d))
    drift[0] = rng.standard_normal(d) * spec.drift_std
    for t in range(1, steps):
        drift[t] = spec.drift_rho * drift[t - 1] + innovations[t]
    video = scene[None, :] + drift + rng.standard_normal((steps, d)) * spec.noise_std
    for content, (s, e) in list(zip(contents, moments)) + extra:
        amp = spec.signal_amplitude * float(rng.uniform(0.8, 1.2))
        video += _coverage(steps, s, e)[:, None] * (amp * world.signal(content))[None, :]

    vid = f"syn{SYNTHETIC_VERSION}-{split}-{index:05d}"
    queries = []
    for j, (toks, (s, e)) in enumerate(zip(tokens, moments)):
        queries.append(
            {
                "query_id": f"{vid}-q{j:02d}",
                "sentence": " ".join(world.words[t] for t in toks),
                "text_features": _token_features(world, toks, spec, rng),
                "start": float(s),
                "end": float(e),
                # Extra (non-schema) fields are dropped by the writer; kept here for tests/analysis.
                "token_ids": list(toks),
                "near_duplicate_of": duplicate_of.get(j, -1),
            }
        )
    return {
        "video_id": vid,
        "duration": duration,
        "fps": 1.0,
        "clip_size": 1.0,
        "clip_stride": 1.0,
        "downsample_rate": 1,
        "video_features": video.astype(np.float32),
        "queries": queries,
    }


def _spec_from(spec: Optional[SyntheticBenchmarkConfig], kwargs: Dict[str, Any]) -> SyntheticBenchmarkConfig:
    if spec is None:
        return SyntheticBenchmarkConfig(**kwargs)
    return dataclasses.replace(spec, **kwargs) if kwargs else spec


def synthetic_rows(
    split: str = "train", spec: Optional[SyntheticBenchmarkConfig] = None, *, start: int = 0, stop: Optional[int] = None, **kwargs
) -> Iterator[Dict[str, Any]]:
    """Yield the rows (schema dicts) of one split, videos ``start..stop`` (default: the whole split).

    ``kwargs`` are :class:`SyntheticBenchmarkConfig` fields (e.g. ``seed=1, num_test_videos=50``).
    Query dicts carry two extra fields the writer drops: ``token_ids`` and ``near_duplicate_of`` (index
    of the query it duplicates, or −1).
    """
    spec = _spec_from(spec, kwargs)
    n = spec.num_videos(split)
    stop = n if stop is None else min(int(stop), n)
    world = _World(spec)
    stats = load_statistics(spec.stats)
    for index in range(int(start), stop):
        yield _make_video(world, spec, stats, split, index)


def _schema_row(row: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(row)
    out["queries"] = [{k: q[k] for k in ("query_id", "sentence", "text_features", "start", "end")} for q in row["queries"]]
    return out


def generate_synthetic_benchmark(
    out_dir: Optional[str] = None,
    spec: Optional[SyntheticBenchmarkConfig] = None,
    *,
    overwrite: bool = False,
    **kwargs,
) -> str:
    """Write the ``train`` and ``test`` splits in the package's dataset format; returns the folder.

    Args:
        out_dir: destination (default: :func:`default_benchmark_path`'s cache folder for these settings).
        spec: a :class:`SyntheticBenchmarkConfig`; ``kwargs`` override its fields (``seed``, ``stats``,
            ``num_train_videos``, ``num_test_videos``, ``video_dim``, ``text_dim``, ...).
        overwrite: replace existing splits.
    """
    from .schema import write_grounding_dataset

    spec = _spec_from(spec, kwargs)
    if out_dir is None:
        return default_benchmark_path(spec)
    summary = {"generator": "modeling_mscl.data.synthetic", "version": SYNTHETIC_VERSION,
               "fingerprint": spec.fingerprint(), "spec": spec.to_dict()}
    for split in SPLITS:
        if spec.num_videos(split) == 0:
            continue
        rows = (_schema_row(r) for r in synthetic_rows(split, spec))
        write_grounding_dataset(
            rows, out_dir, split, spec.video_dim, spec.text_dim, overwrite=overwrite, summary=summary,
            min_shards=spec.num_shards,
        )
    return os.path.abspath(out_dir)


def cache_dir() -> str:
    """``$MSCL_CACHE`` or ``~/.cache/mscl``."""
    return os.environ.get("MSCL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mscl")


def _is_complete(path: str, spec: SyntheticBenchmarkConfig) -> bool:
    from .schema import read_metadata

    meta = read_metadata(path) if os.path.isdir(path) else None
    if not meta:
        return False
    splits = meta.get("splits", {})
    return all(
        split in splits and splits[split].get("num_videos") == spec.num_videos(split)
        and splits[split].get("conversion", {}).get("fingerprint") == spec.fingerprint()
        for split in SPLITS if spec.num_videos(split) > 0
    )


def default_benchmark_path(spec: Optional[SyntheticBenchmarkConfig] = None, **kwargs) -> str:
    """The cached benchmark folder ``<cache>/synthetic-v<version>-<fingerprint>``, generated on first use.

    Concurrent callers serialise on a lock file; a finished folder is reused as is.
    """
    spec = _spec_from(spec, kwargs)
    path = os.path.join(cache_dir(), f"synthetic-v{SYNTHETIC_VERSION}-{spec.fingerprint()}")
    if _is_complete(path, spec):
        return path
    os.makedirs(cache_dir(), exist_ok=True)
    with _file_lock(path + ".lock"):
        if not _is_complete(path, spec):
            generate_synthetic_benchmark(path, spec, overwrite=True)
    return path


@contextlib.contextmanager
def _file_lock(path: str):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------------------------------
# Trivial baseline
# ----------------------------------------------------------------------------------------------------
DEFAULT_WINDOW_FRACTIONS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)


def _tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(pred[:, 1], gt[1]) - np.maximum(pred[:, 0], gt[0]), 0.0, None)
    union = (pred[:, 1] - pred[:, 0]) + (gt[1] - gt[0]) - inter
    return inter / np.maximum(union, 1e-12)


def _window_predictions(scores: np.ndarray, fractions: Sequence[float], top_k: int, nms_iou: float = 0.5) -> np.ndarray:
    """Best windows ``(start_idx, end_idx_exclusive, score)`` by mean-inside − mean-outside, greedy NMS."""
    t = len(scores)
    csum = np.concatenate([[0.0], np.cumsum(scores)])
    total = csum[-1]
    cands = []
    for length in sorted({min(t, max(1, int(round(f * t)))) for f in fractions}):
        starts = np.arange(0, t - length + 1)
        inside = csum[starts + length] - csum[starts]
        mean_in = inside / length
        mean_out = (total - inside) / (t - length) if t > length else np.zeros_like(mean_in)
        cands.append(np.stack([starts, starts + length, mean_in - mean_out], axis=1))
    cands = np.concatenate(cands, axis=0)
    cands = cands[np.argsort(-cands[:, 2], kind="stable")]
    kept: List[np.ndarray] = []
    for c in cands:
        if all(_tiou(k[None, :2], c[:2])[0] < nms_iou for k in kept):
            kept.append(c)
            if len(kept) == top_k:
                break
    return np.stack(kept, axis=0)


def _recall(predictions, ground_truth, ranks, thresholds) -> Dict[str, Any]:
    from ..metrics import recall_at_tiou

    return dict(recall_at_tiou(predictions, ground_truth, ranks, thresholds))


def trivial_baseline(
    rows: Iterable[Mapping[str, Any]],
    *,
    ranks: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    window_fractions: Sequence[float] = DEFAULT_WINDOW_FRACTIONS,
) -> Dict[str, Any]:
    """Text-to-video cosine baseline: no learning, no use of the hidden mixing.

    Each feature step is scored by the cosine between its video feature and the query's mean token
    feature (requires ``video_dim == text_dim``); candidate windows of ``window_fractions`` of the
    video are ranked by mean score inside minus mean score outside, de-duplicated by greedy NMS
    (tIoU 0.5), and converted to seconds with the row's :class:`TimeMapping`. Returns the metrics of
    :func:`modeling_mscl.metrics.recall_at_tiou` (``"R1@0.5"`` …, percent, ``mIoU``, ``num_queries``).
    """
    predictions, ground_truth = [], []
    for row in rows:
        feats = np.asarray(row["video_features"], dtype=np.float64)
        rate = int(row.get("downsample_rate", 1) or 1)
        feats = feats[::rate]
        mapping = TimeMapping(float(row["fps"]), float(row["clip_size"]), float(row["clip_stride"]), rate, 1, float(row["duration"]))
        vnorm = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        for q in row["queries"]:
            text = np.asarray(q["text_features"], dtype=np.float64)
            if text.ndim != 2 or text.shape[0] == 0:
                raise ValueError(f"query {q.get('query_id')!r}: the baseline needs token features")
            if text.shape[1] != feats.shape[1]:
                raise ValueError(
                    f"the cosine baseline needs video_dim == text_dim, got {feats.shape[1]} and {text.shape[1]}"
                )
            m = text.mean(axis=0)
            scores = vnorm @ (m / max(np.linalg.norm(m), 1e-12))
            win = _window_predictions(scores, window_fractions, max(ranks))
            start = mapping.feature_index_to_seconds(win[:, 0] - 0.5)
            end = mapping.feature_index_to_seconds(win[:, 1] - 0.5)
            predictions.append(np.stack([start, end, win[:, 2]], axis=1))
            ground_truth.append([float(q["start"]), float(q["end"])])
    metrics: Dict[str, Any] = dict(_recall(predictions, ground_truth, ranks, thresholds))
    metrics["num_queries"] = len(predictions)
    return metrics
