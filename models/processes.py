"""Processes per instance from telemetry: what one game-server process needs, how many fit on
one instance with headroom, and how many players one instance then hosts.

One process hosts one session (a match). Over the recent window (``ts, region, metric, value``
rows of the fleet's game type, from the regions whose fleets run the same server
configuration), each hour gives a per-process need for each resource:

- CPU cores / active sessions, memory GB / active sessions, network Mbps (the busier of
  ``net_in_mbps`` and ``net_out_mbps``) / active sessions;
- players / active sessions: the players one process hosts.

Active sessions are the ``sessions`` metric of that hour; where it is missing, the sessions
table's sessions of that server configuration running at that hour (``started_at <= ts`` and
not stopped by then). Only the busier half of each region's hours counts (at least its median
of active sessions: where packing decides capacity, and where a server's fixed load spread over
a few night sessions does not pass for a per-process need). Needs are taken at a high quantile
``q`` of those hours (a heavier match after a game update shows there within hours) and
players per process at the low quantile ``1 - q`` (fewer players per process means more
processes), so

    processes per instance = floor(min over resources of capacity * (1 - headroom) / need)
    players per instance   = processes per instance * players per process

and the instance count follows from the players the processes can host. Pure: frames in,
values out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import polars as pl

RESOURCES: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu_cores",),
    "memory": ("memory_gb",),
    "net": ("net_in_mbps", "net_out_mbps"),
}
MIN_HOURS = 6  # hours with active sessions needed before telemetry replaces the fleet settings
_EPS = 1e-9


@dataclass(frozen=True)
class ProcessNeeds:
    """What one process needs (per resource, at the quantile) and hosts, from ``samples``
    region-hours (the busier half of each region's hours in the window)."""

    needs: dict[str, float]  # resource -> need per process at the high quantile
    players_per_process: float | None  # at the low quantile
    samples: int
    quantile: float
    window_start: datetime | None = None
    window_end: datetime | None = None
    sessions_source: str = "metric"  # metric | sessions_table | mixed
    # per resource: how far the hours of the window spread around their median need (the
    # larger of max / median and median / min): a unit switch inside the window shows here
    spread: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessFit:
    """Processes one instance runs and the players it then hosts, with the inputs."""

    processes_per_instance: int
    players_per_instance: float | None
    source: str  # telemetry | bounded | held | override | static
    binding: str | None = None  # the resource that limits the count
    limits: dict[str, int] = field(default_factory=dict)  # processes per resource
    headroom: float = 0.0
    needs: ProcessNeeds | None = None
    note: str = ""
    # what telemetry taught before the bounds (None: nothing learned), and why the accepted
    # value differs from it ("" = it does not); approval: a person is asked for the learned one
    learned: dict[str, Any] | None = None
    bounded: str = ""
    approval: bool = False
    accepted: dict[str, Any] | None = None  # :func:`accepted_record`, kept under an override
    reference: int | None = None  # the band's centre (configured or approved processes)

    def as_record(self) -> dict[str, Any]:
        """JSON-able, for ``allocations.inputs``."""
        out = asdict(self)
        if self.needs is not None:
            n = out["needs"]
            for k in ("window_start", "window_end"):
                n[k] = None if n[k] is None else n[k].isoformat()
            n["needs"] = {k: _sig(v) for k, v in n["needs"].items()}
            if n["players_per_process"] is not None:
                n["players_per_process"] = _sig(n["players_per_process"])
        if out["players_per_instance"] is not None:
            out["players_per_instance"] = round(out["players_per_instance"], 4)
        return out


def _sig(v: float) -> float:
    return float(f"{v:.6g}")  # six significant digits (a need can be tiny, never zeroed)


def accepted_record(fit: ProcessFit) -> dict[str, Any] | None:
    """What the next cycle reads back as the last accepted value (None: nothing learned)."""
    if fit.source not in ("telemetry", "bounded", "held") or fit.needs is None:
        return None
    return {
        "processes_per_instance": fit.processes_per_instance,
        "players_per_instance": fit.players_per_instance,
        "needs": {k: _sig(v) for k, v in fit.needs.needs.items()},
        "players_per_process": fit.needs.players_per_process,
    }


def concurrent_sessions(sessions: pl.DataFrame, hours: pl.DataFrame) -> pl.DataFrame:
    """Sessions running at each hour: ``sessions(region, started_at, stopped_at)`` (stopped_at
    null = still running) and ``hours(ts, region)`` -> ``ts, region, sessions``."""
    if sessions.height == 0 or hours.height == 0:
        return hours.select("ts", "region").with_columns(pl.lit(0.0).alias("sessions"))
    joined = hours.select("ts", "region").join(
        sessions.select("region", "started_at", "stopped_at"), on="region", how="left"
    )
    running = (pl.col("started_at") <= pl.col("ts")) & (
        pl.col("stopped_at").is_null() | (pl.col("stopped_at") > pl.col("ts"))
    )
    return joined.group_by("ts", "region").agg(
        running.fill_null(False).sum().cast(pl.Float64).alias("sessions")
    )


def process_needs(
    metrics: pl.DataFrame,
    sessions: pl.DataFrame | None = None,
    *,
    quantile: float = 0.95,
    min_hours: int = MIN_HOURS,
) -> ProcessNeeds | None:
    """Per-process needs from ``metrics(ts, region, metric, value)`` (the window, already cut)
    and optionally ``sessions(region, started_at, stopped_at)`` of the server configuration.
    Only the busier half of each region's hours counts (at least the region's median of active
    sessions). None when fewer than ``min_hours`` such region-hours have a resource measured."""
    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile must be in [0.5, 1) (got {quantile})")
    if metrics.height == 0:
        return None
    measured = [c for cols in RESOURCES.values() for c in cols]
    if not metrics["metric"].is_in(measured).any():  # no resource measured: nothing to learn
        return None
    wide = metrics.pivot(
        on="metric", index=["ts", "region"], values="value", aggregate_function="first"
    )
    if "sessions" not in wide.columns:
        wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias("sessions"))
    source = "metric"
    if sessions is not None and wide["sessions"].null_count():
        counted = concurrent_sessions(sessions, wide.select("ts", "region"))
        wide = wide.join(counted.rename({"sessions": "counted"}), on=["ts", "region"], how="left")
        filled = wide["sessions"].null_count()
        wide = wide.with_columns(pl.coalesce("sessions", "counted").alias("sessions"))
        source = "sessions_table" if filled == wide.height else "mixed"
    wide = wide.filter(pl.col("sessions").is_not_null() & (pl.col("sessions") >= 1))
    # the busier half of each region's hours: where packing decides capacity, and where a
    # server's fixed load (spread over few sessions at night) does not pass for a per-process need
    wide = wide.filter(pl.col("sessions") >= pl.col("sessions").median().over("region"))
    per: dict[str, pl.Expr] = {}
    for resource, cols in RESOURCES.items():
        present = [c for c in cols if c in wide.columns]
        if present:
            per[resource] = pl.max_horizontal(*present) / pl.col("sessions")
    if "players" in wide.columns:
        per["players"] = pl.col("players") / pl.col("sessions")
    resources = [k for k in per if k != "players"]
    if not resources:
        return None
    ratios = wide.select("ts", *(e.alias(k) for k, e in per.items()))
    usable = ratios.filter(pl.any_horizontal(pl.col(r).is_not_null() for r in resources))
    if usable.height < min_hours:
        return None
    needs: dict[str, float] = {}
    spread: dict[str, float] = {}
    for r in resources:
        col = usable[r].drop_nulls()
        value = col.quantile(quantile, "linear")
        if value is not None and math.isfinite(value) and value > 0:
            needs[r] = float(value)  # type: ignore[arg-type]
            positive = col.filter(col > 0)
            med = positive.median() if positive.len() else None
            if med is not None and med > 0:  # type: ignore[operator]
                hi = float(positive.max()) / med  # type: ignore[arg-type, operator]
                lo = med / float(positive.min())  # type: ignore[arg-type, operator]
                spread[r] = float(max(hi, lo))
    if not needs:
        return None
    players = None
    if "players" in per:
        p = usable["players"].drop_nulls()
        low = p.quantile(1 - quantile, "linear") if p.len() else None
        if low is not None and math.isfinite(low) and low > 0:  # type: ignore[arg-type]
            players = float(low)  # type: ignore[arg-type]
    return ProcessNeeds(
        needs=needs,
        players_per_process=players,
        samples=usable.height,
        quantile=quantile,
        window_start=usable["ts"].min(),  # type: ignore[arg-type]
        window_end=usable["ts"].max(),  # type: ignore[arg-type]
        sessions_source=source,
        spread=spread,
    )


