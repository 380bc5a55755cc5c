"""Cost / shortage curves: plans compared at equal over-provisioning. Pure.

Over-provisioning of a capacity plan = sum(capacity) / sum(demand) - 1 over the scored hours
with known demand (what the fleet paid for beyond the demand it served, as a share of it).

- A reference with a margin ``m`` (reactive, the seasonal rule, the forecaster used directly as
  capacity) is sized ``ceil(base x (1 + m) / unit)``: its over-provisioning grows with ``m``, so
  the margin for a level is bisected, and its shortage is read there.
- The policy is swept over its knob (a list of settings, each a replay): its points
  (over-provisioning, shortage) are interpolated linearly between the two settings around a
  level. Below its lowest point the level is not reachable; above its highest point the
  highest point is used (more capacity would only be short less: a conservative reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVELS: tuple[float, ...] = (0.05, 0.10, 0.20)
_EPS = 1e-9


@dataclass(frozen=True)
class CurvePoint:
    knob: float  # the margin of a reference, the knob setting of the policy
    over: float  # sum capacity / sum demand - 1
    share_short: float  # share of scored hours with demand > capacity
    unserved: float  # sum of max(0, demand - capacity) / sum demand
    changes: float  # hours whose capacity differs from the hour before
    hours: int = 0


def point(
    demand: np.ndarray, capacity: np.ndarray, knob: float, mask: np.ndarray | None = None
) -> CurvePoint:
    """The curve point of one capacity plan (NaN demand hours not scored; they count for
    changes). ``mask`` (booleans, one per hour): hours short and unserved (as a share of the
    demand there) over those hours only, over-provisioning still over all hours (a subset
    such as event hours read at the plan's overall cost); no masked hour: 0 short."""
    demand = np.asarray(demand, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    known = ~np.isnan(demand)
    d, c = demand[known], capacity[known]
    total = float(d.sum())
    if total <= 0:
        raise ValueError("no demand in the scored hours: over-provisioning is undefined")
    over = float(c.sum()) / total - 1.0
    if mask is not None:
        sub = np.asarray(mask, dtype=bool)[known]
        d, c = d[sub], c[sub]
    scored = float(d.sum())
    return CurvePoint(
        knob=knob,
        over=over,
        share_short=float((d > c + _EPS).mean()) if d.size else 0.0,
        unserved=float(np.maximum(d - c, 0.0).sum()) / scored if scored > 0 else 0.0,
        changes=float(np.count_nonzero(np.abs(np.diff(capacity)) > _EPS)),
        hours=int(d.size),
    )


def sized(base: np.ndarray, margin: float, unit: float, lo: int, hi: int) -> np.ndarray:
    """``ceil(base x (1 + margin) / unit)`` instances within [lo, hi], in metric units; NaN
    base (nothing known yet) = lo."""
    need = np.where(np.isnan(base), 0.0, np.maximum(base, 0.0) * (1.0 + margin))
    return np.clip(np.ceil(need / unit - _EPS), lo, hi) * unit


def reference_at(
    base: np.ndarray,
    demand: np.ndarray,
    unit: float,
    lo: int,
    hi: int,
    level: float,
    *,
    m_lo: float = -0.9,
    m_hi: float = 20.0,
    iterations: int = 50,
) -> CurvePoint | None:
    """The reference at the smallest margin whose over-provisioning reaches ``level`` (None:
    not reachable within [m_lo, m_hi])."""

    def at(m: float) -> CurvePoint:
        return point(demand, sized(base, m, unit, lo, hi), m)

    if at(m_hi).over < level:
        return None
    if at(m_lo).over >= level:
        return at(m_lo)
    a, b = m_lo, m_hi
    for _ in range(iterations):
        mid = (a + b) / 2
        if at(mid).over >= level:
            b = mid
        else:
            a = mid
    return at(b)


def policy_at(points: Sequence[CurvePoint], level: float) -> CurvePoint | None:
    """The swept policy at ``level``, interpolated between the settings around it (None: its
    lowest over-provisioning is above the level)."""
    pts = sorted(points, key=lambda p: p.over)
    if not pts or pts[0].over > level + _EPS:
        return None
    if pts[-1].over <= level:
        return pts[-1]
    for a, b in zip(pts, pts[1:], strict=False):
        if a.over <= level <= b.over:
            w = 0.0 if b.over - a.over < _EPS else (level - a.over) / (b.over - a.over)

            def mix(x: float, y: float, w: float = w) -> float:
                return x + w * (y - x)

            return CurvePoint(
                knob=mix(a.knob, b.knob),
                over=level,
                share_short=mix(a.share_short, b.share_short),
                unserved=mix(a.unserved, b.unserved),
                changes=mix(a.changes, b.changes),
                hours=a.hours,
            )
    return pts[-1]  # not reached: the loop brackets every level in range


@dataclass(frozen=True)
class CurveRow:
    plan: str
    lowest: float | None  # lowest over-provisioning reachable (None: any, a margin)
    at: dict[float, CurvePoint | None]  # level -> point (None: not reachable)


def format_rows(rows: Sequence[CurveRow], levels: Sequence[float] = LEVELS) -> str:
    """Hours short (share) and unserved (share of demand) at each level, lowest reachable
    over-provisioning and changes at the middle level, as fixed-width text."""
    head = f"{'plan':<22} {'lowest':>7}"
    for lv in levels:
        head += f" {'short@' + format(lv, '+.0%'):>11} {'unserv@' + format(lv, '+.0%'):>12}"
    mid = levels[len(levels) // 2]
    head += f" {'changes@' + format(mid, '+.0%'):>13}"
    lines = [head]
    for r in rows:
        low = "any" if r.lowest is None else format(r.lowest, "+.1%")
        line = f"{r.plan:<22} {low:>7}"
        for lv in levels:
            p = r.at.get(lv)
            if p is None:
                line += f" {'-':>11} {'-':>12}"
            else:
                line += f" {p.share_short:>11.2%} {p.unserved:>12.3%}"
        p = r.at.get(mid)
        line += f" {('-' if p is None else format(p.changes, '.0f')):>13}"
        lines.append(line)
    return "\n".join(lines)
