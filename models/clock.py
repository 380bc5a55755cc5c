"""Time as fleetcast keeps it: naive UTC timestamps, whole hours of lead for hourly replays."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now in UTC, naive (how fleetcast stores every timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)


def lead_hours(lead_minutes: float) -> int:
    """Whole hours of lead for an hourly replay: rounded up (a 45-minute lead decides one hour
    ahead, a 61-minute lead two), and at least 1."""
    return max(1, math.ceil(lead_minutes / 60))
