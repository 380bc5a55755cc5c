"""The capacity policy: a pure function from one fleet's inputs at one decision time to a decision.

Nothing here reads a database, a clock or AWS: everything arrives in :class:`PolicyInput`, so the
same code plans live (``fleetcast scale``) and in a replay of history (``fleetcast backtest``).

Order of the rules in :func:`decide` (each one named in the decision's ``reason``):

1. fail-static checks (fleet config, forecast missing / stale / NaN / negative, model error);
2. predictive need: the upper quantile of the forecast over the window that starts one lead
   time ahead (every forecast period the window overlaps: the hours the new capacity will
   actually serve, also for leads that are not whole hours), times any multiplier override,
   plus the fixed margin (``required = upper * (1 + margin)``), divided by one instance's
   capacity per resource, rounded up, largest over resources;
3. reactive floor: below observed demand now x (1 + margin), scale up to it (target
   tracking); otherwise never below what observed demand needs now (no margin);
4. scale-in only with observed demand, after the stabilisation window (highest recommendation
   in it wins), and only by more than the tolerance band (the band never blocks scale-up);
   step limits;
5. min / max (with overrides) and the max breach behaviour (honour, or raise by a buffer);
6. never below the busy-instance count.

A fixed-capacity override replaces steps 2-5 (only the busy floor and the max still hold).
Where these steps sit among the other rules (learned settings, event hold, budgets, approval) is
written once in :mod:`models.precedence`, which calls :func:`decide`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from models.explain import figure, instances, resource_unit

Mode = Literal["forecast_only", "scale"]
Breach = Literal["honour", "raise"]
OverrideKind = Literal["capacity", "min", "max", "multiplier", "processes"]
# pending: a change held for approval (models/approval.py); approved: an approved change applied;
# rejected / expired: the held change was answered no, or nobody answered (nothing applied)
Status = Literal[
    "ok", "hold", "fail_static", "override", "capped", "pending", "approved", "rejected", "expired"
]

MODES: tuple[str, ...] = ("forecast_only", "scale")
BREACHES: tuple[str, ...] = ("honour", "raise")
# "processes": processes per instance (applied by the processes step, fleetcast.stages.processes)
OVERRIDE_KINDS: tuple[str, ...] = ("capacity", "min", "max", "multiplier", "processes")
# Default priority per session type when a fleet file gives none (lower = served first).
SESSION_PRIORITY: dict[str, int] = {"tournament": 10, "ranked": 20, "casual": 30}
# Extra resources and the metrics that measure their demand (network: the busier direction).
RESOURCE_METRICS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu_cores",),
    "memory": ("memory_gb",),
    "net": ("net_in_mbps", "net_out_mbps"),
}
_EPS = 1e-9


@dataclass(frozen=True)
class FleetSpec:
    """One fleet (an Auto Scaling group for a game type in a region) and its policy knobs."""

    fleet: str
    game_type: str
    region: str
    asg_name: str
    capacity_players: float  # demand units (players) one instance serves
    min_size: int
    max_size: int
    demand_metric: str = "players"
    server_config: str = "default"  # instance type / build label (informational)
    capacity_cpu: float | None = None  # cores one instance offers
    capacity_memory_gb: float | None = None
    capacity_net_mbps: float | None = None
    process_cpu: float | None = None  # what one game-server process needs
    process_memory_gb: float | None = None
    process_net_mbps: float | None = None
    processes_per_instance: int = 1  # used when no per-process needs are configured
    priority: int = 100  # lower = served first under a shared budget
    session_type: str = "casual"
    lead_time_minutes: int = 60  # boot + download + warm-up
    window_minutes: int = 60  # length of the window planned for, starting one lead ahead
    safety_margin: float = 0.1
    mode: Mode = "forecast_only"
    max_breach: Breach = "honour"
    max_breach_buffer_pct: float = 10.0
    max_step_up: int | None = None
    max_step_down: int | None = None
    # no scale-in when current - target <= tolerance * current (never blocks scale-up). Off by
    # default: on steam-dev's validation weeks the 0.15 band added more over-provisioning than
    # the short hours it prevented were worth at equal cost (docs/performance.md), and the
    # policy still changes capacity less often than reactive without it
    tolerance: float = 0.0
    # scale in only once the need has stayed lower over this window (the highest
    # recommendation in it wins). Off by default for the same reason (60 = two hourly
    # decisions); a scale-in never goes below what observed demand needs now either way
    scale_in_stabilisation_minutes: int = 0
    cost_per_hour: float = 0.0
    # the knob: the upper quantile of the decision forecaster's own past errors that sizes the
    # fleet (a service level per forecast hour); higher = fewer hours short, more idle
    service_level: float = 0.95

    def capacities(self) -> dict[str, float]:
        """Capacity of one instance per configured resource."""
        caps = {"players": self.capacity_players}
        for resource, value in (
            ("cpu", self.capacity_cpu),
            ("memory", self.capacity_memory_gb),
            ("net", self.capacity_net_mbps),
        ):
            if value is not None:
                caps[resource] = value
        return caps


@dataclass(frozen=True)
class ForecastPoint:
    ts: datetime
    yhat: float
    upper: float  # the upper quantile used for sizing (yhat_q90 when present, else yhat_upper)


@dataclass(frozen=True)
class SeriesForecast:
    """The latest forecast of one metric for the fleet's game type and region."""

    metric: str
    points: tuple[ForecastPoint, ...]
    created_at: datetime | None = None
    model: str = ""
    run_id: str = ""
    problem: str | None = None  # e.g. every stored model refused: a last-resort forecast


