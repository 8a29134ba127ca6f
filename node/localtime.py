"""Times as members read them, on the co-op's clock: shared by the CLI and the portal."""

from __future__ import annotations

from datetime import datetime

import arrow

DEFAULT_TZ = "Europe/London"
"""The co-op's time zone when nothing says otherwise: members read times on their own clock."""


def local_time(at: datetime | int | float, tz: str = DEFAULT_TZ) -> str:
    """'Tue 1 Dec 2026, 21:30 GMT': an instant as a member reads it, on the co-op's clock."""
    return arrow.get(at).to(tz).format("ddd D MMM YYYY, HH:mm ZZZ")


def local_day(at: datetime | int | float, tz: str = DEFAULT_TZ) -> str:
    """'1 Dec 2026': the local day an instant falls on."""
    return arrow.get(at).to(tz).format("D MMM YYYY")
