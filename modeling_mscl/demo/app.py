# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The Gradio app: upload a video, type sentences (one per line), see the moments.

Structure:

* :class:`GroundingDemo` is the logic, without Gradio: it checks the inputs, extracts the video's features
  through the pipeline (``pipe.extract_video_features``: decoded and embedded once, then read from the
  pipeline's on-disk feature cache; a progress callback reports the decoded seconds), grounds **all the
  sentences in one pipeline call** (``pipe(video_file, sentences, top_k=..., threshold=...)``), reads a few
  thumbnails by seeking, and renders the answer (:mod:`.render`). Bad input raises :class:`DemoInputError`
  with a sentence for the page.
* :func:`build_demo` lays out the page (``gr.Blocks``): the video player (``#mscl-video``), the sentences,
  top-k and threshold, example clips (:mod:`.examples`), and the answer (``gr.HTML`` whose ``js_on_load``
  installs the click-to-seek handler, :data:`.render.SEEK_JS`) with the raw output as JSON. A
  :class:`DemoInputError` becomes a message in the answer's place plus a warning toast; the app keeps
  serving.
* :func:`load_pipeline` loads a checkpoint: with the ``mscl`` package installed, its own classes; without
  it (a Space), the checkpoint's remote code (``trust_remote_code=True``).

This subpackage is copied as is into the Space folder (:mod:`modeling_mscl.hub.space`), so it imports
only third-party packages and its siblings; ``import modeling_mscl`` is tried, never required.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .frames import evenly_spaced, thumbnail_uris
from .render import SEEK_JS, answer_html, fmt_seconds, message_html

__all__ = ["DemoAnswer", "DemoInputError", "GroundingDemo", "build_demo", "launch_kwargs", "load_pipeline"]

logger = logging.getLogger(__name__)

TASK = "video-temporal-grounding"
PAGE_CSS = """
#mscl-answer {min-height: 4rem;}
.mscl-title h1 {margin-bottom: .2rem;}
"""


class DemoInputError(ValueError):
    """Input the demo cannot answer (no video, not a video, no sentence, a checkpoint without a video
    extractor, ...); the message is written for the page."""


@dataclass
class DemoAnswer:
    """One answered request."""

    results: List[Dict[str, Any]]  # the pipeline's output, one dict per sentence
    html: str
    summary: str
    duration: float
    num_features: int
    from_cache: bool
    seconds: float
    timings: Dict[str, float] = field(default_factory=dict)


def _is_hub_id(name: Any) -> bool:
    return isinstance(name, str) and not os.path.exists(name) and name.count("/") == 1 and not name.startswith((".", "/", "~"))


def _describe_source(source: Optional[Mapping[str, Any]]) -> str:
    if not source or source.get("type") in (None, "precomputed"):
        return str((source or {}).get("features") or "pre-extracted features")
    if source.get("type") == "hf":
        name = source.get("name_or_path", "?")
        shown = name if _is_hub_id(name) else os.path.basename(os.path.normpath(str(name)))
        sampling = source.get("sampling") or {}
        fps = sampling.get("fps")
        return f"{shown} ({source.get('output', 'image_embeds')}" + (f", {float(fps):g} frames/s)" if fps else ")")
    return str(source.get("type"))


class GroundingDemo:
    """The demo's logic over a ``video-temporal-grounding`` pipeline (no Gradio needed).

    Args:
        pipe: an :class:`~modeling_mscl.pipeline_mscl.MSCLGroundingPipeline` (the package's or a checkpoint's
            remote-code copy; only its public methods are used).
        max_sentences: sentences per request (more is an input error).
        filmstrip_frames: frames drawn above the timelines (0: none).
        moment_thumbnails: moments per sentence that get a thumbnail in the table (the best ones).
        max_thumbnails: thumbnails per request at most (each costs a seek).
    """

    def __init__(
        self,
        pipe,
        *,
        model_name: Optional[str] = None,
        max_sentences: int = 64,
        filmstrip_frames: int = 12,
        moment_thumbnails: int = 3,
        max_thumbnails: int = 48,
    ):
        self.pipe = pipe
        self.model_name = model_name or getattr(getattr(pipe.model, "config", None), "_name_or_path", None) or "model"
        self.max_sentences = int(max_sentences)
        self.filmstrip_frames = int(filmstrip_frames)
        self.moment_thumbnails = int(moment_thumbnails)
        self.max_thumbnails = int(max_thumbnails)
        self._filmstrips: "OrderedDict[Tuple[str, int, int], List[Tuple[float, str]]]" = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "answers": 0, "extractions": 0, "cache_hits": 0, "input_errors": 0}

    # ------------------------------------------------------------------------------------------------
    @property
    def config(self):
        return self.pipe.model.config

    @property
    def video_source(self) -> Dict[str, Any]:
        source = getattr(self.pipe, "video_feature_source", None)
        if source is None:
            source = getattr(self.config, "video_feature_source", None)
        return dict(source or {})

    @property
    def reads_video_files(self) -> bool:
        return self.video_source.get("type") == "hf"

    def no_extractor_message(self) -> Optional[str]:
        """Why this checkpoint cannot ground a video file (``None`` when it can)."""
        if self.reads_video_files:
            return None
        src = self.video_source
        features = src.get("features") or src.get("note") or "pre-extracted clip features"
        dim = src.get("dim") or getattr(self.config, "video_input_dim", "?")
        text = (
            f"This checkpoint reads {features} ({dim}-d), which no Hugging Face image model extracts from a video "
            "file, so it cannot ground an uploaded video."
        )
        if src.get("how_to_extract"):
            text += f" How to produce them: {src['how_to_extract']}"
        return text + " Checkpoints trained on CLIP frame features (e.g. the mad_clip and custom_clip_b32 presets) take video files."

    def describe(self) -> str:
        """One line about the checkpoint for the page's header."""
        cfg = self.config
        preset = getattr(cfg, "preset", None)
        text_src = getattr(cfg, "text_feature_source", None) or {}
        if text_src.get("type") == "hf":
            name = str(text_src.get("name_or_path", "?"))
            text = ((name if _is_hub_id(name) else os.path.basename(os.path.normpath(name)))
                    + f" ({text_src.get('layout', 'last_hidden_state')})")
        else:
            text = text_src.get("name") or text_src.get("type") or "token features only"
        return (
            f"Model `{self.model_name}`" + (f" (preset `{preset}`)" if preset else "")
            + f" · video features: {_describe_source(self.video_source)} · sentences: {text}"
        )

    # ------------------------------------------------------------------------------------------------
    def parse_sentences(self, text: Any) -> List[str]:
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise DemoInputError(f"The sentences must be text, got {type(text).__name__}.")
        sentences = [line.strip() for line in text.splitlines() if line.strip()]
        if not sentences:
            raise DemoInputError("Type at least one sentence (one per line) describing what to find in the video.")
        if len(sentences) > self.max_sentences:
            raise DemoInputError(f"{len(sentences)} sentences: at most {self.max_sentences} per request, please.")
        return sentences

    @staticmethod
    def _readable(err: BaseException, path: Optional[str]) -> str:
        text = str(err)
        if path:
            # the upload's temporary folder means nothing to the person who uploaded the file
            text = text.replace(repr(path), repr(os.path.basename(path))).replace(path, os.path.basename(path))
        return text

    def _check_inputs(self, video: Any, text: Any, top_k: Any, threshold: Any) -> Tuple[str, List[str], int, float]:
        if video is None or video == "":
            raise DemoInputError("Upload a video file first (or pick one of the example videos).")
        if isinstance(video, Mapping):  # a FileData-like dict
            video = video.get("path") or video.get("video")
        if not isinstance(video, (str, os.PathLike)):
            raise DemoInputError(f"Expected a video file, got {type(video).__name__}.")
        path = os.fspath(video)
        if not os.path.isfile(path):
            raise DemoInputError(f"The video file {os.path.basename(path)!r} is not there any more; upload it again.")
        sentences = self.parse_sentences(text)
        try:
            top_k = int(top_k)
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise DemoInputError("Top-k must be a whole number and the threshold a number between 0 and 1.") from None
        if top_k < 1:
            raise DemoInputError("Top-k must be at least 1.")
        if not 0.0 <= threshold <= 1.0:
            raise DemoInputError("The score threshold must be between 0 and 1.")
        if not self.reads_video_files:
            raise DemoInputError(self.no_extractor_message())
        return path, sentences, top_k, threshold

    def ground(
        self,
        video: Any,
        text: Any,
        top_k: Any = 5,
        threshold: Any = 0.0,
        progress: Optional[Callable[..., Any]] = None,
    ) -> DemoAnswer:
        """Answer one request: the moments of every sentence of ``text`` (one per line) in ``video``.

        ``progress`` is called like ``gr.Progress``: ``progress(fraction, desc=...)`` while a video is decoded
        and embedded (nothing is decoded when its features are in the cache).

        Raises:
            DemoInputError: anything wrong with the inputs, with a message for the page.
        """
        with self._lock:
            self.stats["requests"] += 1
            try:
                return self._ground(video, text, top_k, threshold, progress)
            except DemoInputError:
                self.stats["input_errors"] += 1
                raise

    def _ground(self, video, text, top_k, threshold, progress) -> DemoAnswer:
        t0 = time.perf_counter()
        path, sentences, top_k, threshold = self._check_inputs(video, text, top_k, threshold)
        name = os.path.basename(path)

        def report(done: float, total: Optional[float]) -> None:
            if progress is None:
                return
            if total:
                progress(min(float(done) / float(total), 1.0), desc=f"Decoding and embedding {name}: {done:.0f} / {total:.0f} s of video")
            else:
                progress((int(done), None), desc=f"Decoding and embedding {name}: {done:.0f} s of video", unit="s")

        if progress is not None:
            progress(0.0, desc=f"Reading {name}")
        try:
            # decoded and embedded once per file (a progress callback reports the decoded seconds); a
            # second question about the same file reads the features from the pipeline's cache
            features = self.pipe.extract_video_features(path, progress=report)
        except ImportError as err:
            raise DemoInputError(f"This server cannot decode video files: {err}") from None
        except ValueError as err:  # VideoDecodeError, NoVideoExtractorError, dimension mismatch, ...
            raise DemoInputError(self._readable(err, path)) from None
        t1 = time.perf_counter()
        self.stats["cache_hits" if features.from_cache else "extractions"] += 1
        if progress is not None:
            progress(1.0, desc=f"Grounding {len(sentences)} sentence{'s' * (len(sentences) != 1)}")
        try:
            # every sentence in one call: the video is encoded once and the sentences are fused in chunks
            results = self.pipe(path, sentences, top_k=top_k, threshold=threshold, progress=False)
        except ValueError as err:
            raise DemoInputError(self._readable(err, path)) from None
        t2 = time.perf_counter()
        if isinstance(results, Mapping):
            results = [results]
        duration = float(features.duration)

        filmstrip, thumbs = [], {}
        try:
            filmstrip = self._filmstrip(path, duration)
            thumbs = self._moment_thumbnails(path, results)
        except Exception as err:  # noqa: BLE001 - pictures are a nicety; the moments are the answer
            logger.warning("thumbnails of %s failed: %s", path, err)
        t3 = time.perf_counter()
        source = "features from the cache" if features.from_cache else f"features extracted in {t1 - t0:.1f} s"
        summary = (
            f"{name}: {fmt_seconds(duration)} s, {int(features.features.shape[0])} features ({source}); "
            f"{len(sentences)} sentence{'s' * (len(sentences) != 1)}, top-{top_k}, threshold {threshold:g}; "
            f"grounded in {t2 - t1:.2f} s."
        )
        if getattr(features, "partial", False):
            summary += " Only the decodable part of the file was used."
        html = answer_html(results, duration, filmstrip=filmstrip, thumbnails=thumbs, summary=summary)
        self.stats["answers"] += 1
        return DemoAnswer(
            results=list(results), html=html, summary=summary, duration=duration,
            num_features=int(features.features.shape[0]), from_cache=bool(features.from_cache), seconds=t3 - t0,
            timings={"features": t1 - t0, "grounding": t2 - t1, "thumbnails": t3 - t2},
        )

    # ------------------------------------------------------------------------------------------------
    def _filmstrip(self, path: str, duration: float) -> List[Tuple[float, str]]:
        if self.filmstrip_frames <= 0:
            return []
        st = os.stat(path)
        key = (os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns))
        if key in self._filmstrips:
            self._filmstrips.move_to_end(key)
            return self._filmstrips[key]
        times = evenly_spaced(duration, self.filmstrip_frames)
        uris = thumbnail_uris(path, times)
        strip = [(t, uris[t]) for t in times if t in uris]
        self._filmstrips[key] = strip
        while len(self._filmstrips) > 16:
            self._filmstrips.popitem(last=False)
        return strip

    def _moment_thumbnails(self, path: str, results: Sequence[Mapping[str, Any]]) -> Dict[Tuple[int, int], str]:
        wanted: Dict[Tuple[int, int], float] = {}
        for qi, result in enumerate(results):
            for rank, m in enumerate((result.get("moments") or [])[: self.moment_thumbnails], start=1):
                if len(wanted) >= self.max_thumbnails:
                    break
                # the moment's middle frame: what happens in it (its first frame is often the moment before)
                wanted[(qi, rank)] = round(0.5 * (float(m["start"]) + float(m["end"])), 2)
        if not wanted:
            return {}
        uris = thumbnail_uris(path, sorted(set(wanted.values())), height=36)
        return {k: uris[t] for k, t in wanted.items() if t in uris}


