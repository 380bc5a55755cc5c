"""Hourly series: the time constants and event kinds every module shares, the hourly grid and the
one gap filler.

- ``DAY``, ``WEEK``: hours in a day and a week; ``EVENT_KINDS``: the kinds an event may have.
- ``to_hourly(ds, y, end=None) -> (start, values)``: timestamps floored to the hour, values
  averaged within an hour, on a complete grid from the first observed hour to the last (or to
  ``end``); missing hours are NaN.
- ``fill_gaps(values, season=DAY)``: missing values filled from the past only (see its doc), so a
  value filled at hour ``t`` never depends on anything after ``t``: filling a whole history and
  then cutting it at a cutoff gives the same values as filling only the part before the cutoff.
  Cross-validation and hold-outs rely on it (no future leaks into a score through a gap).

Pure functions: no I/O, arguments never mutated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

DAY = 24  # hours
WEEK = 168  # hours
EVENT_KINDS: tuple[str, ...] = ("tournament", "game_update", "holiday", "promotion", "other")


def to_hourly(
    ds: Sequence[datetime] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    end: datetime | None = None,
) -> tuple[np.datetime64 | None, np.ndarray]:
    """(first hour, values per hour): ``ds`` floored to the hour, the finite values of one hour
    averaged, on a complete hourly grid from the first hour with a value to the last one (or to
    ``end``, floored; hours after it are dropped). Hours without a value are NaN. No value at
    all: ``(None, empty)``."""
    hours = np.asarray(ds, dtype="datetime64[ns]").astype("datetime64[h]")
    values = np.asarray(y, dtype=float)
    if hours.shape != values.shape:
        raise ValueError(f"ds and y differ in length ({hours.size} vs {values.size})")
    ok = ~np.isnat(hours) & np.isfinite(values)
    hours, values = hours[ok], values[ok]
    if end is not None:
        last = np.datetime64(end, "ns").astype("datetime64[h]")
        keep = hours <= last
        hours, values = hours[keep], values[keep]
    if hours.size == 0:
        return None, np.empty(0)
    start = hours.min()
    if end is None:
        last = hours.max()
    n = int((last - start).astype(int)) + 1
    idx = (hours - start).astype(int)
    sums = np.bincount(idx, weights=values, minlength=n)
    counts = np.bincount(idx, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return start, grid


def fill_gaps(values: Sequence[float] | np.ndarray, season: int = DAY) -> np.ndarray:
    """A new array with every missing (NaN) value filled from the past only: the last observed
    value plus the change over the same hours one ``season`` earlier (``y[j] + y[t - season] -
    y[j - season]``, ``j`` the last observed hour before ``t``; the values used may themselves
    be filled ones), or the last observed value where a season back is not available. Clipped
    at 0 when every observed value is >= 0. Values before the first observation stay NaN
    (nothing precedes them to fill from)."""
    y = np.array(values, dtype=float)
    missing = ~np.isfinite(y)
    if not missing.any():
        return y
    observed = y[~missing]
    nonneg = observed.size > 0 and bool(np.min(observed) >= 0)
    last = -1  # index of the last observed value
    for t in range(y.size):
        if not missing[t]:
            last = t
            continue
        if last < 0:
            continue
        fill = y[last]
        if last - season >= 0 and np.isfinite(y[t - season]) and np.isfinite(y[last - season]):
            fill = y[last] + y[t - season] - y[last - season]
        y[t] = max(fill, 0.0) if nonneg else fill
    return y
