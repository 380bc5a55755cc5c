"""``fleetcast backtest``: replay history hour by hour and price the capacity policy."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from fleetcast.config import Settings
from models.nowcast import DEFAULT_QUANTILE

HELP = (
    "replay history hour by hour: the capacity policy vs reactive and seasonal references "
    "(hours short, unserved, idle, changes; references at the policy's idle)"
)


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {value!r} (e.g. 2026-11-01T00:00:00)"
        ) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", required=True, help="game type to replay")
    parser.add_argument("--region", default="global", help="region (default: global)")
    parser.add_argument("--metric", default="players", help="demand metric (default: players)")
    parser.add_argument("--start", type=_iso, required=True,
                        help="first replayed hour, ISO 8601 (UTC if no offset)")  # fmt: skip
    parser.add_argument("--end", type=_iso, default=None,
                        help="last replayed hour (default: newest hour of the series)")  # fmt: skip
    parser.add_argument("--lead", type=int, default=None,
                        help="hours between a decision and the hour it sizes (or --lead-minutes)"
                        )  # fmt: skip
    parser.add_argument("--lead-minutes", type=int, default=None,
                        help="the lead in minutes, e.g. 45 (sizes every hour the new capacity "
                        "serves; replaces --lead)")  # fmt: skip
    parser.add_argument("--decision-minute", type=int, default=0,
                        help="minute of the hour the replayed decisions are taken at (default 0)"
                        )  # fmt: skip
    parser.add_argument("--unit-capacity", type=float, default=None,
                        help="metric units one instance serves (needed without a fleets row; "
                        "overrides the row's capacity when given)")  # fmt: skip
    parser.add_argument("--margin", type=float, default=0.1,
                        help="margin of the references, and of the policy without a fleets row "
                        "(default 0.1)")  # fmt: skip
    parser.add_argument("--policy-margin", type=float, default=None,
                        help="what-if: the policy's safety margin (default: the fleets row's, "
                        "else --margin)")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=None,
                        help="what-if: the policy's tolerance band (default: the fleets row's, "
                        "else 0.15)")  # fmt: skip
    parser.add_argument("--quantile", type=float, default=None,
                        help="what-if: the service level, the upper quantile of the decision "
                        "forecaster's past errors used for sizing (default: the fleets row's "
                        f"service_level, else {DEFAULT_QUANTILE:g})")  # fmt: skip
    parser.add_argument("--no-events", action="store_true",
                        help="what-if: decide without the events table (scale always reads it; "
                        "docs/operations.md \"Events\")")  # fmt: skip
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep the policy's knob and print hours short and unserved "
                        "at +5%%, +10%% and +20%% over-provisioning (sum capacity / sum demand - "
                        "1) for the policy, its forecaster x (1+m), reactive and the seasonal "
                        "rule")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write the plan to")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.stages.backtest import BacktestRequest, format_table, run_backtest, write_plan

    if args.lead is None and args.lead_minutes is None:
        raise ValueError("give --lead HOURS or --lead-minutes MINUTES")
    req = BacktestRequest(
        game_type=args.game_type,
        region=args.region,
        metric=args.metric,
        start=args.start,
        end=args.end,
        lead=args.lead if args.lead is not None else 0,
        lead_minutes=args.lead_minutes,
        decision_minute=args.decision_minute,
        unit_capacity=args.unit_capacity,
        margin=args.margin,
        policy_margin=args.policy_margin,
        tolerance=args.tolerance,
        quantile=args.quantile,
        use_events=not args.no_events,
    )
    t0 = time.perf_counter()
    with db.session(settings.db_path, read_only=True) as con:
        result, spec = run_backtest(con, req)
    path = write_plan(result, req, args.out)
    took = time.perf_counter() - t0
    f = result.frame
    lead = f"{req.lead} h" if req.lead_minutes is None else f"{req.lead_minutes} min"
    print(
        f"backtest {req.game_type}/{req.region} {req.metric}: {f['ts'][0]:%Y-%m-%d %H:%M} .. "
        f"{f['ts'][-1]:%Y-%m-%d %H:%M} UTC ({f.height} h), lead {lead}, "
        f"unit {spec.capacity_players:g}, policy margin {spec.safety_margin:g}, "
        f"tolerance {spec.tolerance:g}, service level {spec.service_level:g}, "
        f"reference margin {req.margin:g}"
    )
    print(format_table(result))
    print(f"plan written to {path} ({f.height} rows) in {took:.1f} s")
    if args.sweep:
        from fleetcast.stages.backtest import format_rules, run_sweep
        from models.curve import format_rows

        with db.session(settings.db_path, read_only=True) as con:
            sweep = run_sweep(con, req)
        print(
            f"\ncurve: {len(sweep.points)} policy settings, "
            f"{sweep.seconds_per_setting:.1f} s each; hours short and unserved (share of demand)"
            " at equal over-provisioning"
        )
        print(format_rows(sweep.rows))
        print("\nprotective rules at the fleet's setting (each against the same replay without it)")
        print(format_rules(sweep.rules))
    return 0