@dataclass(frozen=True)
class Override:
    override_id: str
    fleet: str
    kind: OverrideKind
    value: float
    reason: str
    created_at: datetime
    expires_at: datetime
    cleared_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        if self.cleared_at is not None and self.cleared_at <= now:
            return False
        return self.created_at <= now < self.expires_at


@dataclass(frozen=True)
class PolicyInput:
    """Everything one decision may use. ``observed`` and ``forecasts`` are keyed by metric."""

    fleet: FleetSpec
    now: datetime
    current: int | None  # desired capacity in effect now (None = unknown)
    busy: int = 0  # instances hosting sessions: never scaled in
    forecasts: Mapping[str, SeriesForecast] = field(default_factory=dict)
    observed: Mapping[str, float] = field(default_factory=dict)  # latest observed demand
    overrides: Sequence[Override] = ()
    history: Sequence[tuple[datetime, int]] = ()  # earlier (decided_at, recommended)
    current_max: int | None = None  # the group's MaxSize now (to restore a raised max)
    forecast_error: str | None = None  # failed validation, unloadable model, ...
    max_forecast_age: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class Decision:
    """One fleet's decision. ``target`` is the absolute desired capacity to apply."""

    fleet: str
    game_type: str
    region: str
    asg_name: str
    mode: Mode
    decided_at: datetime
    current: int | None
    target: int
    recommended: int  # raw need before stabilisation, limits and clamps (stabilisation history)
    processes_per_instance: int
    status: Status
    reason: str
    demand_forecast: float | None = None  # required demand (upper x multiplier x (1 + margin))
    reactive_floor: int | None = None
    busy: int = 0
    min_size: int = 0  # effective min and max after overrides and breach behaviour
    max_size: int = 0
    new_max_size: int | None = None  # a MaxSize to send (breach 'raise', or restoring it)
    unserved_instances: int = 0  # need not served because of the max or a budget
    priority: int = 100
    cost_per_hour: float = 0.0
    inputs: dict[str, Any] = field(default_factory=dict)  # JSON-able summary of the inputs
    # Filled in by apply (fleetcast.stages.allocate), never by the policy:
    applied: bool = False
    applied_desired: int | None = None
    outcome: str = ""


