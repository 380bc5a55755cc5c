"""``fleetcast status``: fleets, last forecast, last decision and why, accuracy, overrides.

Three views: a compact table that fits the terminal (default; 120 columns when piped, or
``$COLUMNS``), every column (``--wide``, as wide as it takes), and one fleet's every field as
``key: value`` lines with the reason wrapped to the width (``fleetcast status FLEET``).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import TYPE_CHECKING

from fleetcast.config import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from fleetcast.stages.status import Status

HELP = (
    "show each fleet: last forecast, last decision and why, accuracy, overrides in force, "
    "changes waiting for approval"
)

# the width of piped or captured output when $COLUMNS does not say (compact view; --wide: 240)
PIPED_WIDTH = 120
PIPED_WIDTH_WIDE = 240


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "fleet", nargs="?", help="one fleet: every field as `key: value` lines, the full reason"
    )
    parser.add_argument("--game-type", help="only this game type (default: all)")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="every column (game type, region, margin, published forecast, decided by, the full "
        "reason) in one wide table; the default is a compact table that fits the terminal",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.stages.status import for_fleet, read_status

    status = read_status(settings, args.game_type)
    console = _console(wide=args.wide)
    if args.fleet is not None:
        status = for_fleet(status, args.fleet)
        if not status.fleets.height:
            scope = f" of game type {args.game_type}" if args.game_type else ""
            print(
                f"fleetcast status: no fleet {args.fleet}{scope} in {settings.db_path}: "
                "`fleetcast status` lists them",
                file=sys.stderr,
            )
            return 2
        _print_fleet(console, status, args.fleet)
        _print_rest(console, status, wide=False)
        return 0
    if not status.fleets.height:
        _say(
            console,
            f"no fleets in {settings.db_path}: import them with `fleetcast fleets import FILE`",
        )
        return 0
    _print_fleets(console, status, settings, wide=args.wide)
    _print_rest(console, status, wide=args.wide)
    return 0


def _console(*, wide: bool) -> Console:
    """The terminal's width; piped or captured, $COLUMNS or a fixed width (no wrapping of the
    wide table's names and reasons)."""
    from rich.console import Console

    console = Console()
    if console.is_terminal or (os.environ.get("COLUMNS") and not wide):
        return console
    return Console(width=PIPED_WIDTH_WIDE if wide else PIPED_WIDTH)


def _print_fleets(console: Console, status: Status, settings: Settings, *, wide: bool) -> None:
    from rich.table import Table

    from fleetcast.stages.status import compact_rows, status_rows

    title = f"fleetcast status ({settings.db_path}, {status.now:%Y-%m-%d %H:%M} UTC)"
    if wide:
        rows = status_rows(status)
        table = Table(title=title)
        for name in rows[0]:
            table.add_column(name, overflow="fold", max_width=60 if name == "why" else None)
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
        return
    _say(console, title)
    for line in compact_lines(compact_rows(status), console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    _say(console, "the full reason: `fleetcast status FLEET`; every column: `--wide`")


# compact columns dropped, first to last, while the reason would get fewer than MIN_WHY columns
DROP_ORDER = ("processes", "age", "min-max")
MIN_WHY = 20
GAP = "  "


def compact_lines(rows: list[dict[str, str]], width: int) -> list[str]:
    """The compact table as plain ASCII lines no wider than ``width`` (a header, a rule, a row
    per fleet): every column as wide as its widest cell, the reason ("why", last) cut with "..."
    to what is left. Where that leaves it fewer than MIN_WHY columns, the columns in DROP_ORDER
    go first; only fleet names longer than the width itself can make a line wider."""
    names = [n for n in rows[0] if n != "why"]
    widths = {n: max(len(n), *(len(r[n]) for r in rows)) for n in names}

    def left(columns: list[str]) -> int:
        return width - sum(widths[n] + len(GAP) for n in columns)

    for drop in DROP_ORDER:
        if left(names) >= MIN_WHY:
            break
        names.remove(drop)
    room = max(left(names), len("why"))
    lines = []
    for cells in [{n: n for n in rows[0]}, {n: "-" * len(n) for n in rows[0]}, *rows]:
        why = cells["why"] if len(cells["why"]) <= room else cells["why"][: room - 3] + "..."
        lines.append(GAP.join([*(cells[n].ljust(widths[n]) for n in names), why]).rstrip())
    return lines


def _say(console: Console, text: str, indent: str = "") -> None:
    """A line of text wrapped to the console's width, continued under ``indent``."""
    wrapped = textwrap.fill(
        text, width=console.width, initial_indent=indent, subsequent_indent=indent + "  "
    )
    console.print(wrapped, markup=False, highlight=False, soft_wrap=True)


def _print_fleet(console: Console, status: Status, fleet: str) -> None:
    """Every field of one fleet, one `key: value` line each, long values wrapped and indented."""
    from fleetcast.stages.status import fleet_fields

    fields = fleet_fields(status, fleet)
    pad = max(len(k) for k, _ in fields) + 2
    for key, value in fields:
        text = textwrap.fill(
            value,
            width=max(console.width, pad + 20),
            initial_indent=f"{key}:".ljust(pad),
            subsequent_indent=" " * pad,
            break_on_hyphens=False,  # fleet names (battle_royale-eu-west) stay whole
        )
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_rest(console: Console, status: Status, *, wide: bool) -> None:
    """Overrides in force, changes and learned settings waiting, accuracy: tables in ASCII
    unless wide, so that a line's bytes are its characters (``awk '{ print length }'``)."""
    from rich import box
    from rich.table import Table

    lines = box.HEAVY_HEAD if wide else box.ASCII

    if status.overrides:
        ov = Table(title="overrides in force", box=lines)
        for name in ("fleet", "kind", "value", "until", "reason"):
            ov.add_column(name)
        for o in status.overrides:
            ov.add_row(o.fleet, o.kind, f"{o.value:g}", f"{o.expires_at:%Y-%m-%d %H:%M}", o.reason)
        console.print(ov)
    else:
        console.print("overrides in force: none")

    from fleetcast.stages.status import budget_breaches

    exceeded = budget_breaches(status)
    if exceeded:
        console.print("budgets exceeded (a soft budget does not cut a person's override):")
        for line in exceeded:
            _say(console, line, indent="  ")

    if status.approvals:
        from fleetcast.stages.approval import describe_change

        console.print("changes waiting for approval (fleetcast approve|reject --fleet F):")
        for c in status.approvals:
            _say(console, describe_change(c, status.now or c.created_at), indent="  ")
    else:
        console.print("changes waiting for approval: none")
    if status.settings:
        console.print("learned settings waiting for approval (fleetcast approve|reject --fleet F):")
        from fleetcast.stages.processes import describe_setting

        for s in status.settings:
            _say(console, describe_setting(s), indent="  ")

    if status.accuracy is not None and status.accuracy.height:
        acc = status.accuracy.head(20)
        at = Table(title="accuracy (newest scores)", box=lines)
        for name in acc.columns:
            at.add_column(name)
        for r in acc.iter_rows():
            at.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r))
        console.print(at)
    else:
        console.print("accuracy: not scored yet (run `fleetcast accuracy` after actuals arrive)")
