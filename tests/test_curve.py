"""models/curve.py: plans priced at equal over-provisioning (hand-checked cases)."""

from __future__ import annotations

import numpy as np
import pytest

from models.curve import CurvePoint, point, policy_at, reference_at, sized


def test_point_over_provisioning_shortage_and_unserved_by_hand() -> None:
    demand = np.array([10.0, 20.0, np.nan, 30.0])
    capacity = np.array([12.0, 20.0, 20.0, 25.0])
    p = point(demand, capacity, 0.0)
    assert p.over == pytest.approx((12 + 20 + 25) / 60 - 1)  # the missing hour is not scored
    assert p.share_short == pytest.approx(1 / 3)
    assert p.unserved == pytest.approx(5 / 60)
    assert p.changes == 2  # 12->20, 20->25


def test_reference_margin_is_bisected_to_the_level() -> None:
    rng = np.random.default_rng(1)
    demand = rng.uniform(50, 150, 500)
    base = demand * rng.uniform(0.8, 1.2, 500)
    for level in (0.05, 0.1, 0.2):
        p = reference_at(base, demand, 1.0, 0, 10_000, level)
        assert p is not None
        assert level <= p.over < level + 0.005  # whole instances: the first margin reaching it
        below = point(demand, sized(base, p.knob - 0.01, 1.0, 0, 10_000), 0.0)
        assert below.over < level
    assert reference_at(base, demand, 1.0, 0, 100, 0.5) is None  # capped by the max


def test_policy_points_interpolate_and_an_unreachable_level_is_none() -> None:
    pts = [
        CurvePoint(0.0, 0.08, 0.10, 0.02, 100.0),
        CurvePoint(1.0, 0.12, 0.02, 0.01, 120.0),
        CurvePoint(2.0, 0.30, 0.00, 0.00, 150.0),
    ]
    p = policy_at(pts, 0.10)
    assert p is not None
    assert p.share_short == pytest.approx(0.06) and p.changes == pytest.approx(110.0)
    assert policy_at(pts, 0.05) is None  # its lowest over-provisioning is +8%
    top = policy_at(pts, 0.5)
    assert top is not None and top.over == 0.30  # above the sweep: its highest point
