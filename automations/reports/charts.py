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


@dataclass
class _Plot:
    """Where a chart draws: the plot area inside its margins, one column per day, and the value at its top."""

    width: int
    height: int
    days: int
    y_max: float
    left: int = 56
    right: int = 16
    top: int = 36
    bottom: int = 40

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def n(self) -> int:
        return max(self.days, 1)

    @property
    def step(self) -> float:
        return self.plot_w / self.n

    @property
    def baseline(self) -> int:
        return self.top + self.plot_h

    def x(self, i: int) -> float:
        """The middle of day i's column."""
        return self.left + self.step * (i + 0.5)

    def y(self, value: float) -> float:
        return self.top + self.plot_h - value / self.y_max * self.plot_h


def time_series_chart(
    *, days: list[date], series: list[Series], title: str, width: int = 760, height: int = 280
) -> SafeString:
    """A daily chart: bar series side by side, line series on top, a y axis with round ticks, dates on the x axis
    and a legend."""
    ticks = nice_ticks(max((max(s.values, default=0) for s in series), default=0))
    plot = _Plot(width=width, height=height, days=len(days), y_max=ticks[-1] or 1)
    totals = ", ".join(f"{escape(s.name)}: {sum(s.values):,}" for s in series)
    span = f"{_day_label(days[0])} to {_day_label(days[-1])}" if days else "no days"
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(span)}. Totals: {totals}.</desc>",
        *_axes(plot, days, ticks),
        *_bars(plot, [s for s in series if s.kind == "bar"]),
        *_lines(plot, [s for s in series if s.kind == "line"]),
        *_tooltips(plot, days, series),
        *_legend(plot, series),
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - every text in the parts is escaped, the rest are numbers


def _axes(plot: _Plot, days: list[date], ticks: list[float]) -> list[str]:
    """Grid lines with the y axis labels, dates on the x axis, and the x axis line."""
    parts = []
    for tick in ticks:
        ty = plot.y(tick)
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.width - plot.right}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{GRID_COLOR}" stroke-width="1"/>'
            f'<text x="{plot.left - 8}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" fill="{TEXT_COLOR}">'
            f"{_number(tick)}</text>"
        )
    # At most about 8 dates, on evenly spaced days.
    every = max(1, math.ceil(plot.n / 8))
    for i, day in enumerate(days):
        if i % every == 0:
            parts.append(
                f'<text x="{plot.x(i):.1f}" y="{plot.height - plot.bottom + 18}" text-anchor="middle" '
                f'font-size="11" fill="{TEXT_COLOR}">{escape(_day_label(day))}</text>'
            )
    parts.append(
        f'<line x1="{plot.left}" x2="{plot.width - plot.right}" y1="{plot.baseline}" y2="{plot.baseline}" '
        f'stroke="{TEXT_COLOR}"/>'
    )
    return parts


def _bars(plot: _Plot, bars: list[Series]) -> list[str]:
    """The bar series side by side in each day's column (a zero draws nothing)."""
    parts = []
    bar_w = plot.step * 0.78 / max(len(bars), 1)
    for b, s in enumerate(bars):
        for i, value in enumerate(s.values):
            if value:
                x = plot.left + plot.step * i + plot.step * 0.11 + b * bar_w
                parts.append(
                    f'<rect class="day-bar" x="{x:.1f}" y="{plot.y(value):.1f}" '
                    f'width="{max(bar_w - 0.5, 0.5):.1f}" height="{plot.baseline - plot.y(value):.1f}" '
                    f'fill="{s.color}"/>'
                )
    return parts


def _lines(plot: _Plot, lines: list[Series]) -> list[str]:
    """The line series over the bars, with a dot per day while the days are few enough to tell apart."""
    parts = []
    for s in lines:
        if not s.values:
            continue
        points = " ".join(f"{plot.x(i):.1f},{plot.y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{s.color}" stroke-width="2.5" stroke-linejoin="round"/>'
        )
        if plot.n <= 62:
            for i, v in enumerate(s.values):
                parts.append(f'<circle cx="{plot.x(i):.1f}" cy="{plot.y(v):.1f}" r="2.5" fill="{s.color}"/>')
    return parts


def _tooltips(plot: _Plot, days: list[date], series: list[Series]) -> list[str]:
    """One transparent column per day carrying its figures as a tooltip."""
    parts = []
    for i, day in enumerate(days):
        tip = f"{_day_label(day)}: " + ", ".join(f"{s.values[i]:,} {escape(s.name.lower())}" for s in series)
        parts.append(
            f'<rect class="hover" x="{plot.left + plot.step * i:.1f}" y="{plot.top}" width="{plot.step:.1f}" '
            f'height="{plot.plot_h}" fill="transparent"><title>{tip}</title></rect>'
        )
    return parts


def _legend(plot: _Plot, series: list[Series]) -> list[str]:
    """A swatch and the name of each series, left to right above the plot."""
    parts = []
    x = plot.left
    for s in series:
        swatch = (
            f'<rect x="{x}" y="10" width="12" height="12" rx="2" fill="{s.color}"/>'
            if s.kind == "bar"
            else f'<line x1="{x}" x2="{x + 14}" y1="16" y2="16" stroke="{s.color}" stroke-width="3"/>'
        )
        parts.append(f'{swatch}<text x="{x + 18}" y="20" font-size="12" fill="#1d2433">{escape(s.name)}</text>')
        x += 30 + 7 * len(s.name)
    return parts


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