# ----------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------
def load_pipeline(
    model: str,
    *,
    device: Optional[str] = None,
    video_cache_dir: Optional[str] = None,
    revision: Optional[str] = None,
    trust_remote_code: Optional[bool] = None,
    **pipeline_kwargs,
):
    """The ``video-temporal-grounding`` pipeline of ``model`` (a folder or a Hub repo id).

    With the ``mscl`` package importable its own classes are used (``trust_remote_code`` not needed);
    otherwise — a Space, where only the checkpoint's repo brings the code — the checkpoint's remote code
    (``trust_remote_code=True``; pass ``False`` to refuse it). ``pipeline_kwargs`` go to the pipeline
    (e.g. ``video_feature_source``, ``word_vectors_path``).
    """
    from transformers import pipeline

    kwargs: Dict[str, Any] = dict(pipeline_kwargs)
    if video_cache_dir:
        kwargs["video_cache_dir"] = video_cache_dir
    if device:
        kwargs["device"] = device
    try:
        import modeling_mscl  # registers the task, the config and the model classes
    except ImportError:
        modeling_mscl = None
    if modeling_mscl is not None and not trust_remote_code:
        # the package's classes; the folder's own copy of the code (auto_map, custom_pipelines) is not run
        loaded = modeling_mscl.MSCLForTemporalGrounding.from_pretrained(model, revision=revision)
        return pipeline(TASK, model=loaded.eval(), **kwargs)
    if revision:
        kwargs["revision"] = revision
    if trust_remote_code is False:
        raise ImportError(
            f"the mscl package is not installed, and loading {model!r} without it needs the checkpoint's own code "
            "(trust_remote_code=True)"
        )
    return pipeline(model=model, trust_remote_code=True, **kwargs)


