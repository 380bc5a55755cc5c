"""Approval rules as data: a fleet's ``approval_*`` columns (the fleet file) and the
``approval_rules`` table (``fleetcast approval set|list|clear``). Below both
:mod:`fleetcast.stages.fleets` (which imports the fleet file's rules) and
:mod:`fleetcast.stages.approval` (which applies them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb

from fleetcast.resources import db
from models.approval import RULE_COLUMNS, ApprovalRule, validate_rule
from models.names import check_name


def rule_from_record(fleet: str, record: Mapping[str, Any]) -> ApprovalRule | None:
    """The rule from a fleet file row's ``approval_*`` columns; None when they are all empty.
    Raises ValueError naming the column when a value is not usable."""
    values: dict[str, Any] = {}
    for column, name in RULE_COLUMNS.items():
        raw = record.get(column)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            continue
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{column} must be a number (got {raw!r})") from None
        if name != "max_change_pct":
            if number != int(number):
                raise ValueError(f"{column} must be a whole number (got {raw!r})")
            values[name] = int(number)
        else:
            values[name] = number
    if not values or set(values) == {"expiry_minutes"}:
        return None
    rule = ApprovalRule(fleet=fleet, **values)
    errors = validate_rule(rule)
    if errors:
        raise ValueError("; ".join(errors))
    return rule


def load_rules(con: duckdb.DuckDBPyConnection, fleet: str | None = None) -> dict[str, ApprovalRule]:
    rows = con.sql(db.sql("approval_rule_list"), params={"fleet": fleet}).pl()
    out = {}
    for r in rows.iter_rows(named=True):
        out[r["fleet"]] = ApprovalRule(
            fleet=r["fleet"],
            max_change_pct=r["max_change_pct"],
            max_change_instances=r["max_change_instances"],
            scale_in_floor=r["scale_in_floor"],
            expiry_minutes=int(r["expiry_minutes"]),
        )
    return out


def set_rule(con: duckdb.DuckDBPyConnection, rule: ApprovalRule, now: datetime) -> None:
    check_name("fleet", rule.fleet)
    errors = validate_rule(rule)
    if errors:
        raise ValueError(f"approval rule for {rule.fleet}: " + "; ".join(errors))
    known = con.sql("select count(*) from fleets where fleet = ?", params=[rule.fleet]).fetchall()
    if not known[0][0]:
        raise ValueError(f"no fleet {rule.fleet!r}: see `fleetcast fleets list`")
    params = {
        "fleet": rule.fleet,
        "max_change_pct": rule.max_change_pct,
        "max_change_instances": rule.max_change_instances,
        "scale_in_floor": rule.scale_in_floor,
        "expiry_minutes": rule.expiry_minutes,
        "updated_at": now,
    }
    con.execute(db.sql("approval_rule_upsert"), params).fetchall()


def clear_rule(con: duckdb.DuckDBPyConnection, fleet: str) -> bool:
    check_name("fleet", fleet)
    return bool(con.execute(db.sql("approval_rule_delete"), {"fleet": fleet}).fetchall())