@dataclass(frozen=True)
class Budget:
    """A budget shared by fleets: total instances and/or cost per hour (None = no limit)."""

    max_instances: int | None = None
    max_cost_per_hour: float | None = None
    hard: bool = False  # cuts a person's capacity override too (models/precedence.py)


def validate_fleet(spec: FleetSpec) -> list[str]:
    """Problems with a fleet's configuration (empty = valid)."""
    errors = []
    if spec.min_size < 0:
        errors.append(f"min_size {spec.min_size} < 0")
    if spec.max_size < spec.min_size:
        errors.append(f"max_size {spec.max_size} < min_size {spec.min_size}")
    if not spec.capacity_players > 0:
        errors.append(f"capacity_players must be > 0 (got {spec.capacity_players})")
    for name, value in spec.capacities().items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            errors.append(f"capacity of {name} must be a positive number (got {value})")
    if spec.mode not in MODES:
        errors.append(f"mode {spec.mode!r} not in {MODES}")
    if spec.max_breach not in BREACHES:
        errors.append(f"max_breach {spec.max_breach!r} not in {BREACHES}")
    if not (math.isfinite(spec.safety_margin) and spec.safety_margin >= 0):
        errors.append(f"safety_margin must be >= 0 (got {spec.safety_margin})")
    if spec.lead_time_minutes < 0 or spec.window_minutes <= 0:
        errors.append("lead_time_minutes must be >= 0 and window_minutes > 0")
    for name, step in (("max_step_up", spec.max_step_up), ("max_step_down", spec.max_step_down)):
        if step is not None and step < 1:
            errors.append(f"{name} must be >= 1 or empty (got {step})")
    if not (0 <= spec.tolerance < 1):
        errors.append(f"tolerance must be in [0, 1) (got {spec.tolerance})")
    if not (isinstance(spec.service_level, int | float) and 0 < spec.service_level < 1):
        errors.append(f"service_level must be in (0, 1) (got {spec.service_level})")
    if spec.max_breach_buffer_pct < 0:
        errors.append("max_breach_buffer_pct must be >= 0")
    if spec.processes_per_instance < 1:
        errors.append("processes_per_instance must be >= 1")
    pairs = (
        ("cpu", spec.capacity_cpu, spec.process_cpu),
        ("memory", spec.capacity_memory_gb, spec.process_memory_gb),
        ("net", spec.capacity_net_mbps, spec.process_net_mbps),
    )
    for name, cap, need in pairs:
        if need is not None and (not math.isfinite(need) or need <= 0):
            errors.append(f"process {name} need must be > 0 (got {need})")
        elif need is not None and cap is not None and need > cap:
            errors.append(f"one process needs more {name} ({need}) than an instance has ({cap})")
    return errors


def processes_per_instance(spec: FleetSpec) -> int:
    """Game-server processes one instance runs: the tightest of CPU, memory and network."""
    limits = []
    for cap, need in (
        (spec.capacity_cpu, spec.process_cpu),
        (spec.capacity_memory_gb, spec.process_memory_gb),
        (spec.capacity_net_mbps, spec.process_net_mbps),
    ):
        if cap is not None and need is not None and need > 0:
            limits.append(math.floor(cap / need + _EPS))
    if not limits:
        return max(1, spec.processes_per_instance)
    return max(1, min(limits))


def instances_for(demand: float, capacity: float) -> int:
    """Instances needed for ``demand`` at ``capacity`` per instance, rounded up."""
    if demand <= 0:
        return 0
    return math.ceil(demand / capacity - _EPS)


def active_overrides(
    overrides: Sequence[Override], fleet: str, now: datetime
) -> dict[str, Override]:
    """The override in force per kind (the newest active one wins)."""
    chosen: dict[str, Override] = {}
    for o in sorted(overrides, key=lambda o: o.created_at):
        if o.fleet == fleet and o.active(now):
            chosen[o.kind] = o
    return chosen


def _bad(value: float) -> bool:
    return not math.isfinite(value) or value < 0


