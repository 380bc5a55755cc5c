"""The allocation record of a decision: the one writer of ``allocations`` rows for decisions that
went through the capacity backend (a scale run's, an approval's). Used by
:mod:`fleetcast.stages.allocate` and :mod:`fleetcast.stages.approval`, below both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from fleetcast.resources import db
from fleetcast.resources.aws import ApplyResult, GroupState
from models.policy import Decision

_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "decision_id": pl.String,
    "run_id": pl.String,
    "decided_at": pl.Datetime("us"),
    "fleet": pl.String,
    "game_type": pl.String,
    "region": pl.String,
    "asg_name": pl.String,
    "mode": pl.String,
    "current_desired": pl.Int64,
    "target_desired": pl.Int64,
    "applied_desired": pl.Int64,
    "applied": pl.Boolean,
    "processes_per_instance": pl.Int64,
    "demand_forecast": pl.Float64,
    "inputs": pl.String,
    "reason": pl.String,
    "recommended": pl.Int64,
    "status": pl.String,
    "new_max_size": pl.Int64,
    "unserved_instances": pl.Int64,
    "outcome": pl.String,
}


def _row(
    run_id: str, d: Decision, result: ApplyResult | None, state: GroupState | None
) -> dict[str, Any]:
    """One ``allocations`` row: the decision, the group as read before it, the calls sent."""
    inputs = dict(d.inputs)
    inputs["group"] = (
        None
        if state is None
        else {
            "desired": state.desired,
            "min": state.min_size,
            "max": state.max_size,
            "instances": len(state.instances),
            "busy_tagged": sorted(state.busy_ids),
        }
    )
    inputs["calls"] = list(result.calls) if result else []
    inputs["protected"] = list(result.protected) if result else []
    inputs["released"] = list(result.released) if result else []
    return {
        "decision_id": uuid.uuid4().hex,
        "run_id": run_id,
        "decided_at": d.decided_at,
        "fleet": d.fleet,
        "game_type": d.game_type,
        "region": d.region,
        "asg_name": d.asg_name,
        "mode": d.mode,
        "current_desired": d.current,
        "target_desired": d.target,
        "applied_desired": d.applied_desired,
        "applied": d.applied,
        "processes_per_instance": d.processes_per_instance,
        "demand_forecast": d.demand_forecast,
        "inputs": json.dumps(inputs, default=str, sort_keys=True),
        "reason": d.reason,
        "recommended": d.recommended,
        "status": d.status,
        "new_max_size": result.sent_max if result else None,
        "unserved_instances": d.unserved_instances,
        "outcome": d.outcome,
    }


def record_decisions(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    done: Sequence[tuple[Decision, ApplyResult | None, GroupState | None]],
) -> None:
    """The ``allocations`` rows of a run's decisions (each with its apply result and the group
    as read before it), in one statement."""
    if not done:
        return
    rows = pl.DataFrame([_row(run_id, d, r, s) for d, r, s in done], schema=_SCHEMA)
    con.register("new_allocations", rows.to_arrow())
    try:
        con.execute(db.sql("alloc_insert_many")).fetchall()
    finally:
        con.unregister("new_allocations")


def record_decision(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    d: Decision,
    result: ApplyResult | None,
    state: GroupState | None,
) -> None:
    """One ``allocations`` row (:func:`record_decisions` of one)."""
    record_decisions(con, run_id, [(d, result, state)])