def fit_processes(
    capacities: Mapping[str, float | None], needs: ProcessNeeds, headroom: float = 0.2
) -> ProcessFit | None:
    """Processes per instance: the tightest resource's ``capacity * (1 - headroom) / need``,
    rounded down, at least 1. ``capacities``: one instance's cpu, memory, net (None = not
    configured). None when no resource has both a capacity and a measured need."""
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be in [0, 1) (got {headroom})")
    limits = {}
    for resource, need in needs.needs.items():
        cap = capacities.get(resource)
        if cap is not None and cap > 0 and need > 0:
            limits[resource] = math.floor(cap * (1 - headroom) / need + _EPS)
    if not limits:
        return None
    binding = min(limits, key=lambda k: (limits[k], k))
    ppi = max(1, limits[binding])
    note = ""
    if limits[binding] < 1:
        note = f"one process needs more {binding} than an instance offers with headroom: 1"
    players = ppi * needs.players_per_process if needs.players_per_process else None
    return ProcessFit(
        processes_per_instance=ppi,
        players_per_instance=players,
        source="telemetry",
        binding=binding,
        limits=limits,
        headroom=headroom,
        needs=needs,
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Bounds on what telemetry may teach (docs/operations.md "Processes per instance")
#
# One broken exporter must not be able to empty a fleet, so a learned value is accepted only
# within these bounds, in this order:
# 1. telemetry that cannot be right is held: a per-process need whose hours in the window
#    spread by JUMP or more around their median, or a need (or players per process) that
#    moved by JUMP or more against the last accepted one, or a process needing less than
#    MIN_INSTANCE_SHARE of an instance in its tightest resource; the last accepted value stays;
# 2. the band: BAND around the reference (the fleet's configured value, or the one a person
#    approved); beyond it the fleet sizes on the nearer bound and a person is asked;
# 3. the rate: processes (and players) per instance rise at most DAILY_RISE above the lowest
#    value accepted in the last 24 hours (more per instance = fewer instances, the risky way);
#    a fall (more instances) is taken at once, within the band.

BAND = (0.5, 2.0)  # accepted / reference
DAILY_RISE = 1.5  # accepted / lowest accepted in the last 24 h
JUMP = 10.0  # a need this many times higher or lower than the accepted one is not believed
MIN_INSTANCE_SHARE = 0.001  # a process needing less of an instance than this is not believed
_METRICS = {"cpu": "cpu_cores", "memory": "memory_gb", "net": "net_in_mbps/net_out_mbps"}


@dataclass(frozen=True)
class Accepted:
    """What the last decisions accepted for a fleet (from their recorded ``processes``)."""

    processes_per_instance: int
    players_per_instance: float | None
    needs: dict[str, float]  # resource -> the need per process behind the accepted value
    players_per_process: float | None
    at: datetime
    low_processes: int  # lowest accepted processes per instance over the last 24 h
    low_players: float | None  # lowest accepted players per instance over the last 24 h


@dataclass(frozen=True)
class Reference:
    """The centre of the band: the fleet's configured values, or a person's approved ones."""

    processes_per_instance: int
    players_per_instance: float
    source: str = "configured"  # configured | approved <change id>


def implausible(
    needs: ProcessNeeds, capacities: Mapping[str, float | None], last: Accepted | None
) -> str | None:
    """Why this telemetry cannot be right (None: plausible): a need per process that jumped by
    ``JUMP`` or more against the last accepted one, or a process needing less than
    ``MIN_INSTANCE_SHARE`` of an instance in its tightest resource. The reason names the metric
    and the jump."""
    for resource, ratio in sorted(needs.spread.items()):
        if ratio >= JUMP:
            return (
                f"{_METRICS.get(resource, resource)} per session varies {ratio:,.0f}x within "
                f"the window (an exporter that changed units?): telemetry held"
            )
    pairs: list[tuple[str, float, float | None]] = [
        (r, v, (last.needs.get(r) if last else None)) for r, v in sorted(needs.needs.items())
    ]
    if needs.players_per_process is not None and last is not None:
        pairs.append(("players", needs.players_per_process, last.players_per_process))
    for resource, value, before in pairs:
        if before is None or before <= 0 or value <= 0:
            continue
        ratio = value / before
        if ratio >= JUMP or ratio <= 1 / JUMP:
            name = _METRICS.get(resource, resource)
            way = f"{ratio:,.0f}x higher" if ratio > 1 else f"{1 / ratio:,.0f}x lower"
            return (
                f"{name} per session {value:.4g} against {before:.4g} accepted ({way}): "
                "telemetry held"
            )
    shares = {
        r: v / cap
        for r, v in needs.needs.items()
        if (cap := capacities.get(r)) is not None and cap > 0
    }
    if shares and max(shares.values()) < MIN_INSTANCE_SHARE:
        tight = max(shares, key=lambda r: (shares[r], r))
        return (
            f"{_METRICS.get(tight, tight)} per session {needs.needs[tight]:.4g} is less than "
            f"{MIN_INSTANCE_SHARE:.1%} of an instance's {capacities[tight]:g} (the tightest "
            "resource): telemetry held"
        )
    return None


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def bound_fit(
    fit: ProcessFit,
    reference: Reference,
    last: Accepted | None,
    capacities: Mapping[str, float | None],
) -> ProcessFit:
    """The learned ``fit`` (source telemetry) as accepted: held when implausible (the last
    accepted value, else the reference), within ``BAND`` of the reference, risen at most
    ``DAILY_RISE`` above the last 24 hours' lowest. The learned values and the reason they
    differ are kept (``learned``, ``bounded``); ``approval`` names a learned value beyond the
    band that needs a person."""
    fit = replace(fit, reference=reference.processes_per_instance)
    learned = {
        "processes_per_instance": fit.processes_per_instance,
        "players_per_instance": fit.players_per_instance,
    }
    held = implausible(fit.needs, capacities, last) if fit.needs is not None else None
    if held is not None:
        if last is not None and fit.needs is not None:
            return replace(
                fit,
                processes_per_instance=last.processes_per_instance,
                players_per_instance=last.players_per_instance,
                source="held",
                needs=replace(
                    fit.needs,
                    needs=dict(last.needs),
                    players_per_process=last.players_per_process,
                ),
                learned=learned,
                bounded=f"{held}; keeps {last.processes_per_instance} accepted "
                f"{last.at:%Y-%m-%d %H:%M}",
            )
        return replace(
            fit,
            processes_per_instance=reference.processes_per_instance,
            players_per_instance=reference.players_per_instance,
            source="held",
            needs=None,
            learned=learned,
            bounded=f"{held}; sizes on the {reference.source} {reference.processes_per_instance}",
        )
    why: list[str] = []
    approval = False
    ref_p = reference.processes_per_instance
    lo, hi = max(1, math.ceil(BAND[0] * ref_p)), max(1, math.floor(BAND[1] * ref_p))
    ppi = fit.processes_per_instance
    if not lo <= ppi <= hi:
        approval = True
        ppi = int(_clamp(ppi, lo, hi))
        why.append(
            f"learned {fit.processes_per_instance} processes is outside {lo}-{hi} "
            f"({BAND[0]:g}x-{BAND[1]:g}x the {reference.source} {ref_p}): {ppi} until approved"
        )
    if last is not None:
        top = max(math.floor(DAILY_RISE * last.low_processes), last.low_processes + 1)
        if ppi > top:
            why.append(
                f"processes rise at most {DAILY_RISE:g}x a day: {top} "
                f"(learned {fit.processes_per_instance}, lowest in 24 h {last.low_processes})"
            )
            ppi = top
    players = fit.players_per_instance
    if players is not None and fit.processes_per_instance:
        players = players * ppi / fit.processes_per_instance  # players per process kept
        ref_pl = reference.players_per_instance * ppi / ref_p
        plo, phi = BAND[0] * ref_pl, BAND[1] * ref_pl
        if not plo <= players <= phi:
            approval = True
            # the band on players per instance at ppi processes is the band on players per
            # process: said per process, the unit both values are configured and learned in
            per, ref_per = players / ppi, ref_pl / ppi
            why.append(
                f"learned {per:.4g} players per process is outside {BAND[0] * ref_per:.4g}-"
                f"{BAND[1] * ref_per:.4g} ({BAND[0]:g}x-{BAND[1]:g}x the {reference.source} "
                f"{ref_per:.4g})"
            )
            players = _clamp(players, plo, phi)
        if last is not None and last.low_players is not None:
            ptop = DAILY_RISE * last.low_players
            if players > ptop:
                why.append(f"players per instance rise at most {DAILY_RISE:g}x a day: {ptop:.4g}")
                players = ptop
    if not why:
        return replace(fit, learned=learned)
    return replace(
        fit,
        processes_per_instance=ppi,
        players_per_instance=players,
        source="bounded",
        learned=learned,
        bounded="; ".join(why),
        approval=approval,
    )


def describe(used: object, source: str | None, learned: object = None) -> str:
    """Processes per instance as shown to a person: used, where from, and the learned value
    where it differs ("3 (held, learned 3744)")."""
    head = f"{used} ({source or 'static'}"
    if learned is not None and str(learned) != str(used):
        head += f", learned {learned}"
    return head + ")"
