"""``fleetcast backtest``: load one series and its events from DuckDB, replay it, write the CSV.

The thinking is in :mod:`models.replay` (hour-by-hour replay, references, scores) and
:mod:`models.nowcast` (the forecaster read at each decision); this module only reads the
database, builds the fleet spec and writes the plan.

CSV columns (one row per replayed hour): ``ts, game_type, region, metric, demand, forecast,
capacity``; ``capacity`` is the policy's capacity in effect at ``ts`` in the metric's units
(instances x unit capacity), ``forecast`` the nowcast made one lead earlier for ``ts``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from fleetcast.resources import db
from fleetcast.resources.progress import tracker
from fleetcast.stages.fleets import load_fleets
from fleetcast.stages.overrides import list_overrides
from fleetcast.stages.plan_inputs import read_one_forecast, read_one_series, read_series_events
from models.curve import LEVELS, CurvePoint, CurveRow, point, policy_at, reference_at
from models.decision import decision_config
from models.hourly import WEEK
from models.names import check_name
from models.nowcast import NowcastConfig
from models.policy import FleetSpec, SeriesForecast
from models.replay import ReplayResult, replay

CSV_COLUMNS = ("ts", "game_type", "region", "metric", "demand", "forecast", "capacity")
LARGE_MAX = 1_000_000  # max size of a fleet built from --unit-capacity (no fleets row)


@dataclass(frozen=True)
class BacktestRequest:
    game_type: str
    metric: str
    start: datetime  # first scored hour, naive UTC
    lead: int  # hours between a decision and the hour it sizes
    region: str = "global"
    end: datetime | None = None  # last scored hour (default: the newest hour of the series)
    unit_capacity: float | None = None  # metric units one instance serves (no fleets row)
    margin: float = 0.1  # the references' margin (and the policy's when no fleets row)
    history_hours: int = 7 * WEEK  # history loaded before start (the nowcast's memory)
    policy_margin: float | None = None  # what-if: the policy's safety margin (default: fleet's)
    tolerance: float | None = None  # what-if: the policy's tolerance band (default: fleet's)
    quantile: float | None = None  # what-if: the service level (default: the fleet's)
    use_events: bool = True  # the events table (False: the what-if --no-events)
    lead_minutes: int | None = None  # the lead in minutes (replaces ``lead``; e.g. 45)
    decision_minute: int = 0  # minute of the hour the decisions are taken at
    warmup_hours: int = 24  # decisions replayed before the first scored hour
    initial_capacity: int | None = None  # desired capacity before the first decision

    def __post_init__(self) -> None:
        check_name("game type", self.game_type)
        check_name("region", self.region)
        check_name("metric", self.metric)
        if self.lead_minutes is None and self.lead < 1:
            raise ValueError(f"--lead must be at least 1 hour, got {self.lead}")
        if self.lead_minutes is not None and self.lead_minutes < 1:
            raise ValueError(f"--lead-minutes must be at least 1, got {self.lead_minutes}")
        if not 0 <= self.decision_minute < 60:
            raise ValueError(f"--decision-minute must be in [0, 60), got {self.decision_minute}")
        if self.unit_capacity is not None and not (
            math.isfinite(self.unit_capacity) and self.unit_capacity > 0
        ):
            raise ValueError(f"--unit-capacity must be > 0, got {self.unit_capacity}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"--margin must be >= 0, got {self.margin}")
        if self.policy_margin is not None and not self.policy_margin >= 0:
            raise ValueError(f"--policy-margin must be >= 0, got {self.policy_margin}")
        if self.tolerance is not None and not 0 <= self.tolerance < 1:
            raise ValueError(f"--tolerance must be in [0, 1), got {self.tolerance}")
        if self.quantile is not None and not 0 < self.quantile < 1:
            raise ValueError(f"--quantile must be in (0, 1), got {self.quantile}")


def _hour(ts: datetime) -> datetime:
    """Naive UTC, floored to the hour (an aware time is converted to UTC first)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.replace(minute=0, second=0, microsecond=0)


def load_series(
    con: duckdb.DuckDBPyConnection, req: BacktestRequest, since: datetime, until: datetime
) -> tuple[list[datetime], np.ndarray]:
    """The series on a full hourly grid from ``since`` (or its first hour) to ``until``;
    missing hours are NaN. Values within one hour are averaged (sub-hourly input). The same
    loader as the live decision (:func:`fleetcast.stages.plan_inputs.read_series`)."""
    ts, values = read_one_series(con, req.game_type, req.region, req.metric, since, until)
    if not ts:
        raise ValueError(
            f"no {req.metric!r} data for {req.game_type}/{req.region} between {since} and "
            f"{until}: check --game-type/--region/--metric or ingest data first"
        )
    return ts, values


def fleet_spec(con: duckdb.DuckDBPyConnection, req: BacktestRequest) -> FleetSpec:
    """The fleets row for the game type and region, else a spec from --unit-capacity
    (min 0, a large max, the --margin, other knobs at their defaults); then the what-if
    overrides (--policy-margin, --tolerance)."""
    spec = _base_spec(con, req)
    if req.policy_margin is not None:
        spec = replace(spec, safety_margin=req.policy_margin)
    if req.tolerance is not None:
        spec = replace(spec, tolerance=req.tolerance)
    if req.quantile is not None:
        spec = replace(spec, service_level=req.quantile)
    return spec


