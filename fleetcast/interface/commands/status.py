"""``fleetcast status``: fleets, last forecast, last decision and why, accuracy, overrides."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings

HELP = (
    "show each fleet: last forecast, last decision and why, accuracy, overrides in force, "
    "changes waiting for approval"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", help="only this game type (default: all)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from fleetcast.stages.status import read_status, status_rows

    status = read_status(settings, args.game_type)
    console = Console()
    if not console.is_terminal:  # piped or captured: no wrapping of names and reasons
        console = Console(width=240)
    rows = status_rows(status)
    if not rows:
        console.print(
            f"no fleets in {settings.db_path}: import them with `fleetcast fleets import FILE`"
        )
        return 0
    table = Table(title=f"fleetcast status ({settings.db_path}, {status.now:%Y-%m-%d %H:%M} UTC)")
    for name in rows[0]:
        table.add_column(name, overflow="fold", max_width=60 if name == "why" else None)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)

    if status.overrides:
        ov = Table(title="overrides in force")
        for name in ("fleet", "kind", "value", "until", "reason"):
            ov.add_column(name)
        for o in status.overrides:
            ov.add_row(o.fleet, o.kind, f"{o.value:g}", f"{o.expires_at:%Y-%m-%d %H:%M}", o.reason)
        console.print(ov)
    else:
        console.print("overrides in force: none")

    if status.approvals:
        from fleetcast.stages.approval import describe_change

        console.print("changes waiting for approval (fleetcast approve|reject --fleet F):")
        for c in status.approvals:
            console.print(f"  {describe_change(c, status.now or c.created_at)}", markup=False)
    else:
        console.print("changes waiting for approval: none")
    if status.settings:
        console.print("learned settings waiting for approval (fleetcast approve|reject --fleet F):")
        for s in status.settings:
            console.print(
                f"  {s['fleet']}: processes per instance learned {s['learned']:g}, outside the "
                f"band around {s['reference']:g}; sized on {s['used']:g} meanwhile (asked "
                f"{s['created_at']:%Y-%m-%d %H:%M})",
                markup=False,
            )

    if status.accuracy is not None and status.accuracy.height:
        acc = status.accuracy.head(20)
        at = Table(title="accuracy (newest scores)")
        for name in acc.columns:
            at.add_column(name)
        for r in acc.iter_rows():
            at.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r))
        console.print(at)
    else:
        console.print("accuracy: not scored yet (run `fleetcast accuracy` after actuals arrive)")
    return 0
