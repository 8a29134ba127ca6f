"""Simple SVG bar charts, drawn on the server, each with a text title and summary for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import arrow
import numpy as np

HALF_HOUR = 1800
DAY = 86_400
WIDTH, HEIGHT, PAD = 640, 220, 28
COLOURS = {"demand": "#1d5fa8", "generation": "#2e7d32", "export": "#8a5a00"}  # 4.5:1 on white


@dataclass(frozen=True)
class Series:
    name: str  # dataset: demand, generation, export
    values: np.ndarray  # one per bar


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "kWh") -> str:
    """Grouped bars, one group per label; every fourth label is printed under its group."""
    top = max((float(s.values.max()) for s in series if len(s.values)), default=0.0) or 1.0
    groups = max(len(labels), 1)
    slot = (WIDTH - 2 * PAD) / groups
    bar = max(slot / (len(series) + 1), 1.0)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 30}" role="img" aria-labelledby="t-{id(labels)}"'
        f' class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="t-{id(labels)}">{escape(title)}</title>',
        f'<line x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH - PAD}" y2="{HEIGHT}" stroke="#444"/>',
        f'<text x="{PAD}" y="12" font-size="12" fill="#222">up to {top:.1f} {unit}</text>',
    ]
    for si, s in enumerate(series):
        for i, v in enumerate(s.values):
            h = (HEIGHT - 20) * float(v) / top
            x = PAD + i * slot + si * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                f' fill="{COLOURS.get(s.name, "#333")}"/>'
            )
    step = max(groups // 6, 1)
    for i in range(0, len(labels), step):
        parts.append(
            f'<text x="{PAD + i * slot:.1f}" y="{HEIGHT + 16}" font-size="12" fill="#222">'
            f"{escape(labels[i])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def daily(periods: np.ndarray, kwh: np.ndarray, start: int, days: int, tz: str) -> np.ndarray:
    """kWh per local day for `days` days from `start` (the start of a local day)."""
    offset = arrow.get(start).to(tz).utcoffset()
    shift = int(offset.total_seconds()) if offset else 0
    index = (periods + shift - (start + shift)) // DAY
    keep = (index >= 0) & (index < days)
    return np.bincount(index[keep], weights=kwh[keep], minlength=days)[:days]


def time_of_day(periods: np.ndarray, kwh: np.ndarray, tz: str) -> np.ndarray:
    """Average kWh of each half-hour of the local day (48 values)."""
    offset = arrow.get(int(periods[-1]) if len(periods) else 0).to(tz).utcoffset()
    shift = int(offset.total_seconds()) if offset else 0
    slot = ((periods + shift) % DAY) // HALF_HOUR
    sums = np.bincount(slot, weights=kwh, minlength=48)
    counts = np.bincount(slot, minlength=48)
    return np.divide(sums, counts, out=np.zeros(48), where=counts > 0)


def clock_labels() -> list[str]:
    return [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]
