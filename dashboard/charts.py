"""Stacked bar charts drawn on the server as SVG: no script, no network, readable by screen
readers through the data table that goes with each chart."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.utils.text import slugify

Number = int | float | Decimal


@dataclass(frozen=True)
class Layout:
    """One drawing size. Each chart is drawn twice, wide and narrow, and the stylesheet
    shows the one that fits, so its text stays readable instead of shrinking with a
    scaled-down drawing."""

    name: str
    width: int
    height: int
    left: int  # room for the y-axis labels
    max_x_labels: int


WIDE = Layout("wide", 720, 240, 56, 10)
NARROW = Layout("narrow", 360, 220, 44, 4)
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the x-axis labels


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    css: str  # a class name the stylesheet colours


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str
    value: Number


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class Plot:
    layout: Layout
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def height(self) -> int:
        return self.layout.height

    @property
    def plot_left(self) -> int:
        return self.layout.left

    @property
    def plot_right(self) -> int:
        return self.layout.width - RIGHT

    @property
    def middle(self) -> int:
        return (self.plot_left + self.plot_right) // 2

    @property
    def baseline(self) -> int:
        return self.layout.height - BOTTOM


@dataclass
class Chart:
    title: str
    series: list[Series]
    plots: list[Plot] = field(default_factory=list)
    rows: list[tuple[str, list[str], str]] = field(default_factory=list)  # day, values, total
    total: Number = 0

    @property
    def bars(self) -> list[Bar]:
        """The bars (of the wide drawing; the narrow one has the same values)."""
        return self.plots[0].bars if self.plots else []

    @property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def has_data(self) -> bool:
        return bool(self.bars)

    @property
    def summary(self) -> str:
        names = ", ".join(s.label for s in self.series)
        days = len(self.rows)
        return f"{self.title}: {days} days, stacked by {names}."


def nice_scale(value: float, *, whole: bool) -> tuple[float, int]:
    """The top of the y axis (the smallest 1, 2, 2.5 or 5 times a power of ten at least
    ``value``) and how many equal steps divide it into round numbers. Counts (``whole``)
    never get fractional steps."""
    if whole:
        value = max(value, 5.0)
    if value <= 0:
        return 1.0, 4
    exponent = math.floor(math.log10(value))
    for leading, steps in ((1, 5), (2, 4), (2.5, 5), (5, 5), (10, 5)):
        top = leading * 10.0**exponent
        if top >= value - 1e-9:
            return top, steps
    return 10.0 ** (exponent + 1), 5


def _plain_number(value: Number) -> str:
    if isinstance(value, Decimal | float) and value != int(value):
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _draw(
    layout: Layout,
    *,
    days: Sequence[date],
    series: Sequence[Series],
    values: Mapping[date, Mapping[str, Number]],
    totals: list[Number],
    whole: bool,
    fmt: Callable[[Number], str],
) -> Plot:
    plot = Plot(layout)
    top, steps = nice_scale(float(max(totals, default=0)), whole=whole)
    plot_height = plot.baseline - TOP
    slot = (plot.plot_right - plot.plot_left) / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    for step in range(steps + 1):
        fraction = step / steps
        plot.y_ticks.append(
            Tick(
                position=round(plot.baseline - fraction * plot_height, 1),
                label=_short(top * fraction),
            )
        )
    every = max(math.ceil(len(days) / layout.max_x_labels), 1)
    # Labels count back from today, so the newest day is always named.
    last = len(days) - 1
    for index, day in enumerate(days):
        x = plot.plot_left + index * slot + (slot - bar_width) / 2
        if (last - index) % every == 0:
            plot.x_ticks.append(
                Tick(position=round(x + bar_width / 2, 1), label=day.strftime("%d %b"))
            )
        stacked = 0.0
        day_values = values.get(day, {})
        for s in series:
            value = day_values.get(s.key, 0)
            if not value:
                continue
            height = float(value) / top * plot_height
            y = plot.baseline - stacked - height
            stacked += height
            plot.bars.append(
                Bar(
                    x=round(x, 1),
                    y=round(y, 1),
                    width=round(bar_width, 1),
                    height=round(max(height, 0.5), 1),
                    css=s.css,
                    title=f"{day:%d %b %Y} · {s.label}: {fmt(value)}",
                    value=value,
                )
            )
    return plot


def stacked_bars(
    *,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    values: Mapping[date, Mapping[str, Number]],
    fmt: Callable[[Number], str] = _plain_number,
) -> Chart:
    chart = Chart(title=title, series=list(series))
    totals = [sum((values.get(d, {}).get(s.key, 0) for s in series), 0) for d in days]
    whole = all(isinstance(v, int) for day in values.values() for v in day.values())
    chart.plots = [
        _draw(
            layout,
            days=days,
            series=series,
            values=values,
            totals=totals,
            whole=whole,
            fmt=fmt,
        )
        for layout in (WIDE, NARROW)
    ]
    for index, day in enumerate(days):
        day_values = values.get(day, {})
        chart.rows.append(
            (
                day.strftime("%d %b %Y"),
                [fmt(day_values.get(s.key, 0)) for s in series],
                fmt(totals[index]),
            )
        )
    chart.total = sum(totals, 0)
    return chart
