# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Sentence → token features, as recorded in a checkpoint's ``config.text_feature_source``.

The grounding model consumes *token-level* text features ``(L, text_input_dim)``; it never sees raw text.
This module turns a sentence into such features with the encoder the checkpoint was trained with:

* ``{"type": "word_vectors", "tokenizer": "basic_english", "dim": 300, "name": "glove.6B.300d"}``
  (TACoS, Charades, ANet in SnAG): the sentence is split by :func:`basic_english_tokenize` (a
  reimplementation of torchtext's ``basic_english`` normalisation, no torchtext needed) and every token
  becomes its vector from a GloVe-format text file (``word vector`` per line; a word2vec ``"N D"`` header
  line is skipped), with a lower-case fallback; out-of-vocabulary tokens are zero vectors. The file is
  supplied by the user (``word_vectors_path``, or ``"path"`` in the source dict) and read once per process.
* ``{"type": "hf", "name_or_path": ..., "layout": "last_hidden_state"}`` (BERT, MiniLM, …): the Hugging
  Face tokenizer + model; the features are the per-token last hidden states of the whole tokenized
  sentence, special tokens included (``[CLS] … [SEP]`` for BERT-style models) unless the source says
  ``"keep_special_tokens": false``.
* ``{"type": "hf", ..., "layout": "clip_text_tokens", "max_tokens": 75}`` (MAD): a CLIP text model; the
  features are the per-token final hidden states (after CLIP's final layer norm), multiplied by the
  text projection when ``"project"`` is true (default), so their width is ``projection_dim``.
  ``max_tokens`` caps the token count (start/end tokens included).
* ``{"type": "precomputed"}``: the checkpoint has no sentence encoder; callers pass token features.

Raw-text support is optional (``pip install mscl[text]``): ``transformers``' ``AutoTokenizer`` /
``AutoModel`` are imported lazily, only when a sentence has to be embedded. Every encoder checks that its
output width equals the checkpoint's ``text_input_dim`` and raises a ``ValueError`` otherwise.

This file travels with checkpoints (``trust_remote_code``), so it imports nothing from the package.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    "HFTextEncoder",
    "WordVectorTable",
    "WordVectorTextEncoder",
    "basic_english_tokenize",
    "build_text_encoder",
    "load_word_vectors",
]


# ----------------------------------------------------------------------------------------------------
# torchtext "basic_english" tokenisation, reimplemented
# ----------------------------------------------------------------------------------------------------
# The normalisation rules of torchtext's ``basic_english`` (what SnAG tokenises GloVe sentences with),
# applied in this order to the lower-cased line. All of them are literal substitutions, so plain
# ``str.replace`` reproduces them; the final whitespace collapse is ``str.split()``.
_BASIC_ENGLISH_RULES: Tuple[Tuple[str, str], ...] = (
    ("'", " '  "),  # apostrophes become their own token
    ('"', ""),  # double quotes are dropped
    (".", " . "),
    ("<br />", " "),  # HTML line breaks (IMDB legacy)
    (",", " , "),
    ("(", " ( "),
    (")", " ) "),
    ("!", " ! "),
    ("?", " ? "),
    (";", " "),  # semicolons and colons are dropped
    (":", " "),
)


def basic_english_tokenize(text: str) -> List[str]:
    """Tokenise like torchtext's ``get_tokenizer("basic_english")``.

    Lower-case; ``'`` → ``" '  "``; ``"`` removed; ``.``, ``,``, ``(``, ``)``, ``!``, ``?`` padded with
    spaces; ``<br />``, ``;``, ``:`` → space; split on whitespace.

    Example: ``basic_english_tokenize("He's here, (isn't he?)")`` →
    ``['he', "'", 's', 'here', ',', '(', 'isn', "'", 't', 'he', '?', ')']``.
    """
    if not isinstance(text, str):
        raise ValueError(f"a sentence must be a str, got {type(text).__name__}")
    line = text.lower()
    for old, new in _BASIC_ENGLISH_RULES:
        line = line.replace(old, new)
    return line.split()


# ----------------------------------------------------------------------------------------------------
# Word-vector tables (GloVe text format)
# ----------------------------------------------------------------------------------------------------
class WordVectorTable:
    """An in-memory word → vector table (``vectors`` is ``(V, D)`` float32, ``index`` maps word → row)."""

    def __init__(self, index: Dict[str, int], vectors: np.ndarray, path: Optional[str] = None):
        if vectors.ndim != 2:
            raise ValueError(f"word vectors must be a (V, D) matrix, got shape {vectors.shape}")
        self.index = index
        self.vectors = vectors
        self.path = path

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def lookup(self, tokens: Sequence[str]) -> np.ndarray:
        """``(len(tokens), D)``: each token's vector, else its lower-cased form's, else zeros (SnAG)."""
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        for i, tok in enumerate(tokens):
            row = self.index.get(tok)
            if row is None:
                row = self.index.get(tok.lower())
            if row is not None:
                out[i] = self.vectors[row]
        return out


_TABLE_CACHE: Dict[Tuple[str, float, int], WordVectorTable] = {}
_TABLE_LOCK = threading.Lock()


def load_word_vectors(path: str, dim: Optional[int] = None) -> WordVectorTable:
    """Read a GloVe-format text file (``word v_1 … v_D`` per line, UTF-8) into a :class:`WordVectorTable`.

    A first line of exactly two integers (word2vec text header ``"count dim"``) is skipped. Words may
    contain spaces (the last ``D`` fields are the vector). When a word occurs twice the first wins.
    Tables are cached per (path, mtime, size) for the life of the process, since GloVe 6B 300-d takes
    tens of seconds to parse.

    Raises:
        ValueError: missing file, empty table, ragged rows, or a width different from ``dim``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"word-vector file not found: {path!r}")
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime, stat.st_size)
    with _TABLE_LOCK:
        table = _TABLE_CACHE.get(key)
        if table is None:
            table = _parse_word_vectors(path)
            _TABLE_CACHE[key] = table
    if dim is not None and table.dim != int(dim):
        raise ValueError(
            f"word vectors in {path!r} are {table.dim}-d but the checkpoint expects text_input_dim={int(dim)}"
        )
    return table


def _parse_word_vectors(path: str) -> WordVectorTable:
    index: Dict[str, int] = {}
    rows: List[np.ndarray] = []
    width: Optional[int] = None
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.rstrip().split(" ")
            if lineno == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                continue  # word2vec text header
            if width is None:
                width = len(fields) - 1
                if width < 1:
                    raise ValueError(f"{path}:{lineno}: expected 'word v1 ... vD', got {line[:80]!r}")
            if len(fields) < width + 1:
                raise ValueError(f"{path}:{lineno}: expected {width} numbers after the word, got {len(fields) - 1}")
            word = " ".join(fields[: len(fields) - width])
            try:
                vec = np.asarray(fields[len(fields) - width :], dtype=np.float32)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: non-numeric vector entry ({exc})") from None
            if word not in index:
                index[word] = len(rows)
                rows.append(vec)
    if not rows:
        raise ValueError(f"word-vector file {path!r} holds no vectors")
    return WordVectorTable(index, np.stack(rows), path=path)


class WordVectorTextEncoder:
    """Sentence → ``(L, D)`` token features with ``basic_english`` tokens and a word-vector table."""

    def __init__(self, table: WordVectorTable, tokenizer: str = "basic_english"):
        if tokenizer != "basic_english":
            raise ValueError(f"unsupported word-vector tokenizer {tokenizer!r}; only 'basic_english' is implemented")
        self.table = table
        self.dim = table.dim

    def tokenize(self, sentence: str) -> List[str]:
        return basic_english_tokenize(sentence)

    def __call__(self, sentence: str) -> torch.Tensor:
        tokens = self.tokenize(sentence)
        if not tokens:
            raise ValueError(f"sentence {sentence!r} has no tokens after basic_english tokenisation")
        return torch.from_numpy(self.table.lookup(tokens))


# ----------------------------------------------------------------------------------------------------
# Hugging Face text models
# ----------------------------------------------------------------------------------------------------
class HFTextEncoder:
    """Sentence → per-token features of a Hugging Face text model (loaded lazily, kept in eval mode).

    Args:
        name_or_path: Hub id or local folder (honours ``HF_HUB_OFFLINE``).
        layout: ``"last_hidden_state"`` (per-token last hidden states) or ``"clip_text_tokens"`` (CLIP
            text tower per-token outputs, projected when ``project``).
        max_tokens: cap on the number of tokens (special tokens included); default: the tokenizer's limit.
        keep_special_tokens: keep ``[CLS]``/``[SEP]`` (or CLIP's start/end) positions.
        project: CLIP only — apply ``text_projection`` to every token.
        device: where the text model runs.
    """

    LAYOUTS = ("last_hidden_state", "clip_text_tokens")

    def __init__(
        self,
        name_or_path: str,
        layout: str = "last_hidden_state",
        *,
        max_tokens: Optional[int] = None,
        keep_special_tokens: bool = True,
        project: bool = True,
        device: Optional[torch.device] = None,
        revision: Optional[str] = None,
    ):
        if layout not in self.LAYOUTS:
            raise ValueError(f"unknown text feature layout {layout!r}; expected one of {self.LAYOUTS}")
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers is a core dependency
            raise ImportError("raw-text grounding needs `pip install mscl[text]`") from exc
        self.name_or_path = name_or_path
        self.layout = layout
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.keep_special_tokens = bool(keep_special_tokens)
        self.project = bool(project)
        kwargs = {} if revision is None else {"revision": revision}
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        if layout == "clip_text_tokens":
            from transformers import CLIPTextModelWithProjection

            self.model = CLIPTextModelWithProjection.from_pretrained(name_or_path, **kwargs)
            cfg = self.model.config
            self.dim = int(cfg.projection_dim if self.project else cfg.hidden_size)
        else:
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(name_or_path, **kwargs)
            cfg = getattr(self.model.config, "text_config", None) or self.model.config
            self.dim = int(cfg.hidden_size)
        self.model.eval()
        if device is not None:
            self.model.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(self, sentence: str) -> torch.Tensor:
        # one sentence at a time, unpadded: SnAG encodes every query alone (§5.1), and padding would make
        # the features depend on the other queries of the call
        kwargs: Dict[str, Any] = {"return_tensors": "pt"}
        if self.max_tokens is not None:
            kwargs.update(truncation=True, max_length=self.max_tokens)
        enc = self.tokenizer(sentence, return_special_tokens_mask=True, **kwargs)
        special = enc.pop("special_tokens_mask")[0].bool()
        enc = {k: v.to(self.device) for k, v in enc.items()}
        if self.layout == "clip_text_tokens":
            out = self.model(input_ids=enc["input_ids"], attention_mask=enc.get("attention_mask"))
            tokens = out.last_hidden_state[0]  # after CLIP's final layer norm
            if self.project:
                tokens = self.model.text_projection(tokens)
        else:
            tokens = self.model(**enc).last_hidden_state[0]
        if not self.keep_special_tokens:
            tokens = tokens[~special.to(tokens.device)]
        if tokens.shape[0] == 0:
            raise ValueError(f"sentence {sentence!r} has no tokens after tokenisation")
        return tokens.float().cpu()


# ----------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------
def build_text_encoder(
    source: Optional[Mapping[str, Any]],
    text_input_dim: int,
    *,
    word_vectors_path: Optional[str] = None,
    device: Optional[torch.device] = None,
) -> Callable[[str], torch.Tensor]:
    """Build the sentence encoder a ``text_feature_source`` dict describes and check its width.

    Args:
        source: the checkpoint's ``config.text_feature_source`` (or a user override).
        text_input_dim: the checkpoint's ``text_input_dim``; the encoder's width must match.
        word_vectors_path: the GloVe-format file for ``"word_vectors"`` sources (else ``source["path"]``).
        device: device of a Hugging Face text model.

    Raises:
        ValueError: no usable source (``None``/``"precomputed"``), a missing word-vector file, an unknown
            type, or a width that disagrees with ``text_input_dim``.
    """
    if not source or source.get("type") in (None, "precomputed"):
        note = f" ({source['note']})" if source and source.get("note") else ""
        raise ValueError(
            "this checkpoint records no sentence encoder (text_feature_source is "
            f"{'missing' if not source else 'precomputed'}{note}); pass token features (L, {text_input_dim}) "
            "instead of sentences, or give the pipeline a text_feature_source / text_encoder"
        )
    kind = source["type"]
    if kind == "word_vectors":
        path = word_vectors_path or source.get("path")
        if not path:
            raise ValueError(
                f"this checkpoint embeds sentences with word vectors ({source.get('name', 'GloVe')}, "
                f"{source.get('dim', text_input_dim)}-d); pass word_vectors_path=<GloVe-format text file> to the pipeline"
            )
        table = load_word_vectors(path)
        if table.dim != int(text_input_dim):
            raise ValueError(
                f"word vectors in {path!r} are {table.dim}-d but the checkpoint expects text_input_dim={int(text_input_dim)}"
            )
        return WordVectorTextEncoder(table, tokenizer=source.get("tokenizer", "basic_english"))
    if kind == "hf":
        name = source.get("name_or_path")
        if not name:
            raise ValueError("text_feature_source of type 'hf' needs 'name_or_path'")
        encoder = HFTextEncoder(
            name,
            source.get("layout", "last_hidden_state"),
            max_tokens=source.get("max_tokens"),
            keep_special_tokens=source.get("keep_special_tokens", True),
            project=source.get("project", True),
            device=device,
            revision=source.get("revision"),
        )
        if encoder.dim != int(text_input_dim):
            raise ValueError(
                f"text encoder {name!r} ({encoder.layout}) produces {encoder.dim}-d token features but the "
                f"checkpoint expects text_input_dim={int(text_input_dim)}"
            )
        return encoder
    raise ValueError(f"unknown text_feature_source type {kind!r}; expected 'hf', 'word_vectors' or 'precomputed'")
