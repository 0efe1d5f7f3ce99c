# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""HTML of the demo's answer: one timeline per sentence and a table of the moments.

Every moment (a box on a timeline, a row of the table) carries ``data-start`` / ``data-end`` /
``data-score`` attributes and a ``data-key`` (``"<sentence>-<rank>"``); the page's click handler
(:data:`SEEK_JS`) seeks the video player to ``data-start``. Seconds are shown with
:data:`SECONDS_DECIMALS` decimals and scores with :data:`SCORE_DECIMALS`; the data attributes carry the
same rounded values, so what is displayed is what a click seeks to.

Pure functions of their inputs (no Gradio), copied into the Space folder with the rest of the demo.
"""

from __future__ import annotations

import html
from typing import Any, List, Mapping, Optional, Sequence, Tuple

__all__ = ["SCORE_DECIMALS", "SECONDS_DECIMALS", "SEEK_JS", "answer_html", "fmt_score", "fmt_seconds", "message_html"]

SECONDS_DECIMALS = 2
SCORE_DECIMALS = 3
# one hue per sentence (colour-blind-safe Okabe-Ito order, then repeats)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F", "#A6761D")

# Installed once on the answer's container (gr.HTML js_on_load): one delegated listener survives every
# re-render of the answer. A click on a moment seeks the first <video> of the #mscl-video component (and
# pauses it, so the frame shown is the moment's first), then marks that moment in both views.
SEEK_JS = r"""
element.addEventListener('click', (event) => {
  const target = event.target.closest('[data-start]');
  if (!target || !element.contains(target)) return;
  const video = document.querySelector('#mscl-video video') || document.querySelector('video');
  if (!video) return;
  const start = parseFloat(target.dataset.start);
  if (!Number.isFinite(start)) return;
  video.pause();
  video.currentTime = start;
  element.querySelectorAll('.mscl-active').forEach((el) => el.classList.remove('mscl-active'));
  element.querySelectorAll('[data-key="' + target.dataset.key + '"]').forEach((el) => el.classList.add('mscl-active'));
  const status = element.querySelector('.mscl-seek-status');
  if (status) status.textContent = 'Video at ' + target.dataset.start + ' s (moment ' + target.dataset.key + ').';
});
element.addEventListener('keydown', (event) => {
  if ((event.key === 'Enter' || event.key === ' ') && event.target.closest('[data-start]')) {
    event.preventDefault();
    event.target.click();
  }
});
"""

_CSS = """
.mscl-answer{font-family:var(--font, system-ui, sans-serif);color:var(--body-text-color,#1f2328);}
.mscl-answer .mscl-head{font-size:.9rem;margin:0 0 .5rem 0;}
.mscl-grid{display:grid;grid-template-columns:minmax(9rem,16rem) 1fr;column-gap:.75rem;row-gap:.35rem;align-items:center;}
.mscl-film{position:relative;display:flex;height:54px;border-radius:4px;overflow:hidden;background:#222;}
.mscl-film img{flex:1 1 0;min-width:0;height:54px;object-fit:cover;border-right:1px solid #222;}
.mscl-axis{position:relative;height:1.1rem;font-size:.72rem;color:var(--body-text-color-subdued,#57606a);}
.mscl-axis span{position:absolute;transform:translateX(-50%);white-space:nowrap;}
.mscl-axis span.first{transform:none;} .mscl-axis span.last{transform:translateX(-100%);}
.mscl-label{font-size:.88rem;line-height:1.2;overflow:hidden;text-overflow:ellipsis;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;}
.mscl-label .mscl-dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.35rem;vertical-align:-.05rem;}
.mscl-track{position:relative;height:30px;border-radius:4px;
  background:repeating-linear-gradient(90deg,#e6e9ee 0,#e6e9ee calc(10% - 1px),#d5d9e0 calc(10% - 1px),#d5d9e0 10%);}
.mscl-moment{position:absolute;top:3px;height:24px;min-width:4px;margin:0;padding:0;border-radius:3px;box-sizing:border-box;
  border:1px solid rgba(0,0,0,.35);cursor:pointer;color:#fff;font-size:.7rem;font-weight:600;line-height:22px;text-align:center;
  overflow:hidden;white-space:nowrap;}
.mscl-moment:hover,.mscl-moment.mscl-active{outline:2px solid #111;z-index:50 !important;}
.mscl-empty{font-size:.8rem;color:var(--body-text-color-subdued,#57606a);padding-left:.5rem;line-height:30px;}
.mscl-table{border-collapse:collapse;margin-top:1rem;width:100%;font-size:.86rem;}
.mscl-table th{text-align:left;border-bottom:2px solid #d0d7de;padding:.3rem .5rem;}
.mscl-table td{border-bottom:1px solid #e5e8ec;padding:.25rem .5rem;vertical-align:middle;}
.mscl-table td.num{text-align:right;font-variant-numeric:tabular-nums;}
.mscl-table tr.mscl-row{cursor:pointer;} .mscl-table tr.mscl-row:hover td{background:rgba(0,114,178,.08);}
.mscl-table tr.mscl-active td{background:rgba(0,114,178,.16);}
.mscl-table img{height:36px;border-radius:3px;display:block;}
.mscl-seek-status{font-size:.8rem;margin-top:.4rem;min-height:1rem;color:var(--body-text-color-subdued,#57606a);}
.mscl-message{padding:.6rem .8rem;border-radius:6px;font-size:.95rem;}
.mscl-message.error{background:#fde8e8;border:1px solid #e5a4a4;color:#8a1c1c;}
.mscl-message.info{background:#e8f1fb;border:1px solid #a9c8ea;color:#123e6b;}
"""


def fmt_seconds(value: float) -> str:
    return f"{float(value):.{SECONDS_DECIMALS}f}"


def fmt_score(value: float) -> str:
    return f"{float(value):.{SCORE_DECIMALS}f}"


def _pct(value: float, duration: float) -> float:
    return 0.0 if duration <= 0 else max(0.0, min(100.0, 100.0 * float(value) / duration))


def _ticks(duration: float, target: int = 8) -> List[float]:
    if duration <= 0:
        return [0.0]
    raw = duration / target
    steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    step = next((s for s in steps if s >= raw), steps[-1])
    ticks = [i * step for i in range(int(duration // step) + 1)]
    return ticks


def _clock(seconds: float, step: float) -> str:
    if step < 1:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}"
    return f"{m}:{s:02d}" if m else f"{s}s"


def _opacity(score: float) -> float:
    # opacity is the score (in [0, 1]), floored so that a weak moment is still visible and clickable
    return round(0.15 + 0.85 * max(0.0, min(1.0, float(score))), 3)


def answer_html(
    results: Sequence[Mapping[str, Any]],
    duration: float,
    *,
    filmstrip: Sequence[Tuple[float, str]] = (),
    thumbnails: Optional[Mapping[Tuple[int, int], str]] = None,
    summary: str = "",
) -> str:
    """The answer: ``results`` is the pipeline's output for one video (one dict per sentence, with
    ``query`` and ``moments``); ``filmstrip`` holds ``(time, image URI)`` pairs drawn above the timelines;
    ``thumbnails[(sentence index, rank)]`` is the image of a moment (rank from 1; the demo shows its middle
    frame)."""
    thumbnails = thumbnails or {}
    duration = float(duration)
    esc = html.escape
    parts: List[str] = [f"<style>{_CSS}</style>", f'<div class="mscl-answer" data-duration="{fmt_seconds(duration)}">']
    if summary:
        parts.append(f'<div class="mscl-head">{esc(summary)}</div>')
    parts.append('<div class="mscl-grid">')
    if filmstrip:
        parts.append('<div class="mscl-label"></div><div class="mscl-film">')
        parts += [f'<img src="{uri}" alt="frame at {fmt_seconds(t)} s" title="{fmt_seconds(t)} s">' for t, uri in filmstrip]
        parts.append("</div>")
    ticks = _ticks(duration)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else duration
    parts.append('<div class="mscl-label"></div><div class="mscl-axis">')
    for i, t in enumerate(ticks):
        cls = ' class="first"' if i == 0 else (' class="last"' if _pct(t, duration) > 97 else "")
        parts.append(f'<span{cls} style="left:{_pct(t, duration):.3f}%">{_clock(t, step)}</span>')
    parts.append("</div>")

    rows: List[str] = []
    for qi, result in enumerate(results):
        color = PALETTE[qi % len(PALETTE)]
        sentence = result.get("query") or f"query {qi + 1}"
        moments = list(result.get("moments") or [])
        parts.append(
            f'<div class="mscl-label" title="{esc(sentence)}"><span class="mscl-dot" style="background:{color}"></span>'
            f"{qi + 1}. {esc(sentence)}</div>"
        )
        parts.append(f'<div class="mscl-track" data-query="{qi}">')
        if not moments:
            parts.append('<span class="mscl-empty">no moment at or above the threshold</span>')
        # weakest first, so that the strongest moment is drawn on top where moments overlap
        for rank in sorted(range(len(moments)), key=lambda r: (moments[r]["score"], -r)):
            m = moments[rank]
            start, end, score = fmt_seconds(m["start"]), fmt_seconds(m["end"]), fmt_score(m["score"])
            left, right = _pct(m["start"], duration), _pct(m["end"], duration)
            key = f"{qi + 1}-{rank + 1}"
            parts.append(
                f'<div role="button" tabindex="0" class="mscl-moment" data-key="{key}" data-query="{qi}" data-rank="{rank + 1}" '
                f'data-start="{start}" data-end="{end}" data-score="{score}" '
                f'style="left:{left:.3f}%;width:{max(right - left, 0.0):.3f}%;background:{color};opacity:{_opacity(m["score"])};'
                f'z-index:{10 + len(moments) - rank}" title="#{rank + 1}: {start}–{end} s, score {score}">{rank + 1}</div>'
            )
        parts.append("</div>")
        for rank, m in enumerate(moments):
            start, end, score = fmt_seconds(m["start"]), fmt_seconds(m["end"]), fmt_score(m["score"])
            key = f"{qi + 1}-{rank + 1}"
            thumb = thumbnails.get((qi, rank + 1))
            mid = fmt_seconds(0.5 * (float(m["start"]) + float(m["end"])))
            img = f'<img src="{thumb}" alt="frame at {mid} s" title="{mid} s">' if thumb else ""
            first = (f'<td rowspan="{len(moments)}"><span class="mscl-dot" style="background:{color}"></span>'
                     f'{esc(sentence)}</td>' if rank == 0 else "")
            rows.append(
                f'<tr class="mscl-row" tabindex="0" data-key="{key}" data-query="{qi}" data-rank="{rank + 1}" data-start="{start}" '
                f'data-end="{end}" data-score="{score}">{first}<td class="num mscl-rank">{rank + 1}</td><td>{img}</td>'
                f'<td class="num mscl-start">{start}</td><td class="num mscl-end">{end}</td>'
                f'<td class="num">{fmt_seconds(float(m["end"]) - float(m["start"]))}</td><td class="num mscl-score">{score}</td></tr>'
            )
        if not moments:
            rows.append(f'<tr class="mscl-none" data-query="{qi}"><td><span class="mscl-dot" style="background:{color}"></span>'
                        f'{esc(sentence)}</td><td colspan="6">no moment at or above the threshold</td></tr>')
    parts.append("</div>")
    parts.append('<div class="mscl-seek-status">Click a moment (on a timeline or in the table) to play the video from its start.</div>')
    parts.append(
        '<table class="mscl-table"><thead><tr><th>Sentence</th><th>Rank</th><th>Middle frame</th><th>Start (s)</th>'
        "<th>End (s)</th><th>Length (s)</th><th>Score</th></tr></thead><tbody>"
    )
    parts += rows
    parts.append("</tbody></table></div>")
    return "".join(parts)


def message_html(text: str, kind: str = "error") -> str:
    """A message box for the page (``kind``: ``"error"`` or ``"info"``)."""
    role = ' role="alert"' if kind == "error" else ""
    return f'<style>{_CSS}</style><div class="mscl-message {kind}"{role}>{html.escape(text)}</div>'

