"""models/decision.py: the hours a decision sizes, and why live (fed the newest feed_hours)
equals a replay fed from the start of a longer series."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from models.decision import DecisionForecaster, feed, feed_hours, lead_offsets, observed_demand
from models.nowcast import NowcastConfig

T0 = datetime(2026, 1, 5)


@pytest.mark.parametrize(
    ("lead", "minute", "expected"),
    [
        (60, 0, (1,)),  # at 05:00: the 06:00 hour
        (45, 20, (1, 2)),  # at 05:20: 06:05-07:05 -> 06:00 and 07:00
        (45, 0, (1,)),  # at 05:00: 05:45-06:45 -> 05:00 (observed) and 06:00
        (120, 0, (1, 2)),  # a scale-in at once must cover 06:00 as well as 07:00
        (30, 40, (1, 2)),  # at 05:40: 06:10-07:10
    ],
)
def test_lead_offsets_are_the_hours_the_new_capacity_serves(
    lead: int, minute: int, expected: tuple[int, ...]
) -> None:
    assert lead_offsets(lead, 60, minute) == expected


def test_a_forecaster_fed_only_the_newest_feed_hours_equals_one_fed_from_the_start() -> None:
    rng = np.random.default_rng(4)
    hours = 24 * 70
    h = np.arange(hours)
    y = 1000 * np.exp(0.8 * np.cos(2 * np.pi * h / 24) + rng.normal(0, 0.1, hours))
    y[rng.integers(0, hours, 40)] = np.nan  # gaps
    ts = [T0 + timedelta(hours=i) for i in range(hours)]
    offsets = (1, 2)
    cfg = NowcastConfig(quantile=0.9, min_log_margin=None)
    window = feed_hours(cfg, max(offsets))
    assert window < hours - 24 * 7  # the check below is about long series
    replayed = DecisionForecaster(offsets, cfg)
    checked = 0
    for d in range(hours):
        replayed.observe(ts[d], float(y[d]))
        if d >= window + 24 and d % 97 == 0:
            live = feed(ts[d - window : d + 1], y[d - window : d + 1].tolist(), offsets, cfg)
            assert live.ready() and replayed.ready()
            assert live.series_forecast("players") == replayed.series_forecast("players")
            checked += 1
    assert checked >= 5
    # and a window that is too short does not agree (the check can fail)
    short = feed(ts[hours - 300 :], y[hours - 300 :].tolist(), offsets, cfg)
    assert short.series_forecast("players") != replayed.series_forecast("players")


def test_observed_demand_is_the_newest_hour_within_the_age_limit() -> None:
    ts = [T0 + timedelta(hours=i) for i in range(5)]
    vals = [10.0, 20.0, 30.0, float("nan"), float("nan")]
    now = ts[4] + timedelta(minutes=20)
    assert observed_demand(ts, vals, now, timedelta(minutes=150)) == 30.0
    assert observed_demand(ts, vals, now, timedelta(minutes=60)) is None
