"""Fleet configuration: load from DuckDB, import from a CSV or JSON file, validate."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from fleetcast.resources import db
from fleetcast.stages.approval_rules import clear_rule, rule_from_record, set_rule
from models.approval import RULE_COLUMNS, ApprovalRule
from models.names import InvalidName, check_name
from models.policy import RESOURCE_METRICS, SESSION_PRIORITY, FleetSpec, validate_fleet

REQUIRED = ("fleet", "game_type", "asg_name", "capacity_players", "min_size", "max_size")
_FIELDS = {f.name: f for f in fields(FleetSpec)}
_INT = {
    "min_size",
    "max_size",
    "priority",
    "lead_time_minutes",
    "window_minutes",
    "processes_per_instance",
    "max_step_up",
    "max_step_down",
    "scale_in_stabilisation_minutes",
}
_FLOAT = {
    "capacity_players",
    "capacity_cpu",
    "capacity_memory_gb",
    "capacity_net_mbps",
    "process_cpu",
    "process_memory_gb",
    "process_net_mbps",
    "safety_margin",
    "max_breach_buffer_pct",
    "tolerance",
    "cost_per_hour",
    "service_level",
}
# Auto Scaling group names: 1-255 characters, no ':' (a colon would make it an ARN).
_ASG_FORBIDDEN = set(":\n\r\t")


class FleetConfigError(ValueError):
    """A fleet file or row that cannot be used; the message says which row and why."""


def _convert(name: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if name in _INT:
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{name} must be a whole number (got {value!r})")
        return int(number)
    if name in _FLOAT:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number (got {value!r})")
        return number
    return str(value).strip()


def spec_from_record(record: dict[str, Any], *, validate: bool = True) -> FleetSpec:
    """A FleetSpec from one record (a file row or a DuckDB row). Names are always checked;
    with ``validate=False`` policy problems (min > max, ...) are left for the policy, which
    then keeps the fleet's capacity (fail-static) and says why."""
    record = {k: v for k, v in record.items() if k not in RULE_COLUMNS}  # approval rules
    unknown = sorted(k for k in record if k not in _FIELDS)
    if unknown:
        raise FleetConfigError(f"unknown columns {unknown}; known: {sorted(_FIELDS)}")
    missing = [k for k in REQUIRED if record.get(k) in (None, "")]
    if missing:
        raise FleetConfigError(f"missing required {missing}")
    values: dict[str, Any] = {}
    for key, raw in record.items():
        try:
            value = _convert(key, raw)
        except (TypeError, ValueError) as exc:
            raise FleetConfigError(str(exc)) from exc
        if value is not None:
            values[key] = value
    values.setdefault("region", "global")
    if "priority" not in values:
        values["priority"] = SESSION_PRIORITY.get(str(values.get("session_type", "casual")), 100)
    try:
        for kind in ("fleet", "game_type", "region", "demand_metric", "session_type"):
            if kind in values:
                check_name(kind.replace("_", " "), values[kind])
    except InvalidName as exc:
        raise FleetConfigError(str(exc)) from exc
    asg = values["asg_name"]
    if not (1 <= len(asg) <= 255) or _ASG_FORBIDDEN & set(asg):
        raise FleetConfigError(f"invalid asg_name {asg!r}: 1-255 characters, no ':'")
    spec = FleetSpec(**values)
    errors = validate_fleet(spec) if validate else []
    if errors:
        raise FleetConfigError(f"fleet {spec.fleet!r}: " + "; ".join(errors))
    return spec


def read_fleet_file(path: Path) -> list[FleetSpec]:
    """Fleets from a CSV (one row per fleet) or a JSON file (a list of objects or
    ``{"fleets": [...]}``)."""
    return read_fleet_file_with_rules(path)[0]


def read_fleet_file_with_rules(
    path: Path,
) -> tuple[list[FleetSpec], dict[str, ApprovalRule | None] | None]:
    """Fleets and their approval rules (the optional ``approval_*`` columns; a fleet whose
    approval columns are empty gets None = no rule). Rules are None when the file has no
    approval column at all (existing rules are then left as they are)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as fh:
            rows: list[dict[str, Any]] = list(csv.DictReader(fh))
    elif suffix == ".json":
        data = json.loads(path.read_text())
        rows = data.get("fleets", []) if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise FleetConfigError(f"{path}: expected a list of fleet objects")
    else:
        raise FleetConfigError(f"{path}: use a .csv or .json fleet file")
    if not rows:
        raise FleetConfigError(f"{path}: no fleets in the file")
    specs = []
    seen: set[str] = set()
    has_rules = any(k in RULE_COLUMNS for row in rows for k in row)
    rules: dict[str, ApprovalRule | None] = {}
    for number, row in enumerate(rows, start=1):
        try:
            spec = spec_from_record(dict(row))
            rules[spec.fleet] = rule_from_record(spec.fleet, row)
        except (FleetConfigError, ValueError) as exc:
            raise FleetConfigError(f"{path.name} row {number}: {exc}") from exc
        if spec.fleet in seen:
            raise FleetConfigError(f"{path.name} row {number}: fleet {spec.fleet!r} twice")
        seen.add(spec.fleet)
        specs.append(spec)
    return specs, (rules if has_rules else None)


def _params(spec: FleetSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in _FIELDS}


def upsert_fleets(
    con: duckdb.DuckDBPyConnection,
    specs: list[FleetSpec],
    rules: dict[str, ApprovalRule | None] | None = None,
) -> int:
    """Insert or update fleets (and their approval rules, when given) in one transaction;
    returns how many."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.transaction(con):
        for spec in specs:
            con.execute(db.sql("fleet_upsert"), _params(spec)).fetchall()
        for fleet, rule in (rules or {}).items():
            if rule is None:
                clear_rule(con, fleet)
            else:
                set_rule(con, rule, now)
    return len(specs)


def load_fleets(con: duckdb.DuckDBPyConnection, game_type: str | None = None) -> list[FleetSpec]:
    """Fleets from the database (one game type, or all), validated, by priority."""
    if game_type is not None:
        check_name("game type", game_type)
    frame = con.sql(db.sql("fleet_list"), params={"game_type": game_type}).pl()
    specs = []
    for row in frame.to_dicts():
        record = {k: v for k, v in row.items() if k in _FIELDS}
        specs.append(spec_from_record(record, validate=False))
    return specs


def import_fleets(path: Path, settings_db: Path) -> list[FleetSpec]:
    """Read and validate a fleet file, then upsert it (nothing is written if any row fails)."""
    specs, rules = read_fleet_file_with_rules(path)
    with db.session(settings_db) as con:
        upsert_fleets(con, specs, rules)
    return specs


def capacity_metrics(specs: list[FleetSpec], scope: str = "capacity") -> list[str]:
    """The metrics fleets are sized on: each fleet's demand metric (``scope="demand"``), plus
    the metrics of every other resource a fleet has a capacity for (``scope="capacity"``)."""
    out: set[str] = set()
    for spec in specs:
        out.add(spec.demand_metric)
        if scope == "capacity":
            for resource in spec.capacities():
                if resource != "players":
                    out.update(RESOURCE_METRICS[resource])
    return sorted(out)