def _point_step(fc: SeriesForecast, default: timedelta) -> timedelta:
    """The forecast's grid step (smallest spacing of its points; ``default`` for one point)."""
    times = sorted(p.ts for p in fc.points)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return min(gaps) if gaps else default


def _window_upper(
    fc: SeriesForecast, start: datetime, end: datetime, step: timedelta
) -> tuple[float | None, str | None]:
    """Largest upper quantile (the sizing value) over the points whose period overlaps
    [start, end).

    A point at ``ts`` stands for [ts, ts + grid step) (an hourly forecast sizes its whole
    hour), so with a 45-minute lead at 05:20 the window [06:05, 07:05) is sized by the 06:00
    and 07:00 points. ``step``: the period of a lone point (no grid to infer it from)."""
    grid = _point_step(fc, step)
    pts = [p for p in fc.points if p.ts < end and p.ts + grid > start]
    if not pts:
        return None, f"forecast of {fc.metric} does not cover {start:%Y-%m-%d %H:%M}"
    for p in pts:
        if _bad(p.yhat) or _bad(p.upper):
            return None, f"forecast of {fc.metric} at {p.ts:%Y-%m-%d %H:%M} is NaN or negative"
    return max(p.upper for p in pts), None


def _predictive(
    inp: PolicyInput, multiplier: float
) -> tuple[dict[str, int], float | None, str | None, dict[str, Any]]:
    """Instances per resource from the forecast; (needs, required demand, fail reason, detail)."""
    f = inp.fleet
    if inp.forecast_error:
        return {}, None, inp.forecast_error, {}
    start = inp.now + timedelta(minutes=f.lead_time_minutes)
    end = start + timedelta(minutes=f.window_minutes)
    step = timedelta(minutes=max(f.window_minutes, 60))
    needs: dict[str, int] = {}
    detail: dict[str, Any] = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    required_players: float | None = None
    caps = f.capacities()
    for resource, cap in caps.items():
        metrics = (f.demand_metric,) if resource == "players" else RESOURCE_METRICS[resource]
        uppers = []
        for metric in metrics:
            fc = inp.forecasts.get(metric)
            if fc is None:
                if resource == "players":
                    return {}, None, f"no forecast for {metric}", detail
                continue  # an extra resource without a forecast is not sized
            if fc.problem:
                return {}, None, f"forecast of {metric} not trusted: {fc.problem}", detail
            if fc.created_at is not None and inp.now - fc.created_at > inp.max_forecast_age:
                age_h = (inp.now - fc.created_at).total_seconds() / 3600
                limit_h = inp.max_forecast_age.total_seconds() / 3600
                return (
                    {},
                    None,
                    (f"forecast of {metric} is stale ({age_h:.1f} h old, limit {limit_h:.1f} h)"),
                    detail,
                )
            upper, problem = _window_upper(fc, start, end, step)
            if problem:
                return {}, None, problem, detail
            assert upper is not None  # noqa: S101 - narrowing only: no problem means a value
            uppers.append(upper)
        if not uppers:
            continue
        required = max(uppers) * multiplier * (1 + f.safety_margin)
        needs[resource] = instances_for(required, cap)
        detail[f"required_{resource}"] = round(required, 3)
        if resource == "players":
            required_players = required
    return needs, required_players, None, detail


def _reactive(inp: PolicyInput, margin: float | None = None) -> tuple[int | None, dict[str, int]]:
    """Instances observed demand needs now (with the margin), or None when not observed."""
    f = inp.fleet
    margin = f.safety_margin if margin is None else margin
    if _bad(margin):  # an invalid config (fail-static): the bare observed need
        margin = 0.0
    observed = inp.observed.get(f.demand_metric)
    if observed is None or _bad(observed):
        return None, {}
    needs: dict[str, int] = {}
    for resource, cap in f.capacities().items():
        if not (math.isfinite(cap) and cap > 0):  # invalid config (fail-static): not sized
            continue
        metrics = (f.demand_metric,) if resource == "players" else RESOURCE_METRICS[resource]
        values = [inp.observed[m] for m in metrics if m in inp.observed]
        values = [v for v in values if not _bad(v)]
        if values:
            needs[resource] = instances_for(max(values) * (1 + margin), cap)
    return (max(needs.values()) if needs else None), needs


