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

WIDTH = 720
HEIGHT = 240
LEFT = 56  # room for the y-axis labels
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the x-axis labels
MAX_X_LABELS = 10


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
class Chart:
    title: str
    series: list[Series]
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    rows: list[tuple[str, list[str], str]] = field(default_factory=list)  # day, values, total
    total: Number = 0

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT

    @property
    def middle(self) -> int:
        return (self.plot_left + self.plot_right) // 2

    @property
    def baseline(self) -> int:
        return self.height - BOTTOM

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
    top, steps = nice_scale(float(max(totals, default=0)), whole=whole)
    plot_height = chart.baseline - TOP
    plot_width = chart.plot_right - chart.plot_left
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    for step in range(steps + 1):
        fraction = step / steps
        chart.y_ticks.append(
            Tick(
                position=round(chart.baseline - fraction * plot_height, 1),
                label=_short(top * fraction),
            )
        )
    every = max(math.ceil(len(days) / MAX_X_LABELS), 1)
    for index, day in enumerate(days):
        x = chart.plot_left + index * slot + (slot - bar_width) / 2
        if index % every == 0:
            chart.x_ticks.append(
                Tick(position=round(x + bar_width / 2, 1), label=day.strftime("%d %b"))
            )
        stacked = 0.0
        day_values = values.get(day, {})
        for s in series:
            value = day_values.get(s.key, 0)
            if not value:
                continue
            height = float(value) / top * plot_height
            y = chart.baseline - stacked - height
            stacked += height
            chart.bars.append(
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
        chart.rows.append(
            (
                day.strftime("%d %b %Y"),
                [fmt(day_values.get(s.key, 0)) for s in series],
                fmt(totals[index]),
            )
        )
    chart.total = sum(totals, 0)
    return chart
