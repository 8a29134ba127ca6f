"""A PNG of one day's local matching: demand, local generation exported, matched, and the grid."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coopfed.node.storage.ledger import JournalLine


def day_matching(lines: Iterable[JournalLine], periods: np.ndarray) -> pd.DataFrame:
    """kWh per period from the co-op's own accounts (no member's readings): matched, from and to the grid.

    Lines of other periods (the rest of a journal's span) are left out."""
    column = {"local_sales": 0, "grid_purchases": 1, "grid_sales": 2}
    row = {int(p): i for i, p in enumerate(periods.tolist())}
    wh = np.zeros((periods.size, 3), np.int64)
    for line in lines:
        i = row.get(line.period_start)
        if i is not None and line.account == "coop" and line.kind in column:
            wh[i, column[line.kind]] += line.wh
    frame = pd.DataFrame(wh / 1000, index=periods, columns=["matched", "grid_import", "grid_export"])
    frame["demand"] = frame["matched"] + frame["grid_import"]
    frame["generation"] = frame["matched"] + frame["grid_export"]
    return frame


def plot_day(frame: pd.DataFrame, path: Path, *, title: str, tz: str) -> None:
    local = pd.to_datetime(frame.index.to_numpy(np.int64), unit="s", utc=True).tz_convert(tz)
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.fill_between(local, 0, frame["matched"], step="post", alpha=0.5, label="matched locally")
    ax.step(local, frame["demand"], where="post", label="demand")
    ax.step(local, frame["generation"], where="post", label="local generation exported")
    ax.step(local, frame["grid_import"], where="post", linestyle="--", label="bought from the grid")
    ax.step(local, frame["grid_export"], where="post", linestyle=":", label="sold to the grid")
    ax.set_ylabel("kWh per half-hour")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
