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
with active sessions and a resource the fleet has a capacity for) within its bounds; else the
fleet's own settings (``process_cpu``... or ``processes_per_instance``, and ``capacity_players``).

Bounds (:func:`models.processes.bound_fit`): telemetry that cannot be right is held (the last
accepted value, read back from the newest decisions' ``inputs.processes.accepted``); a learned
value stays within a band around the fleet's configured value (or the one a person approved,
``setting_changes``) and rises at most a bounded factor a day. A learned value beyond the band
waits for a person (:func:`record_setting_changes`, ``fleetcast approve --fleet F``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from fleetcast.resources import db
from models.policy import Decision, FleetSpec, Override, active_overrides, processes_per_instance
from models.processes import (
    MIN_HOURS,
    Accepted,
    ProcessFit,
    Reference,
    accepted_record,
    bound_fit,
    fit_processes,
    process_needs,
)

SETTING = "processes_per_instance"
ACCEPTED_MEMORY = timedelta(days=14)  # how far back the last accepted value is looked for


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
    accepted = load_accepted(con, [f.fleet for f in fleets], now)
    approved = load_approved(con)
    metrics_of, sessions_of = _telemetry(con, fleets, since, now)
    for (game_type, server_config), members in groups.items():
        regions = {f.region for f in members}
        metrics = metrics_of(game_type, regions)
        sessions = sessions_of(game_type, server_config, regions)
        needs = process_needs(metrics, sessions, quantile=quantile)
        for f in members:
            fit = None
            if needs is not None:
                fit = fit_processes(_capacities(f), needs, headroom)
            if fit is not None:
                fit = _with_players(f, fit)
                fit = bound_fit(fit, reference(f, approved), accepted.get(f.fleet), _capacities(f))
                fit = replace(fit, accepted=accepted_record(fit))
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
            else:
                out[f.fleet] = fit
    return out


Schema = dict[str, pl.DataType | type[pl.DataType]]
_METRICS_SCHEMA: Schema = {
    "ts": pl.Datetime("us"),
    "region": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
}
_SESSIONS_SCHEMA: Schema = {
    "region": pl.String,
    "started_at": pl.Datetime("us"),
    "stopped_at": pl.Datetime("us"),
}


def _telemetry(
    con: duckdb.DuckDBPyConnection, fleets: Sequence[FleetSpec], since: datetime, now: datetime
) -> tuple[
    Callable[[str, Collection[str]], pl.DataFrame],
    Callable[[str, str, Collection[str]], pl.DataFrame],
]:
    """The window's telemetry of every fleet's game type and region in two queries, and how to
    cut one group's out of it: (game type, regions) -> metrics ``(ts, region, metric, value)``
    in time order; (game type, server configuration, regions) -> sessions ``(region,
    started_at, stopped_at)``."""
    params = {
        "game_types": [f.game_type for f in fleets],
        "regions": [f.region for f in fleets],
        "since": since,
        "now": now,
    }
    metrics = con.sql(db.sql("plan_processes_metrics"), params=params).pl()
    sessions = con.sql(
        db.sql("plan_processes_sessions"),
        params={**params, "server_configs": [f.server_config for f in fleets]},
    ).pl()
    by_game = (
        {k[0]: part.drop("game_type") for k, part in metrics.partition_by(
            "game_type", as_dict=True).items()}
        if metrics.height
        else {}
    )  # fmt: skip
    by_config = (
        {(k[0], k[1]): part.drop("game_type", "server_config") for k, part in
         sessions.partition_by(["game_type", "server_config"], as_dict=True).items()}
        if sessions.height
        else {}
    )  # fmt: skip

    def metrics_of(game_type: str, regions: Collection[str]) -> pl.DataFrame:
        part = by_game.get(game_type)
        if part is None:
            return pl.DataFrame(schema=_METRICS_SCHEMA)
        return part.filter(pl.col("region").is_in(list(regions)))

    def sessions_of(game_type: str, server_config: str, regions: Collection[str]) -> pl.DataFrame:
        part = by_config.get((game_type, server_config))
        if part is None:
            return pl.DataFrame(schema=_SESSIONS_SCHEMA)
        return part.filter(pl.col("region").is_in(list(regions)))

    return metrics_of, sessions_of


def reference(spec: FleetSpec, approved: Mapping[str, Mapping[str, Any]]) -> Reference:
    """The band's centre for a fleet: the learned value a person approved, else its settings."""
    a = approved.get(spec.fleet)
    if a is not None:
        ppi = max(1, int(a["learned"]))
        players = a["players_per_instance"] or spec.capacity_players * ppi / max(
            1, processes_per_instance(spec)
        )
        return Reference(ppi, float(players), f"approved ({a['change_id']})")
    return Reference(processes_per_instance(spec), spec.capacity_players)


def load_accepted(
    con: duckdb.DuckDBPyConnection, fleets: Sequence[str], now: datetime
) -> dict[str, Accepted]:
    """Each fleet's last accepted processes per instance (and the lowest of the last 24 hours)
    from the newest recorded decisions before ``now``."""
    if not fleets:
        return {}
    rows = con.sql(
        db.sql("processes_accepted"),
        params={"fleets": list(fleets), "since": now - ACCEPTED_MEMORY, "now": now},
    ).fetchall()
    by_fleet: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for fleet, at, raw in rows:
        by_fleet.setdefault(fleet, []).append((at, json.loads(raw)))
    out = {}
    for fleet, recs in by_fleet.items():
        at, newest = recs[0]
        day = [r for t, r in recs if t > now - timedelta(hours=24)] or [newest]
        players = [r["players_per_instance"] for r in day if r.get("players_per_instance")]
        out[fleet] = Accepted(
            processes_per_instance=int(newest["processes_per_instance"]),
            players_per_instance=newest.get("players_per_instance"),
            needs={k: float(v) for k, v in (newest.get("needs") or {}).items()},
            players_per_process=newest.get("players_per_process"),
            at=at,
            low_processes=min(int(r["processes_per_instance"]) for r in day),
            low_players=min(players) if players else None,
        )
    return out


def load_approved(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Each fleet's newest approved learned processes per instance."""
    frame = con.sql(db.sql("setting_approved"), params={"setting": SETTING}).pl()
    return {r["fleet"]: r for r in frame.iter_rows(named=True)}


def list_setting_changes(
    con: duckdb.DuckDBPyConnection, *, fleet: str | None = None, include_decided: bool = False
) -> list[dict[str, Any]]:
    """Learned settings that waited for a person (newest first): the pending ones by default."""
    try:
        frame = con.sql(
            db.sql("setting_list"), params={"fleet": fleet, "all": include_decided}
        ).pl()
    except duckdb.CatalogException:  # a database not migrated yet
        return []
    return list(frame.iter_rows(named=True))


def describe_setting(change: dict[str, Any]) -> str:
    """One line for a learned setting waiting for a person (``fleetcast status``; the report
    shows the same fields as a table)."""
    return (
        f"{change['fleet']}: processes per instance learned {change['learned']:g}, outside the "
        f"band around {change['reference']:g}; sized on {change['used']:g} meanwhile (asked "
        f"{change['created_at']:%Y-%m-%d %H:%M})"
    )


def record_setting_changes(
    con: duckdb.DuckDBPyConnection, decisions: Sequence[Decision], now: datetime
) -> list[str]:
    """Ask a person about each learned processes per instance beyond its band (one pending item
    per fleet; a new learned value supersedes the old question, one back in band closes it;
    a value a person rejected is not asked again). Returns the change ids asked now."""
    asked_before = list_setting_changes(con, include_decided=True)  # newest first
    pending = {c["fleet"]: c for c in reversed(asked_before) if c["status"] == "pending"}
    rejected = {(c["fleet"], int(c["learned"])) for c in asked_before if c["status"] == "rejected"}
    asked = []
    with db.transaction(con):
        for d in decisions:
            rec = d.inputs.get("processes") or {}
            raw = (rec.get("learned") or {}).get("processes_per_instance")
            wants = bool(rec.get("approval")) and raw is not None
            learned = int(raw) if raw is not None else 0
            old = pending.get(d.fleet)
            if old is not None and (not wants or int(old["learned"]) != learned):
                con.execute(
                    db.sql("setting_decide"),
                    {
                        "change_id": old["change_id"],
                        "status": "superseded",
                        "now": now,
                        "decided_by": "fleetcast",
                        "note": "learned value changed"
                        if wants
                        else "learned value back within its band",
                    },
                ).fetchall()
                old = None
            if not wants or old is not None or (d.fleet, learned) in rejected:
                continue
            change_id = uuid.uuid4().hex[:12]
            con.execute(
                db.sql("setting_insert"),
                {
                    "change_id": change_id,
                    "fleet": d.fleet,
                    "game_type": d.game_type,
                    "setting": SETTING,
                    "reference": float(rec.get("reference") or 0),
                    "learned": float(learned),
                    "used": float(rec["processes_per_instance"]),
                    "players_per_instance": (rec.get("learned") or {}).get("players_per_instance"),
                    "reason": rec.get("bounded") or "",
                    "created_at": now,
                },
            ).fetchall()
            asked.append(change_id)
    return asked


def decide_setting(
    con: duckdb.DuckDBPyConnection,
    change_id: str,
    *,
    approve: bool,
    decided_by: str,
    note: str,
    now: datetime,
) -> None:
    """A person's answer to a learned setting: approved, it is the fleet's band centre from the
    next cycle on; rejected, the fleet keeps sizing within the band and is not asked again for
    that value."""
    con.execute(
        db.sql("setting_decide"),
        {
            "change_id": change_id,
            "status": "approved" if approve else "rejected",
            "now": now,
            "decided_by": decided_by,
            "note": note,
        },
    ).fetchall()


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
