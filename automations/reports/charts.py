"""Charts drawn on the server as inline SVG: no JavaScript library and nothing fetched at run time.

Every piece of text is escaped here (the result is marked safe for templates), and every chart has a text
alternative: a title and description for screen readers, and a tooltip per day.
"""

import math
from dataclasses import dataclass
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FIRES_COLOR = "#4b3fd9"
CONVERSIONS_COLOR = "#1b7f4b"
GRID_COLOR = "#e3e6ef"
TEXT_COLOR = "#5b6478"


@dataclass
class Series:
    name: str
    values: list[int]
    color: str
    kind: str = "bar"  # or "line"


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least `maximum` (1, 2 or 5 times a power of ten apart)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1)
    return [step * i for i in range(math.ceil(maximum / step) + 1)]


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.0f}"


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def time_series_chart(
    *, days: list[date], series: list[Series], title: str, width: int = 760, height: int = 280
) -> SafeString:
    """A daily chart: bar series side by side, line series on top, a y axis with round ticks, dates on the x axis
    and a legend."""
    left, right, top, bottom = 56, 16, 36, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(days), 1)
    step = plot_w / n
    ticks = nice_ticks(max((max(s.values, default=0) for s in series), default=0))
    y_max = ticks[-1] or 1

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    totals = ", ".join(f"{escape(s.name)}: {sum(s.values):,}" for s in series)
    span = f"{_day_label(days[0])} to {_day_label(days[-1])}" if days else "no days"
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(span)}. Totals: {totals}.</desc>",
    ]
    # Grid and y axis labels.
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{GRID_COLOR}" '
            f'stroke-width="1"/>'
            f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" fill="{TEXT_COLOR}">'
            f"{_number(tick)}</text>"
        )
    # X axis labels: at most about 8, on evenly spaced days.
    every = max(1, math.ceil(n / 8))
    for i, day in enumerate(days):
        if i % every == 0:
            cx = left + step * (i + 0.5)
            parts.append(
                f'<text x="{cx:.1f}" y="{height - bottom + 18}" text-anchor="middle" font-size="11" '
                f'fill="{TEXT_COLOR}">{escape(_day_label(day))}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{TEXT_COLOR}"/>'
    )
    bars = [s for s in series if s.kind == "bar"]
    bar_w = step * 0.78 / max(len(bars), 1)
    for b, s in enumerate(bars):
        for i, value in enumerate(s.values):
            if value:
                x = left + step * i + step * 0.11 + b * bar_w
                parts.append(
                    f'<rect class="day-bar" x="{x:.1f}" y="{y(value):.1f}" width="{max(bar_w - 0.5, 0.5):.1f}" '
                    f'height="{top + plot_h - y(value):.1f}" fill="{s.color}"/>'
                )
    for s in series:
        if s.kind == "line" and s.values:
            points = " ".join(f"{left + step * (i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{s.color}" stroke-width="2.5" '
                f'stroke-linejoin="round"/>'
            )
            if n <= 62:
                for i, v in enumerate(s.values):
                    parts.append(
                        f'<circle cx="{left + step * (i + 0.5):.1f}" cy="{y(v):.1f}" r="2.5" fill="{s.color}"/>'
                    )
    # One transparent column per day carrying its tooltip.
    for i, day in enumerate(days):
        tip = f"{_day_label(day)}: " + ", ".join(f"{s.values[i]:,} {escape(s.name.lower())}" for s in series)
        parts.append(
            f'<rect class="hover" x="{left + step * i:.1f}" y="{top}" width="{step:.1f}" height="{plot_h}" '
            f'fill="transparent"><title>{tip}</title></rect>'
        )
    # Legend.
    x = left
    for s in series:
        swatch = (
            f'<rect x="{x}" y="10" width="12" height="12" rx="2" fill="{s.color}"/>'
            if s.kind == "bar"
            else f'<line x1="{x}" x2="{x + 14}" y1="16" y2="16" stroke="{s.color}" stroke-width="3"/>'
        )
        parts.append(f'{swatch}<text x="{x + 18}" y="20" font-size="12" fill="#1d2433">{escape(s.name)}</text>')
        x += 30 + 7 * len(s.name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped, the rest are numbers


def sparkline(values: list[int], *, label: str, width: int = 120, height: int = 28) -> SafeString:
    """A small trend line with its area filled, for table rows."""
    n = len(values)
    peak = max(values, default=0) or 1
    if n == 0:
        return mark_safe("")
    step = (width - 2) / max(n - 1, 1)
    points = [(1 + step * i, height - 2 - v / peak * (height - 4)) for i, v in enumerate(values)]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    area = f"1,{height - 1} {line} {1 + step * (n - 1):.1f},{height - 1}"
    return mark_safe(  # noqa: S308 - the label is escaped, the rest are numbers
        f'<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        f'<polygon points="{area}" fill="{FIRES_COLOR}" fill-opacity="0.12"/>'
        f'<polyline points="{line}" fill="none" stroke="{FIRES_COLOR}" stroke-width="1.5"/></svg>'
    )
