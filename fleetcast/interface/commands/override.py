"""``fleetcast override set|list|clear``: human overrides with a reason and an expiry."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from fleetcast.config import Settings

HELP = (
    "set, list or clear a fleet's override (capacity, min, max, multiplier, processes per instance)"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")


def parse_expiry(text: str, now: datetime) -> datetime:
    """``90m``, ``2h``, ``1d`` from now, or an ISO timestamp (UTC)."""
    m = _DURATION.match(text.strip())
    if m:
        amount, unit = float(m.group(1)), m.group(2)
        unit_name = {"m": "minutes", "h": "hours", "d": "days"}[unit]
        return now + timedelta(**{unit_name: amount})
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"--expires {text!r}: use 30m, 2h, 1d or an ISO time") from exc
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common  # --db / --aws-endpoint after the action too

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    s = sub.add_parser("set", parents=common, help="add an override")
    s.add_argument("--fleet", required=True)
    s.add_argument(
        "--kind",
        required=True,
        choices=["capacity", "min", "max", "multiplier", "processes"],
        help="processes = processes per instance (instead of the one learned from telemetry)",
    )
    s.add_argument("--value", required=True, type=float)
    s.add_argument("--reason", required=True)
    s.add_argument("--expires", required=True, help="30m, 2h, 1d or an ISO time (UTC)")
    ls = sub.add_parser("list", parents=common, help="overrides in force (or --all)")
    ls.add_argument("--fleet")
    ls.add_argument("--all", action="store_true", help="include expired and cleared ones")
    c = sub.add_parser(
        "clear", parents=common, help="end a fleet's overrides in force (or one with --id)"
    )
    c.add_argument("--fleet", required=True)
    c.add_argument("--id", dest="override_id")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.stages.overrides import clear_overrides, list_overrides, set_override
    from models.clock import utcnow

    now = utcnow()
    with db.session(settings.db_path) as con:
        if args.action == "set":
            o = set_override(
                con,
                fleet=args.fleet,
                kind=args.kind,
                value=args.value,
                reason=args.reason,
                expires_at=parse_expiry(args.expires, now),
                now=now,
            )
            print(
                f"override {o.override_id}: {o.fleet} {o.kind}={o.value:g} until "
                f"{o.expires_at:%Y-%m-%d %H:%M} UTC ({o.reason})"
            )
            return 0
        if args.action == "list":
            rows = list_overrides(con, now, fleet=args.fleet, include_inactive=args.all)
            if not rows:
                print("no overrides in force")
            for o in rows:
                state = "active" if o.active(now) else ("cleared" if o.cleared_at else "expired")
                print(
                    f"{o.override_id}  {o.fleet}  {o.kind}={o.value:g}  "
                    f"until {o.expires_at:%Y-%m-%d %H:%M}  {state}  {o.reason}"
                )
            return 0
        cleared = clear_overrides(con, args.fleet, override_id=args.override_id, now=now)
        print(
            f"cleared {len(cleared)} override(s)" + (": " + ", ".join(cleared) if cleared else "")
        )
        return 0 if cleared or args.override_id is None else 1