def _reactive_floor(inp: PolicyInput, current: int | None) -> tuple[int | None, dict[str, int]]:
    """The reactive floor (None when demand is not observed), target tracking with hysteresis:
    below what observed demand needs with the margin, the floor is that (scale up to it, as
    target tracking does); at or above it, the floor is what observed demand needs now without
    the margin (scale-in may go down to it, never below). The margin is thus not held on the
    way down, where the forecast (already sized with the margin) says demand falls."""
    up, up_needs = _reactive(inp)
    if up is None:
        return None, {}
    if current is None or current < up:
        return up, up_needs
    return _reactive(inp, margin=0.0)


def _scale_in(
    inp: PolicyInput, desired: int, base: int, reactive: int | None, why: str
) -> tuple[int, str]:
    """Scale-in guard (``desired < base``): only with observed demand; only after the
    stabilisation window, to the highest recommendation in it (so the need must have stayed
    below the current capacity for the whole window); then only when the cut is larger than
    the tolerance band. The band never applies to scale-up."""
    f = inp.fleet
    now = inp.now
    if reactive is None:
        return base, why + "; no scale-in without observed demand"
    stab = timedelta(minutes=f.scale_in_stabilisation_minutes)
    if stab > timedelta(0):
        if not any(t <= now - stab for t, _ in inp.history):
            mins = f.scale_in_stabilisation_minutes
            return base, why + f"; no scale-in before a {mins} min history"
        window = [r for t, r in inp.history if now - stab <= t <= now]
        stabilised = max([desired, *window])
        if stabilised > desired:
            why += f"; stabilisation keeps {min(stabilised, base)}"
        desired = min(stabilised, base)
    if desired < base and base - desired <= f.tolerance * base:
        why += f"; within the {f.tolerance:.0%} tolerance band"
        desired = base
    return desired, why


def _fmt_needs(needs: Mapping[str, int]) -> str:
    if not needs:
        return "0 instances"
    top = max(needs, key=lambda k: needs[k])
    return f"{instances(needs[top])} ({top})"


def _forecast_clause(
    inp: PolicyInput, needs: Mapping[str, int], detail: Mapping[str, Any], multiplier: float
) -> str:
    """The forecast's need in units an operator can follow from demand to instances:
    "17 instances for 1,650 players (x1.1 margin, 100 players per instance) from 2024-05-01
    11:00 UTC (lead 60 min); forecast: nowcast-weekly" (the resource that needs the most)."""
    f = inp.fleet
    if not needs:
        return "the forecast needs 0 instances"
    top = max(needs, key=lambda k: needs[k])
    unit = resource_unit(top, f.demand_metric)
    knobs = [f"x{1 + f.safety_margin:.3g} margin"]
    if multiplier != 1.0:
        knobs.append(f"x{multiplier:g} override")
    knobs.append(f"{figure(f.capacities()[top], unit)} per instance")
    start = str(detail.get("window_start", "?"))
    when = f"{start[:10]} {start[11:16]} UTC" if len(start) >= 16 else start
    text = (
        f"{instances(needs[top])} for {figure(detail.get(f'required_{top}', 0.0), unit)}"
        f" ({', '.join(knobs)}) from {when} (lead {f.lead_time_minutes} min)"
    )
    metric = f.demand_metric if top == "players" else RESOURCE_METRICS[top][0]
    fc = inp.forecasts.get(metric)
    if fc is not None and fc.model:
        text += f"; forecast: {fc.model}"
    return text


