"""The last hour as an inline SVG line chart, drawn on the server (the console runs no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from application.ports import MinuteActivity

WIDTH, HEIGHT, MINUTES = 600, 120, 60


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: str  # SVG polyline points
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    peak: int
    series: list[Series]


def last_hour(activity: list[MinuteActivity], now: datetime) -> Chart:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    by_minute = {a.minute: a for a in activity}
    minutes = [start + timedelta(minutes=i) for i in range(MINUTES)]
    columns = {
        "created": [by_minute[m].created if m in by_minute else 0 for m in minutes],
        "delivered": [by_minute[m].delivered if m in by_minute else 0 for m in minutes],
        "failed": [by_minute[m].failed if m in by_minute else 0 for m in minutes],
    }
    peak = max(1, *(max(values) for values in columns.values()))
    colours = {"created": "#2563eb", "delivered": "#16a34a", "failed": "#dc2626"}
    series = []
    for name, values in columns.items():
        points = " ".join(
            f"{i * WIDTH / (MINUTES - 1):.1f},{HEIGHT - v * (HEIGHT - 4) / peak - 2:.1f}" for i, v in enumerate(values)
        )
        series.append(Series(name, colours[name], points, sum(values)))
    return Chart(WIDTH, HEIGHT, peak, series)
