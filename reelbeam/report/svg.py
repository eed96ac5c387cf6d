"""Inline SVG for the report: a time axis, bands (shots, scenes, summary segments) and plots.

Every track is drawn in a `0 0 WIDTH height` viewBox stretched to the track's width
(preserveAspectRatio none), on the same time scale, so tracks stacked in one column line up exactly
and a cursor can cross them all. Text is HTML positioned in percent over the shapes, so it never
stretches with the picture. Plots take bucketed series
(`reelbeam.report.data.Series`), so their size does not grow with the video's length.
See docs/report.md for why the report draws its own SVG rather than using a plotting library.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from html import escape

import numpy as np

WIDTH = 1000


@dataclasses.dataclass(frozen=True)
class Band:
    start: float  # seconds from the video's first frame
    end: float
    label: str = ""
    title: str = ""  # tooltip
    href: str = ""
    cls: str = ""


def fmt_time(seconds: float, precise: bool = False) -> str:
    """0:07, 1:02:03; with `precise`, tenths of a second (0:07.3)."""
    seconds = max(0.0, seconds)
    whole = int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    if precise:
        text += f".{int((seconds - whole) * 10):d}"
    return text


def nice_step(duration: float, target: int = 10) -> float:
    """A tick step of 1, 2 or 5 x 10^k seconds (or 15 s, 30 s, minutes) giving ~`target` ticks."""
    if duration <= 0:
        return 1.0
    raw = duration / target
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * math.ceil(raw / 3600)


def _x(t: float, duration: float) -> float:
    return 0.0 if duration <= 0 else max(0.0, min(WIDTH, t / duration * WIDTH))


def _svg(height: int, body: str, cls: str, label: str) -> str:
    return (
        f'<svg class="{cls}" viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def axis(duration: float) -> str:
    """Tick marks and m:ss labels (HTML, positioned in percent, so text never stretches)."""
    step = nice_step(duration)
    n = int(duration / step) + 1 if duration > 0 else 1
    ticks = []
    for i in range(n):
        pct = _x(i * step, duration) / WIDTH * 100
        edge = " first" if i == 0 else (" last" if pct > 97 else "")
        ticks.append(
            f'<span class="tick{edge}" style="left:{pct:.3f}%">{fmt_time(i * step, step < 1)}</span>'
        )
    return f'<div class="axis" role="presentation">{"".join(ticks)}</div>'


def bands(spans: Sequence[Band], duration: float, height: int, cls: str, label: str) -> str:
    """One rectangle per span, with links and tooltips; labels (HTML overlay) where the band is
    wide enough to hold them."""
    parts, labels = [], []
    for i, b in enumerate(spans):
        x0, x1 = _x(b.start, duration), _x(b.end, duration)
        w = max(x1 - x0, 0.6)
        cls_ = b.cls or ("even" if i % 2 == 0 else "odd")
        rect = (
            f'<rect class="band {cls_}" x="{x0:.2f}" y="1" '
            f'width="{w:.2f}" height="{height - 2}"><title>{escape(b.title or b.label)}</title></rect>'
        )
        parts.append(f'<a href="{escape(b.href)}">{rect}</a>' if b.href else rect)
        # ~7 px per character on a ~1000 px wide track
        if b.label and w >= 7 * len(b.label) + 6:
            labels.append(
                f'<span class="{cls_}" style="left:{x0 / WIDTH * 100:.3f}%;width:{w / WIDTH * 100:.3f}%">'
                f"{escape(b.label)}</span>"
            )
    return _canvas(_svg(height, "".join(parts), f"bands {cls}", label), labels, height)


def _canvas(svg: str, labels: Sequence[str], height: int) -> str:
    overlay = f'<div class="band-labels">{"".join(labels)}</div>' if labels else ""
    return f'<div class="canvas" style="height:{height}px">{svg}{overlay}</div>'


def _segments(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of non-NaN values."""
    ok = ~np.isnan(values)
    runs, start = [], None
    for i, good in enumerate(ok):
        if good and start is None:
            start = i
        elif not good and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(values)))
    return runs