def decide(inp: PolicyInput) -> Decision:
    """The capacity decision for one fleet at ``inp.now``. Pure: same input, same output."""
    f = inp.fleet
    now = inp.now
    busy = max(0, inp.busy)
    ppi = processes_per_instance(f)
    ovr = active_overrides(inp.overrides, f.fleet, now)
    notes: list[str] = []
    for kind, o in ovr.items():
        notes.append(
            f"override {kind}={o.value:g} until {o.expires_at:%Y-%m-%d %H:%M} ({o.reason})"
        )

    eff_min = int(ovr["min"].value) if "min" in ovr else f.min_size
    eff_max = int(ovr["max"].value) if "max" in ovr else f.max_size
    eff_max = max(eff_max, 0)
    eff_min = min(max(eff_min, 0), eff_max)
    multiplier = ovr["multiplier"].value if "multiplier" in ovr else 1.0
    if not (math.isfinite(multiplier) and multiplier >= 0):
        multiplier = 1.0

    errors = validate_fleet(f)
    fail: str | None = ("invalid fleet config: " + "; ".join(errors)) if errors else None
    needs: dict[str, int] = {}
    required: float | None = None
    detail: dict[str, Any] = {}
    if fail is None:
        needs, required, fail, detail = _predictive(inp, multiplier)
    cur = inp.current
    reactive, reactive_needs = _reactive_floor(inp, cur)
    predictive = max(needs.values()) if needs else None
    cur_known = cur is not None
    base = cur if cur is not None else eff_min
    recommended = (
        max(predictive or 0, reactive or 0, busy)
        if fail is None
        else max(base, reactive or 0, busy)
    )

    # Max breach behaviour: raise the max by a buffer of the forecast need (as AWS does).
    new_max: int | None = None
    forced = "max" in ovr or "capacity" in ovr  # a human's bound wins over the breach rule
    if f.max_breach == "raise" and not forced and fail is None and recommended > eff_max:
        eff_max = math.ceil(recommended * (1 + f.max_breach_buffer_pct / 100) - _EPS)
        new_max = eff_max
        notes.append(f"max raised to {eff_max} (need {recommended} > max {f.max_size})")
    elif (
        f.max_breach == "raise"
        and inp.current_max is not None
        and inp.current_max > f.max_size
        and "max" not in ovr
        and recommended <= f.max_size
        and (cur is None or cur <= f.max_size)
    ):
        new_max = f.max_size  # the breach is over: restore the configured max
        notes.append(f"max restored to {f.max_size}")

    status: Status
    if "capacity" in ovr:
        want = int(round(ovr["capacity"].value))
        target = min(max(want, 0), eff_max)
        status = "override"
        why = f"capacity override {want}"
        if target != want:
            why += f" capped at max {eff_max}"
    elif fail is not None:
        target = max(base, reactive or 0)
        status = "fail_static"
        why = f"fail-static: {fail}; keep {base}"
        if reactive is not None and reactive > base:
            why += f", raised to the reactive floor {reactive}"
        if errors:  # the bounds themselves are suspect: keep, do not clamp
            pass
        elif target > eff_max:
            why += f"; capped at max {eff_max}"
        elif target < eff_min:
            why += f"; raised to min {eff_min}"
        if not errors:
            target = min(max(target, eff_min), eff_max)
    else:
        desired = recommended
        why = _forecast_clause(inp, needs, detail, multiplier)
        if reactive is not None:
            why += f"; observed demand needs {_fmt_needs(reactive_needs)}"
        else:
            why += "; no observed demand"
        if busy:
            why += f"; {busy} busy instances kept"
        status = "ok"
        if cur_known and desired < base:
            desired, why = _scale_in(inp, desired, base, reactive, why)
        if cur_known:
            if f.max_step_up is not None and desired > base + f.max_step_up:
                desired = base + f.max_step_up
                why += f"; step up limited to +{f.max_step_up}"
            if f.max_step_down is not None and desired < base - f.max_step_down:
                desired = base - f.max_step_down
                why += f"; step down limited to -{f.max_step_down}"
        if desired > eff_max:
            why += f"; capped at max {eff_max}"
        if desired < eff_min:
            why += f"; raised to min {eff_min}"
        target = min(max(desired, eff_min), eff_max)

    if target < busy:
        why += f"; raised to the {busy} busy instances"
        target = busy
    if status in ("ok", "hold"):
        status = "hold" if cur is not None and target == cur else "ok"
    unserved = max(0, recommended - target) if status != "override" else 0
    if unserved and status in ("ok", "hold") and target >= eff_max:
        status = "capped"
        why += f"; {unserved} instances not served (max {eff_max})"
    change = "" if cur is None else f" ({target - cur:+d})"
    reason = f"{cur if cur is not None else '?'} -> {target}{change}: {why}"
    if notes:
        reason += "; " + "; ".join(notes)

    inputs: dict[str, Any] = {
        "now": now.isoformat(),
        "current": cur,
        "current_max": inp.current_max,
        "busy": busy,
        "observed": dict(inp.observed),
        "forecast_runs": {m: fc.run_id for m, fc in inp.forecasts.items()},
        "forecast_models": {m: fc.model for m, fc in inp.forecasts.items()},
        "needs": needs,
        "reactive_needs": reactive_needs,
        "multiplier": multiplier,
        "overrides": [o.override_id for o in ovr.values()],
        "history": len(inp.history),
        "fail": fail,
        **detail,
    }
    return Decision(
        fleet=f.fleet,
        game_type=f.game_type,
        region=f.region,
        asg_name=f.asg_name,
        mode=f.mode,
        decided_at=now,
        current=cur,
        target=int(target),
        recommended=int(recommended),
        processes_per_instance=ppi,
        status=status,
        reason=reason,
        demand_forecast=required,
        reactive_floor=reactive,
        busy=busy,
        min_size=eff_min,
        max_size=eff_max,
        new_max_size=new_max,
        unserved_instances=int(unserved),
        priority=f.priority,
        cost_per_hour=f.cost_per_hour,
        inputs=inputs,
    )


