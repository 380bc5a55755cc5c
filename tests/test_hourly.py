"""The hourly grid and the one gap filler (``models.hourly``): a filled hour depends only on the
hours before it."""

from __future__ import annotations

import numpy as np

from models.hourly import DAY, fill_gaps, to_hourly


def test_to_hourly_floors_averages_and_marks_missing_hours() -> None:
    ds = np.array(
        ["2025-03-17T13:01:50", "2025-03-17T13:40:00", "2025-03-17T15:02:26"],
        dtype="datetime64[ns]",
    )
    start, y = to_hourly(ds, [10.0, 20.0, 40.0])
    assert start == np.datetime64("2025-03-17T13", "h")
    assert y[0] == 15.0 and np.isnan(y[1]) and y[2] == 40.0


def test_to_hourly_extends_to_end_and_drops_what_is_after() -> None:
    ds = np.array(["2025-01-01T00", "2025-01-01T05"], dtype="datetime64[ns]")
    _, y = to_hourly(ds, [1.0, 2.0], end=np.datetime64("2025-01-01T03").item())
    assert y.size == 4 and y[0] == 1.0 and np.isnan(y[1:]).all()
    assert to_hourly(ds[:0], [])[0] is None


def test_fill_uses_the_last_value_plus_the_seasonal_change() -> None:
    day = 100 + 10 * np.sin(2 * np.pi * np.arange(2 * DAY) / DAY)
    y = day.copy()
    y[DAY + 5 : DAY + 8] = np.nan  # three hours missing on day 2
    filled = fill_gaps(y)
    # the series repeats daily, so "yesterday's change since the last observed hour" is exact
    np.testing.assert_allclose(filled, day)
    assert np.isnan(y[DAY + 5])  # the argument is not mutated


def test_fill_never_reads_the_future() -> None:
    rng = np.random.default_rng(3)
    y = rng.gamma(2.0, 50.0, 400)
    y[rng.random(400) < 0.2] = np.nan
    y[0] = 5.0
    whole = fill_gaps(y)
    assert np.isfinite(whole).all() and (whole >= 0).all()
    for cut in (30, 97, 250, 399):
        np.testing.assert_array_equal(fill_gaps(y[:cut]), whole[:cut])
        changed = y.copy()
        changed[cut:] = rng.gamma(2.0, 500.0, 400 - cut)  # anything after the cutoff
        np.testing.assert_array_equal(fill_gaps(changed)[:cut], whole[:cut])


def test_nothing_before_the_first_observation_to_fill_from() -> None:
    out = fill_gaps([np.nan, 1.0, np.nan])
    assert np.isnan(out[0]) and out[1:].tolist() == [1.0, 1.0]
    assert np.isnan(fill_gaps([np.nan, np.nan])).all()