def _base_spec(con: duckdb.DuckDBPyConnection, req: BacktestRequest) -> FleetSpec:
    for spec in load_fleets(con, req.game_type):
        if spec.region == req.region and spec.demand_metric == req.metric:
            if req.unit_capacity is not None:
                spec = replace(spec, capacity_players=req.unit_capacity)
            return spec
    if req.unit_capacity is None:
        raise ValueError(
            f"no fleet for {req.game_type}/{req.region} measured in {req.metric!r} in the fleets "
            "table: pass --unit-capacity N (metric units one instance serves)"
        )
    name = f"{req.game_type}-{req.region}"
    return FleetSpec(
        fleet=name,
        game_type=req.game_type,
        region=req.region,
        asg_name=f"backtest-{name}",
        capacity_players=req.unit_capacity,
        min_size=0,
        max_size=LARGE_MAX,
        demand_metric=req.metric,
        safety_margin=req.margin,
    )


def run_backtest(
    con: duckdb.DuckDBPyConnection,
    req: BacktestRequest,
    config: NowcastConfig | None = None,
    spec_changes: Mapping[str, object] | None = None,
) -> tuple[ReplayResult, FleetSpec]:
    """Load, replay and score one fleet (reads only). The fleet state is the live one: its
    fleets row (min / max, knobs), its overrides, and at hours a live decision was recorded the
    busy-instance count that decision saw (0 elsewhere: history keeps no busy counts).
    ``spec_changes``: FleetSpec fields to replace (what-if, e.g. a protective rule off)."""
    start = _hour(req.start)
    if req.end is None:
        rows = con.sql(
            db.sql("backtest_last_ts"),
            params={"game_type": req.game_type, "region": req.region, "metric": req.metric},
        ).fetchall()
        if not rows or rows[0][0] is None:
            raise ValueError(f"no {req.metric!r} data for {req.game_type}/{req.region}")
        end = _hour(rows[0][0])
    else:
        end = _hour(req.end)
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    since = start - timedelta(hours=req.history_hours)
    ts, values = load_series(con, req, since, end)
    if ts[0] > start:
        raise ValueError(
            f"the series starts at {ts[0]}, after --start {start}: start later, or load more data"
        )
    horizon = end + timedelta(hours=req.lead + 2)
    events = (
        read_series_events(con, req.game_type, req.region, since, horizon) if req.use_events else []
    )
    spec = fleet_spec(con, req)
    if spec_changes:
        spec = replace(spec, **spec_changes)  # type: ignore[arg-type]
    if config is None:
        config = decision_config(spec)
    overrides = list_overrides(con, start, fleet=spec.fleet, include_inactive=True)
    busy = dict(
        con.sql(
            db.sql("backtest_recorded_busy"),
            params={"fleet": spec.fleet, "since": since, "until": end + timedelta(hours=1)},
        ).fetchall()
    )

    def stored(now: datetime) -> dict[str, SeriesForecast]:
        fc = read_one_forecast(con, req.game_type, req.region, req.metric, now)
        return {req.metric: fc} if fc is not None else {}

    result = replay(
        ts,
        values.tolist(),
        start=start,
        end=end,
        spec=spec,
        lead=req.lead,
        margin=req.margin,
        config=config,
        events=events,
        lead_minutes=req.lead_minutes,
        decision_minute=req.decision_minute,
        warmup=req.warmup_hours,
        initial=req.initial_capacity,
        overrides=overrides,
        stored=stored,
        busy=busy,
    )
    return result, spec


def plan_frame(result: ReplayResult, req: BacktestRequest) -> pl.DataFrame:
    """The contracted CSV columns."""
    return result.frame.select(
        pl.col("ts"),
        pl.lit(req.game_type).alias("game_type"),
        pl.lit(req.region).alias("region"),
        pl.lit(req.metric).alias("metric"),
        pl.col("demand"),
        pl.col("forecast").round(3),
        pl.col("capacity"),
    )