def apply_budget(decisions: Sequence[Decision], budget: Budget) -> list[Decision]:
    """Share a budget between fleets: each keeps min(target, current) (and its busy instances);
    growth is granted in priority order (lower number first, then fleet name) until the budget
    runs out. A budget never shrinks a fleet. What could not be served is in each reason."""
    if budget.max_instances is None and budget.max_cost_per_hour is None:
        return list(decisions)
    floors = {
        d.fleet: max(min(d.target, d.current if d.current is not None else d.busy), d.busy)
        for d in decisions
    }
    left_n = (
        budget.max_instances - sum(floors.values()) if budget.max_instances is not None else None
    )
    left_c = (
        budget.max_cost_per_hour - sum(floors[d.fleet] * d.cost_per_hour for d in decisions)
        if budget.max_cost_per_hour is not None
        else None
    )
    out: dict[str, Decision] = {}
    for d in sorted(decisions, key=lambda d: (d.priority, d.fleet)):
        want = d.target - floors[d.fleet]
        grant = want
        if left_n is not None:
            grant = min(grant, max(left_n, 0))
        if left_c is not None and d.cost_per_hour > 0:
            grant = min(grant, max(math.floor(left_c / d.cost_per_hour + _EPS), 0))
        grant = max(grant, 0)
        if left_n is not None:
            left_n -= grant
        if left_c is not None:
            left_c -= grant * d.cost_per_hour
        short = want - grant
        if short > 0:
            target = floors[d.fleet] + grant
            out[d.fleet] = replace(
                d,
                target=target,
                unserved_instances=d.unserved_instances + short,
                status="capped",
                reason=(
                    f"{d.reason}; budget: {short} instances not served "
                    f"(priority {d.priority}), target {d.target} -> {target}"
                ),
            )
        else:
            out[d.fleet] = d
    return [out[d.fleet] for d in decisions]
