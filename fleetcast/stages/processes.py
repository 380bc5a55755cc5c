"""The processes step of every plan: processes per instance learned from telemetry, recomputed
each cycle, and the instance capacity that follows from it.

Per game type and server configuration (the fleets' ``server_config``), the recent window of
``metrics`` (and ``sessions`` where the sessions metric is missing) gives what one process
needs (:mod:`models.processes`); with each fleet's instance capacities (``capacity_cpu``,
``capacity_memory_gb``, ``capacity_net_mbps``) that is how many processes fit on one instance
with headroom, and the players one instance hosts. The fleet is then planned with that capacity,
the count is written to the group tag ``fleetcast:processes-per-instance`` (the game-server
agent's contract, docs/operations.md) and recorded with its inputs in ``allocations.inputs``.

Precedence: a ``processes`` override in force; else telemetry (at least ``MIN_HOURS`` hours
with active sessions and a resource the fleet has a capacity for); else the fleet's own
settings (``process_cpu``... or ``processes_per_instance``, and ``capacity_players``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb

from fleetcast.resources import db
from models.policy import FleetSpec, Override, active_overrides, processes_per_instance
from models.processes import MIN_HOURS, ProcessFit, fit_processes, process_needs


def _capacities(spec: FleetSpec) -> dict[str, float | None]:
    return {
        "cpu": spec.capacity_cpu,
        "memory": spec.capacity_memory_gb,
        "net": spec.capacity_net_mbps,
    }


def _static(spec: FleetSpec, note: str) -> ProcessFit:
    return ProcessFit(
        processes_per_instance=processes_per_instance(spec),
        players_per_instance=spec.capacity_players,
        source="static",
        note=note,
    )


def plan_processes(
    con: duckdb.DuckDBPyConnection,
    fleets: Sequence[FleetSpec],
    *,
    now: datetime,
    overrides: Sequence[Override] = (),
    window_hours: int = 24,
    quantile: float = 0.95,
    headroom: float = 0.2,
) -> dict[str, ProcessFit]:
    """Each fleet's processes per instance and players per instance, by fleet."""
    since = now - timedelta(hours=window_hours)
    groups: dict[tuple[str, str], list[FleetSpec]] = {}
    for f in fleets:
        groups.setdefault((f.game_type, f.server_config), []).append(f)
    out: dict[str, ProcessFit] = {}
    for (game_type, server_config), members in groups.items():
        regions = sorted({f.region for f in members})
        params = {"game_type": game_type, "regions": regions, "since": since, "now": now}
        metrics = con.sql(db.sql("processes_metrics"), params=params).pl()
        sessions = con.sql(
            db.sql("processes_sessions"), params={**params, "server_config": server_config}
        ).pl()
        needs = process_needs(metrics, sessions, quantile=quantile)
        for f in members:
            fit = None
            if needs is not None:
                fit = fit_processes(_capacities(f), needs, headroom)
            if fit is None:
                why = (
                    f"fewer than {MIN_HOURS} busy hours with active sessions in the last "
                    f"{window_hours} h"
                    if needs is None
                    else "no instance capacity (cpu, memory, net) for a measured need"
                )
                fit = _static(f, f"fleet settings: {why}")
            ovr = active_overrides(overrides, f.fleet, now).get("processes")
            if ovr is not None:
                fit = replace(
                    fit,
                    processes_per_instance=max(1, int(ovr.value)),
                    source="override",
                    note=(
                        f"override processes={ovr.value:g} until "
                        f"{ovr.expires_at:%Y-%m-%d %H:%M} ({ovr.reason}); learned "
                        f"{fit.processes_per_instance} ({fit.source})"
                    ),
                )
            out[f.fleet] = _with_players(f, fit)
    return out


def _with_players(spec: FleetSpec, fit: ProcessFit) -> ProcessFit:
    """Players one instance hosts: processes x players per process (measured, else the fleet's
    ``capacity_players`` over its configured processes per instance)."""
    if fit.source == "static":
        return fit
    measured = fit.needs.players_per_process if fit.needs is not None else None
    per_process = measured or spec.capacity_players / processes_per_instance(spec)
    return replace(fit, players_per_instance=fit.processes_per_instance * per_process)


def sized_spec(spec: FleetSpec, fit: ProcessFit) -> FleetSpec:
    """The fleet as the policy plans it: its processes per instance, and one instance's capacity
    in its demand metric (players, or sessions = processes) from the processes it runs."""
    if fit.source == "static":
        return spec
    sized = replace(
        spec,
        processes_per_instance=fit.processes_per_instance,
        process_cpu=None,
        process_memory_gb=None,
        process_net_mbps=None,
    )
    if spec.demand_metric == "players" and fit.players_per_instance:
        sized = replace(sized, capacity_players=fit.players_per_instance)
    elif spec.demand_metric == "sessions":
        sized = replace(sized, capacity_players=float(fit.processes_per_instance))
    return sized
