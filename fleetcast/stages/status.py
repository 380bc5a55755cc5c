"""Where things stand, read-only: fleets, last forecast, last decision and why, accuracy,
overrides in force. Used by ``fleetcast status`` and by the flows' run summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.stages.approval import list_changes
from fleetcast.stages.overrides import list_overrides
from fleetcast.stages.processes import list_setting_changes
from models.approval import PendingChange
from models.clock import utcnow
from models.explain import breaches, brief_reason, forecaster
from models.names import check_name
from models.policy import Override
from models.processes import describe as describe_processes


@dataclass(frozen=True)
class Status:
    fleets: pl.DataFrame  # one row per fleet: config, last forecast, last decision
    overrides: list[Override] = field(default_factory=list)
    accuracy: pl.DataFrame | None = None  # newest scores per series, where scored
    now: datetime | None = None
    approvals: list[PendingChange] = field(default_factory=list)  # changes waiting for a person
    settings: list[dict[str, Any]] = field(default_factory=list)  # learned settings waiting


def read_pending(con: duckdb.DuckDBPyConnection, fleets: set[str]) -> list[PendingChange]:
    """Changes waiting for approval for these fleets ([] on a database not migrated yet)."""
    try:
        return [c for c in list_changes(con) if c.fleet in fleets]
    except duckdb.CatalogException:
        return []


def read_waiting_settings(con: duckdb.DuckDBPyConnection, fleets: set[str]) -> list[dict[str, Any]]:
    """Learned settings waiting for a person for these fleets (newest first)."""
    return [c for c in list_setting_changes(con) if c["fleet"] in fleets]


def read_accuracy(con: duckdb.DuckDBPyConnection, game_type: str | None) -> pl.DataFrame:
    """The newest realised accuracy of each series (empty when nothing was scored yet)."""
    return con.sql(db.sql("status_accuracy"), params={"game_type": game_type}).pl()


def read_status(
    settings: Settings, game_type: str | None = None, *, now: datetime | None = None
) -> Status:
    """Everything ``fleetcast status`` shows, read with a read-only connection."""
    if game_type is not None:
        check_name("game type", game_type)
    now = now or utcnow()
    with db.session(settings.db_path, read_only=True) as con:
        fleets = con.sql(db.sql("status_fleets"), params={"game_type": game_type}).pl()
        names = set(fleets["fleet"].to_list())
        overrides = [o for o in list_overrides(con, now) if o.fleet in names]
        accuracy = read_accuracy(con, game_type)
        approvals = read_pending(con, names)
        waiting = read_waiting_settings(con, names)
    return Status(
        fleets=fleets,
        overrides=overrides,
        accuracy=accuracy,
        now=now,
        approvals=approvals,
        settings=waiting,
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def decided_by(r: dict[str, Any]) -> str | None:
    """The forecaster that decided the fleet's last decision (None: no forecast was read)."""
    models = json.loads(r["decided_by"]) if r.get("decided_by") else {}
    return forecaster({"inputs": {"forecast_models": models}})


def budget_breaches(status: Status) -> list[str]:
    """Soft budgets exceeded because a person's capacity override holds, as of each fleet's
    last decision: "pool: scope 40 of 10 instances over 1 fleet(s); override holds on
    launch-eu"."""
    records = [
        {"inputs": {"budget": json.loads(r["budget"])}}
        for r in status.fleets.iter_rows(named=True)
        if r.get("budget")
    ]
    return [
        f"{name}: {total}; a person's capacity override holds on {', '.join(fleets)}"
        for name, (total, fleets) in breaches(records).items()
    ]