def write_plan(result: ReplayResult, req: BacktestRequest, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan_frame(result, req).write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S")
    return path


def format_table(result: ReplayResult) -> str:
    """The replay table as fixed-width text."""
    t = result.table()
    lines = [
        f"{'plan':<24} {'margin':>7} {'hours':>6} {'short':>6} {'share':>7} "
        f"{'unserved':>12} {'idle':>14} {'changes':>8}"
    ]
    for r in t.iter_rows(named=True):
        m = "" if r["margin"] is None else f"{r['margin']:.3f}"
        lines.append(
            f"{r['plan']:<24} {m:>7} {r['hours']:>6} {r['hours_short']:>6} "
            f"{r['share_short']:>7.2%} {r['unserved']:>12,.1f} {r['idle']:>14,.1f} "
            f"{r['changes']:>8}"
        )
    return "\n".join(lines)


# The policy's knob settings swept by ``--sweep``: (service level, safety margin). The service
# level (upper quantile of the decision forecaster's own past errors) is the knob; past 0.99 the
# safety margin of the original spec continues the curve to higher over-provisioning.
SWEEP: tuple[tuple[float, float], ...] = (
    (0.2, 0.0),
    (0.35, 0.0),
    (0.5, 0.0),
    (0.65, 0.0),
    (0.8, 0.0),
    (0.9, 0.0),
    (0.95, 0.0),
    (0.98, 0.0),
    (0.99, 0.0),
    (0.99, 0.1),
    (0.99, 0.25),
)
REFERENCES = (
    ("forecast x (1+m)", "forecast"),
    ("reactive", "reactive"),
    ("seasonal rule", "seasonal"),
)


@dataclass(frozen=True)
class RuleEffect:
    """What one protective rule did at the fleet's own setting: the replay with the rule as
    configured against the same replay with it off."""

    rule: str
    setting: str  # as configured ("off" when it is off: nothing to measure)
    over_added: float  # over-provisioning (sum capacity / sum demand - 1) it added
    short_prevented: int  # hours short it prevented (negative: it caused them)


@dataclass(frozen=True)
class SweepResult:
    rows: tuple[CurveRow, ...]  # policy, forecast x (1+m), reactive, seasonal rule
    points: tuple[CurvePoint, ...]  # the policy's settings
    seconds_per_setting: float
    rules: tuple[RuleEffect, ...] = ()


def run_sweep(
    con: duckdb.DuckDBPyConnection,
    req: BacktestRequest,
    settings: Sequence[tuple[float, float]] = SWEEP,
    levels: Sequence[float] = LEVELS,
) -> SweepResult:
    """Replay the policy at each knob setting and price it against the references at equal
    over-provisioning (:mod:`models.curve`)."""
    points = []
    last: ReplayResult | None = None
    t0 = time.perf_counter()
    bump = tracker(len(settings), "sweeping the policy's knob")  # a bar or a progress artifact
    for i, (q, m) in enumerate(settings):
        result, _ = bump(run_backtest(con, replace(req, quantile=q, policy_margin=m)))
        dem = result.frame["demand"].fill_null(float("nan")).to_numpy()
        points.append(point(dem, result.frame["capacity"].to_numpy(), float(i)))
        last = result
    took = (time.perf_counter() - t0) / max(1, len(settings))
    if last is None:
        raise ValueError("a sweep needs at least one knob setting")
    dem = last.frame["demand"].fill_null(float("nan")).to_numpy()
    rows = [
        CurveRow(
            plan="policy",
            lowest=min(p.over for p in points),
            at={lv: policy_at(points, lv) for lv in levels},
        )
    ]
    for name, key in REFERENCES:
        base = last.bases[key]
        at = {
            lv: reference_at(base, dem, last.unit, last.min_size, last.max_size, lv)
            for lv in levels
        }
        rows.append(CurveRow(plan=name, lowest=None, at=at))
    return SweepResult(tuple(rows), tuple(points), took, tuple(rule_effects(con, req)))


# protective rules and how to switch each off (FleetSpec fields)
RULES: tuple[tuple[str, dict[str, object]], ...] = (
    ("tolerance", {"tolerance": 0.0}),
    ("stabilisation", {"scale_in_stabilisation_minutes": 0}),
    ("step limits", {"max_step_up": None, "max_step_down": None}),
)


def rule_effects(con: duckdb.DuckDBPyConnection, req: BacktestRequest) -> list[RuleEffect]:
    """Each protective rule's cost (over-provisioning added) and benefit (hours short
    prevented) at the fleet's own setting, against the same replay with that rule off."""
    base, spec = run_backtest(con, req)
    dem = base.frame["demand"].fill_null(float("nan")).to_numpy()
    on = point(dem, base.frame["capacity"].to_numpy(), 0.0)
    out = []
    bump = tracker(len(RULES), "pricing the protective rules")  # a bar or a progress artifact
    for name, off in RULES:
        current = {k: getattr(spec, k) for k in off}
        if current == off or all(v in (None, 0, 0.0) for v in current.values()):
            out.append(RuleEffect(name, "off", 0.0, 0))
        else:
            result, _ = run_backtest(con, req, spec_changes=off)
            p = point(dem, result.frame["capacity"].to_numpy(), 0.0)
            setting = ", ".join(f"{k}={v}" for k, v in current.items() if v is not None)
            out.append(
                RuleEffect(
                    name,
                    setting,
                    on.over - p.over,
                    result.policy.hours_short - base.policy.hours_short,
                )
            )
        bump(name)
    return out


def format_rules(effects: Sequence[RuleEffect]) -> str:
    lines = [f"{'rule':<14} {'setting':<36} {'over added':>11} {'short h prevented':>18}"]
    for e in effects:
        lines.append(
            f"{e.rule:<14} {e.setting:<36} {e.over_added:>+11.2%} {e.short_prevented:>18d}"
        )
    return "\n".join(lines)
