"""The allocation record of a decision: the one writer of ``allocations`` rows for decisions that
went through the capacity backend (a scale run's, an approval's). Used by
:mod:`fleetcast.stages.allocate` and :mod:`fleetcast.stages.approval`, below both."""

from __future__ import annotations

import json
import uuid

import duckdb

from fleetcast.resources import db
from fleetcast.resources.aws import ApplyResult, GroupState
from models.policy import Decision


def record_decision(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    d: Decision,
    result: ApplyResult | None,
    state: GroupState | None,
) -> None:
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
    params = {
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
    con.execute(db.sql("alloc_insert"), params).fetchall()