def status_rows(status: Status) -> list[dict[str, str]]:
    """One flat, printable row per fleet, every column (``fleetcast status --wide``)."""
    rows = []
    for r in status.fleets.iter_rows(named=True):
        if r["decided_at"] is None:
            decision = "no decision yet"
        else:
            applied = f"applied {r['applied_desired']}" if r["applied"] else "not applied"
            decision = (
                f"{_fmt(r['current_desired'])} -> {r['target_desired']} ({r['decision_mode']}, "
                f"{applied}, {_fmt(r['decided_at'])})"
            )
        why = r["reason"] or ""
        if r["outcome"]:
            why += f" | {r['outcome']}"
        rows.append(
            {
                "fleet": r["fleet"],
                "game_type": r["game_type"],
                "region": r["region"],
                "mode": r["mode"],
                "min-max": f"{r['min_size']}-{r['max_size']}",
                "margin": f"{(r['safety_margin'] or 0):.0%}",
                "published forecast": (
                    "none"
                    if r["forecast_at"] is None
                    else f"{_fmt(r['forecast_at'])} {r['forecast_model']}"
                ),
                "last decision": decision,
                "decided by": decided_by(r) or "-",
                "unserved": "-" if r["decided_at"] is None else str(r["unserved_instances"] or 0),
                "processes": "-"
                if r["decided_at"] is None
                else describe_processes(
                    r["processes_per_instance"], r["processes_source"], r["processes_learned"]
                ),
                "why": why or "-",
            }
        )
    return rows


def _age(then: datetime, now: datetime | None) -> str:
    """How long ago, in the largest whole unit: "now", "12m", "5h", "3d"."""
    minutes = int(((now or utcnow()) - then).total_seconds() // 60)
    if minutes < 1:
        return "now"
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // (24 * 60)}d"


def _applied(r: dict[str, Any]) -> str:
    """The size sent, "shadow" for a forecast-only decision, else "no"."""
    if r["applied"]:
        return str(r["applied_desired"])
    return "shadow" if r["decision_mode"] == "forecast_only" else "no"


def compact_rows(status: Status) -> list[dict[str, str]]:
    """One short row per fleet, what an operator needs at a glance (``fleetcast status``): the
    last decision's change, whether it was applied, how long ago, and its reason without the
    change it opens with (the caller cuts it to the width left)."""
    rows = []
    for r in status.fleets.iter_rows(named=True):
        decided = r["decided_at"] is not None
        why = brief_reason(r["reason"])
        if decided and r["unserved_instances"]:
            why = f"unserved {r['unserved_instances']}: {why}"
        if r["outcome"]:
            why += f" | {r['outcome']}"
        rows.append(
            {
                "fleet": r["fleet"],
                "mode": r["mode"],
                "min-max": f"{r['min_size']}-{r['max_size']}",
                "decision": (
                    f"{_fmt(r['current_desired'])} -> {r['target_desired']}" if decided else "none"
                ),
                "applied": _applied(r) if decided else "-",
                "age": _age(r["decided_at"], status.now) if decided else "-",
                "processes": (
                    describe_processes(r["processes_per_instance"], r["processes_source"])
                    if decided
                    else "-"
                ),
                "why": why or "-",
            }
        )
    return rows


def fleet_fields(status: Status, fleet: str) -> list[tuple[str, str]]:
    """Every field of one fleet's row (``fleetcast status FLEET``), in order, as text; [] for a
    fleet not in ``status``."""
    for r in status.fleets.iter_rows(named=True):
        if r["fleet"] != fleet:
            continue
        fields = [
            (k, f"{v:.0%}" if k == "safety_margin" and v is not None else _fmt(v))
            for k, v in r.items()
        ]
        if r["decided_at"] is not None:
            processes = describe_processes(
                r["processes_per_instance"], r["processes_source"], r["processes_learned"]
            )
            fields.append(("processes", processes))
        return fields
    return []


def for_fleet(status: Status, fleet: str) -> Status:
    """``status`` narrowed to one fleet: its row, overrides, approvals, learned settings and the
    accuracy of its series (game type and region)."""
    fleets = status.fleets.filter(pl.col("fleet") == fleet)
    accuracy = status.accuracy
    if accuracy is not None and fleets.height:
        [(game_type, region)] = fleets.select("game_type", "region").rows()
        accuracy = accuracy.filter(
            (pl.col("game_type") == game_type) & (pl.col("region") == region)
        )
    return replace(
        status,
        fleets=fleets,
        overrides=[o for o in status.overrides if o.fleet == fleet],
        accuracy=accuracy,
        approvals=[c for c in status.approvals if c.fleet == fleet],
        settings=[s for s in status.settings if s["fleet"] == fleet],
    )