def series_plot(
    peak: np.ndarray,
    mean: np.ndarray | None,
    duration: float,
    ymax: float,
    height: int,
    cls: str,
    label: str,
    marks: Sequence[float] = (),
    ref: float | None = None,
    connect: bool = False,
) -> str:
    """Bucketed series: the per-bucket maximum as a filled area (peaks stay visible at any zoom)
    and, when given, the per-bucket mean as a line; `marks` are times drawn as faint verticals
    (shot cuts), `ref` a dashed horizontal reference value. Empty buckets break the curve, unless
    `connect` (sampled series, such as frame scores at a few frames per second) joins across them."""
    n = len(peak)
    ymax = ymax if ymax and ymax > 0 and np.isfinite(ymax) else 1.0
    bottom = height - 1.0

    def y(v: float) -> float:
        return bottom - (min(max(v, 0.0), ymax) / ymax) * (height - 4)

    def x(i: int) -> float:
        return i / n * WIDTH

    parts = [f'<line class="baseline" x1="0" y1="{bottom}" x2="{WIDTH}" y2="{bottom}"/>']
    for t in marks:
        xm = _x(t, duration)
        parts.append(f'<line class="mark" x1="{xm:.1f}" y1="0" x2="{xm:.1f}" y2="{height}"/>')
    if ref is not None:
        parts.append(f'<line class="ref" x1="0" y1="{y(ref):.1f}" x2="{WIDTH}" y2="{y(ref):.1f}"/>')
    half = WIDTH / n / 2
    if connect:
        valid = np.flatnonzero(~np.isnan(peak))
        if len(valid):
            pts = [f"{x(valid[0]) + half:.1f},{bottom}"]
            pts += [f"{x(i) + half:.1f},{y(float(peak[i])):.1f}" for i in valid]
            pts.append(f"{x(valid[-1]) + half:.1f},{bottom}")
            parts.append(f'<polygon class="area" points="{" ".join(pts)}"/>')
    else:
        for a, b in _segments(peak):
            pts = [f"{x(a):.1f},{bottom}"]
            for i in range(a, b):
                pts.append(f"{x(i):.1f},{y(float(peak[i])):.1f} {x(i + 1):.1f},{y(float(peak[i])):.1f}")
            pts.append(f"{x(b):.1f},{bottom}")
            parts.append(f'<polygon class="area" points="{" ".join(pts)}"/>')
    if mean is not None:
        runs = [(0, n)] if connect else _segments(mean)
        for a, b in runs:
            pts = " ".join(
                f"{x(i) + half:.1f},{y(float(mean[i])):.1f}" for i in range(a, b) if not np.isnan(mean[i])
            )
            if pts:
                parts.append(f'<polyline class="line" points="{pts}"/>')
    return _canvas(_svg(height, "".join(parts), f"plot {cls}", label), (), height)


def step_bars(
    spans: Sequence[tuple[float, float, float | None]], duration: float, height: int, cls: str, label: str
) -> str:
    """A bar per span at its value in [0, 1] (per-shot probabilities); None values are skipped."""
    bottom = height - 1.0
    parts = [f'<line class="baseline" x1="0" y1="{bottom}" x2="{WIDTH}" y2="{bottom}"/>']
    for start, end, value in spans:
        if value is None or not np.isfinite(value):
            continue
        x0, x1 = _x(start, duration), _x(end, duration)
        h = max(0.0, min(1.0, float(value))) * (height - 4)
        parts.append(
            f'<rect class="bar" x="{x0:.2f}" y="{bottom - h:.2f}" width="{max(x1 - x0 - 0.4, 0.4):.2f}" '
            f'height="{h:.2f}"><title>{value:.3f}</title></rect>'
        )
    return _canvas(_svg(height, "".join(parts), f"plot {cls}", label), (), height)
