"""Charts as server-rendered SVG: nothing to load, no script (the pages' Content-Security-Policy
allows none inline), readable offline and in a screenshot. Each chart is an image with a title
and a description for screen readers; every bar carries its figure as a tooltip, and the pages
print the same figures in tables.

Series are drawn stacked, one CSS class each (`.series-0`, `.series-1`, or a class the caller
names, such as `up` / `down`), coloured by the stylesheet."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from markupsafe import Markup, escape

_ids = count(1)  # ids for aria-labelledby, unique within a page (and beyond; they need not be stable)


@dataclass(frozen=True)
class Series:
    label: str  # for the legend and tooltips (Japanese first)
    css: str  # the class its segments are drawn with


def columns(points: Sequence[tuple[str, Sequence[float]]], series: Sequence[Series], *, title: str,
            every: int | None = None) -> Markup:
    """Vertical stacked columns, one per point (a day): `points` are (label, one value per
    series). `every`: label every n-th column (default: about a dozen labels)."""
    width, height, left, bottom, top = 720, 240, 56, 34, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = _nice_max(max((sum(values) for _, values in points), default=0))
    step = plot_w / max(len(points), 1)
    every = every or max(1, round(len(points) / 12))
    chart_id = next(_ids)
    parts = _open(chart_id, width, height, title, points, series)
    parts += _legend(series, left, 16)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_number(peak * tick)}</text>')
    for i, (name, values) in enumerate(points):
        x, base = left + i * step, top + plot_h
        for value, s in zip(values, series):
            h = plot_h * value / peak
            base -= h
            if value:
                parts.append(f'<rect class="{escape(s.css)}" x="{x + step * 0.15:.1f}" y="{base:.1f}" '
                             f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{escape(name)} {escape(s.label)}: '
                             f'{_number(value)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{escape(_short(name))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[Series], *, title: str) -> Markup:
    """Horizontal stacked bars, one per row (an app, a model): `rows` are (label, one value per
    series); the total is written after each bar."""
    width, left, row_h, top = 720, 210, 26, 30
    height = top + row_h * max(len(rows), 1) + 8
    plot_w = width - left - 70
    peak = _nice_max(max((sum(values) for _, values in rows), default=0))
    chart_id = next(_ids)
    parts = _open(chart_id, width, height, title, rows, series)
    parts += _legend(series, left, 16)
    for i, (name, values) in enumerate(rows):
        y, x = top + i * row_h, float(left)
        parts.append(f'<text class="name" x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(_clip(name))}'
                     f'<title>{escape(name)}</title></text>')
        for value, s in zip(values, series):
            w = plot_w * value / peak
            if value:
                parts.append(f'<rect class="{escape(s.css)}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" '
                             f'height="{row_h - 8}"><title>{escape(name)} {escape(s.label)}: '
                             f'{_number(value)}</title></rect>')
            x += w
        parts.append(f'<text class="value" x="{x + 6:.1f}" y="{y + 17}">{_number(sum(values))}</text>')
    if not rows:
        parts.append(f'<text class="tick" x="{left}" y="{top + 17}">記録なし / no records</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(chart_id: int, width: int, height: int, title: str, items: Sequence[tuple[str, Sequence[float]]],
          series: Sequence[Series]) -> list[str]:
    totals = [sum(values[i] for _, values in items) for i in range(len(series))]
    desc = "、".join(f"{s.label} {_number(t)}" for s, t in zip(series, totals)) + f"（{len(items)} 項目 / items）"
    return [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="chart-{chart_id}-title chart-{chart_id}-desc" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="chart-{chart_id}-title">{escape(title)}</title>'
            f'<desc id="chart-{chart_id}-desc">{escape(desc)}</desc>']


def _legend(series: Sequence[Series], x: int, y: int) -> list[str]:
    parts = []
    for s in series:
        parts.append(f'<rect class="{escape(s.css)}" x="{x}" y="{y - 10}" width="12" height="12"/>'
                     f'<text class="legend" x="{x + 17}" y="{y}">{escape(s.label)}</text>')
        x += 28 + 13 * len(s.label)
    return parts


def _nice_max(value: float) -> float:
    """The axis' top for counts: the first of 4, 8, 10, 20, 40, 80, 100, ... at or above `value`,
    so that the quarter gridlines fall on whole numbers."""
    top = 4
    while top < value:
        top = top // 8 * 10 if str(top).startswith("8") else top * 2
    return float(top)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) or value >= 100 else f"{value:,.2f}"


def _short(day: str) -> str:
    """2026-12-07 -> 12/07 under a column (the year is in the page's period)."""
    return day[5:].replace("-", "/") if len(day) == 10 and day[4] == "-" else day


def _clip(name: str, room: int = 33) -> str:
    """`name` cut to fit beside a bar: `room` in half-width cells (a kanji or kana takes two, about
    12 px at the charts' font size); the whole name is in the label's tooltip."""
    used = 0
    for i, ch in enumerate(name):
        used += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used > room:
            return name[:i - 1] + "…"
    return name