# ----------------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------------
def launch_kwargs(**overrides) -> Dict[str, Any]:
    """Keyword arguments of ``demo.launch`` that the page needs (its CSS), plus ``overrides``."""
    return {"css": PAGE_CSS, **overrides}


def build_demo(
    model: Any,
    *,
    examples: Union[bool, Sequence[Tuple[str, str, str]]] = True,
    examples_dir: Optional[str] = None,
    title: str = "MSCL: find moments in a video",
    video_cache_dir: Optional[str] = None,
    device: Optional[str] = None,
    revision: Optional[str] = None,
    **demo_kwargs,
):
    """The Gradio page (``gr.Blocks``) for ``model``: a folder, a Hub repo id, a pipeline or a
    :class:`GroundingDemo`. ``demo.mscl`` is the :class:`GroundingDemo` behind it.

    ``examples``: ``True`` for the package's synthetic clips (:mod:`.examples`, written on first use into
    ``examples_dir``), ``False`` for none, or ``(video path, sentences one per line, label)`` triples.

    Launch it with ``demo.launch(**launch_kwargs())``.
    """
    import gradio as gr

    if isinstance(model, GroundingDemo):
        logic = model
    elif hasattr(model, "extract_video_features"):
        logic = GroundingDemo(model, **demo_kwargs)
    else:
        pipe = load_pipeline(model, device=device, video_cache_dir=video_cache_dir, revision=revision)
        logic = GroundingDemo(pipe, model_name=str(model), **demo_kwargs)

    example_rows: List[List[str]] = []
    example_labels: List[str] = []
    if examples is not True and examples is not False:
        for path, text, label in examples:
            example_rows.append([os.fspath(path), text])
            example_labels.append(label)
    elif examples and logic.reads_video_files:
        from .examples import ensure_example_videos

        for example, path in ensure_example_videos(examples_dir):
            example_rows.append([path, "\n".join(example.sentences)])
            label = f"{example.name.replace('_', ' ')} ({example.duration:g} s)"
            example_labels.append(label + (f" — {example.note}" if example.note else ""))

    def answer(video, text, top_k, threshold, progress=gr.Progress()):
        try:
            result = logic.ground(video, text, top_k, threshold, progress=progress)
        except DemoInputError as err:
            gr.Warning(str(err), title="Cannot answer")
            return message_html(str(err), "error"), None
        except Exception as err:  # noqa: BLE001 - keep serving; say what broke
            logger.exception("request failed")
            message = f"Something went wrong on the server: {type(err).__name__}: {err}"
            gr.Warning(message, title="Error")
            return message_html(message, "error"), None
        return result.html, {"summary": result.summary, "results": result.results}

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\n{logic.describe()}", elem_classes=["mscl-title"])
        problem = logic.no_extractor_message()
        if problem:
            gr.HTML(message_html(problem, "error"), elem_id="mscl-banner", js_on_load=None)
        with gr.Row():
            with gr.Column(scale=5):
                video = gr.Video(label="Video", sources=["upload"], elem_id="mscl-video", include_audio=True, height=320)
            with gr.Column(scale=4):
                sentences = gr.Textbox(
                    label="Sentences (one per line)", lines=4, max_lines=20, elem_id="mscl-sentences",
                    placeholder="a red circle moves from left to right\na blue square appears and grows",
                )
                with gr.Row():
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Moments per sentence (top-k)", elem_id="mscl-topk")
                    threshold = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Score threshold", elem_id="mscl-threshold")
                submit = gr.Button("Find the moments", variant="primary", elem_id="mscl-submit")
        answer_box = gr.HTML(
            message_html("Upload a video (or pick an example below), type one sentence per line and press "
                         "“Find the moments”.", "info"),
            elem_id="mscl-answer", js_on_load=SEEK_JS,
        )
        with gr.Accordion("Raw output (the pipeline's moments, full precision)", open=False):
            raw = gr.JSON(elem_id="mscl-raw")
        if example_rows:
            gr.Examples(examples=example_rows, inputs=[video, sentences], example_labels=example_labels,
                        label="Example videos (synthetic clips made by the package)", cache_examples=False)
        submit.click(answer, inputs=[video, sentences, top_k, threshold], outputs=[answer_box, raw],
                     concurrency_limit=1, api_name="ground")
    demo.mscl = logic
    demo.mscl_allowed_paths = sorted({os.path.dirname(p) for p, _ in example_rows})
    return demo
