"""A person's overrides (capacity, min, max, multiplier, processes per instance), each with its
reason and expiry: the ``overrides`` table (``fleetcast override set|list|clear``). Read by the
plan (:mod:`fleetcast.stages.allocate`), approval, status and the backtest."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import duckdb

from fleetcast.resources import db
from models.clock import utcnow
from models.names import check_name
from models.policy import OVERRIDE_KINDS, Override


def naive(ts: Any) -> datetime | None:
    """A timestamp read from DuckDB as naive UTC (None stays None)."""
    if ts is None:
        return None
    if isinstance(ts, datetime) and ts.tzinfo is not None:
        return ts.astimezone(UTC).replace(tzinfo=None)
    return ts  # type: ignore[no-any-return]


def _override_from_row(row: Mapping[str, Any]) -> Override:
    return Override(
        override_id=row["override_id"],
        fleet=row["fleet"],
        kind=row["kind"],
        value=float(row["value"]),
        reason=row["reason"],
        created_at=naive(row["created_at"]),  # type: ignore[arg-type]
        expires_at=naive(row["expires_at"]),  # type: ignore[arg-type]
        cleared_at=naive(row["cleared_at"]),
    )


def list_overrides(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    fleet: str | None = None,
    include_inactive: bool = False,
) -> list[Override]:
    """Overrides in force at ``now`` (or all of them), for one fleet or all."""
    if fleet is not None:
        check_name("fleet", fleet)
    frame = con.sql(
        db.sql("override_list"), params={"fleet": fleet, "now": now, "all": include_inactive}
    ).pl()
    return [_override_from_row(r) for r in frame.iter_rows(named=True)]


def set_override(
    con: duckdb.DuckDBPyConnection,
    *,
    fleet: str,
    kind: str,
    value: float,
    reason: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> Override:
    """Record a human override (capacity, min, max, multiplier or processes per instance) with
    its reason and expiry."""
    now = now or utcnow()
    check_name("fleet", fleet)
    if kind not in OVERRIDE_KINDS:
        raise ValueError(f"override kind {kind!r}: use one of {', '.join(OVERRIDE_KINDS)}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"override value must be a number >= 0 (got {value})")
    if kind != "multiplier" and value != int(value):
        raise ValueError(f"a {kind} override is a whole number of instances (got {value})")
    if kind == "processes" and value < 1:
        raise ValueError(f"a processes override is at least 1 process per instance (got {value})")
    if not reason or not reason.strip():
        raise ValueError("an override needs a reason (--reason)")
    if expires_at <= now:
        raise ValueError(f"expiry {expires_at:%Y-%m-%d %H:%M} is not in the future")
    known = con.sql("select count(*) from fleets where fleet = ?", params=[fleet]).fetchall()
    if not known[0][0]:
        raise ValueError(f"no fleet {fleet!r}: see `fleetcast fleets list`")
    o = Override(
        override_id=uuid.uuid4().hex[:12],
        fleet=fleet,
        kind=kind,  # type: ignore[arg-type]
        value=float(value),
        reason=reason.strip(),
        created_at=now,
        expires_at=expires_at,
    )
    params = asdict(o)
    params.pop("cleared_at")
    con.execute(db.sql("override_insert"), params).fetchall()
    return o


def clear_overrides(
    con: duckdb.DuckDBPyConnection,
    fleet: str,
    *,
    override_id: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """End a fleet's overrides in force (or one); returns the ids cleared."""
    check_name("fleet", fleet)
    rows = con.execute(
        db.sql("override_clear"),
        {"fleet": fleet, "override_id": override_id, "now": now or utcnow()},
    ).fetchall()
    return [r[0] for r in rows]
