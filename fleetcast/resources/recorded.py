"""The recorded capacity backend's starting state, read from the database: built by the
composition root (``fleetcast.config.capacity_backend``) for forecast-only runs without AWS."""

from __future__ import annotations

from pathlib import Path

from fleetcast.resources import db
from fleetcast.resources.aws import MANAGED_VALUE, GroupState, RecordedBackend


def recorded_backend(db_path: Path, allowed_tag: str) -> RecordedBackend:
    """A no-AWS backend whose groups start where the last recorded decisions left them
    (a fleet never decided starts at its min). Every fleet's group counts as managed."""
    with db.session(db_path) as con:
        rows = con.sql(db.sql("recorded_groups")).fetchall()
    groups = [
        GroupState(
            name=name,
            desired=int(desired),
            min_size=int(min_size),
            max_size=int(max_size),
            tags={allowed_tag: MANAGED_VALUE},
        )
        for name, desired, min_size, max_size in rows
    ]
    return RecordedBackend(groups, allowed_tag=allowed_tag)
