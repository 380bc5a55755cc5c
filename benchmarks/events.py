"""Events benchmark: the decision path with and without its event model, against its own
forecaster as capacity x (1 + m), reactive and the seasonal rule, at equal over-provisioning,
inside event hours and over all hours, on real Steam demand with injected events and on the
sample.

    nice -n 10 .venv/bin/python benchmarks/events.py --steam /work/shared/data/steam-dev
        [--limit N] [--half tune|test|all] [--seed 1] [--no-sample] [--lead 1] [--quiet]

Steam: each game (``steam_<AppID>``, region ``global``) as stored, with events injected by
multiplying its demand (:func:`schedule`, seeded per game with ``--seed``): tournaments (2-5 h,
x1.5-3 with a 2 h ramp before and a 3 h decay after), game updates (the row is the maintenance,
1-2 h at x0.3-0.5; a surge x1.5-2.5 after its end decaying over ~12-24 h), promotions (2-4 days,
x1.2-1.5, a 6 h ramp in and a 12 h decay out) at irregular days and hours, at least two of each
before the scored window (which starts 14 days after the first hour), and a holiday (24 h,
x1.3-1.6) first seen inside the scored window, its row carrying an expected multiplier (the true
one x0.9-1.1). The event rows go into the events table of a temporary DuckDB as well. Event
hours: the hours whose injected multiplier is off 1 by more than 2% or inside a window. Unit
capacity = the series mean / 1000, min 0. ``--half tune`` = the even-numbered games (sorted),
``test`` = the odd ones: choose settings on one, report the other once.

Sample: ``fleetcast.interface.sample.generate`` (seed 7, fixed end), loaded as in
``benchmarks/replay.py``, its events as generated (from the events table: no multipliers);
event hours = each applying event's window plus 3 h either side.

Plans: the policy through :func:`models.replay.replay` (the ``fleetcast scale`` decision) swept
over the ``fleetcast backtest --sweep`` knob, with no events (``default``: what ``scale`` does
today) and with the series' events (``events``); the event-aware forecaster's point forecast
x (1 + m); reactive; the seasonal rule. Each at +5%, +10%, +20% overall over-provisioning
(sum capacity / sum demand - 1 over all scored hours); hours short (share) and unserved (share
of demand) inside event hours and over all hours, averaged over the series.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.replay import (  # noqa: E402
    DEFAULT_FLEETS,
    SAMPLE_END,
    _insert_metrics,
    load_sample,
    steam_request,
)
from fleetcast.resources import db  # noqa: E402
from fleetcast.stages.backtest import (  # noqa: E402
    SWEEP,
    BacktestRequest,
    fleet_spec,
    load_series,
)
from fleetcast.stages.plan_inputs import read_series_events  # noqa: E402
from models.curve import LEVELS, CurvePoint, point, policy_at, reference_at, sized  # noqa: E402
from models.decision import decision_config  # noqa: E402
from models.events import EventConfig, EventWindow  # noqa: E402
from models.nowcast import NowcastConfig  # noqa: E402
from models.replay import ReplayResult, replay  # noqa: E402

PLANS = ("default", "events", "forecast x (1+m)", "reactive", "seasonal rule")
REFS = (("forecast x (1+m)", "forecast"), ("reactive", "reactive"), ("seasonal rule", "seasonal"))
SCORED_AFTER = timedelta(days=14)
MIN_DAYS = 20  # a shorter series cannot hold the schedule (two of each kind before the window)
EVENT_CONFIG = EventConfig()  # the event model's settings (--event)
NOWCAST_CHANGES: dict[str, object] = {}  # the decision forecaster's settings (--nowcast)
POLICY_PLANS = ("default", "events")  # the policy plans replayed (--plans)
SETTINGS = SWEEP  # the knob settings swept (--sweep-from: the last ones only, for tuning)


# --------------------------------------------------------------------------- injected events


def _hours(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds() // 3600)


def schedule(
    first: datetime, n_hours: int, rng: np.random.Generator, game: str
) -> tuple[list[EventWindow], np.ndarray]:
    """Events for one series of ``n_hours`` hours from ``first`` (an hour), and the demand
    multiplier per hour they cause."""
    mult = np.ones(n_hours)
    events: list[EventWindow] = []
    scored = _hours(first, first + SCORED_AFTER)

    def at(lo: float, hi: float) -> int:  # an hour index between day lo and day hi
        return int(rng.uniform(lo * 24, hi * 24))

    def put(i: int, factor: float) -> None:
        if 0 <= i < n_hours:
            mult[i] *= factor

    def window(kind: str, name: str, s: int, e: int, multiplier: float | None = None) -> None:
        events.append(
            EventWindow(
                kind,
                first + timedelta(hours=s),
                first + timedelta(hours=e),
                name=name,
                multiplier=multiplier,
            )
        )

    days = n_hours / 24
    # tournaments: 3 before the scored window, 3 inside
    for j, (lo, hi) in enumerate([(1, 5), (5, 9), (9, 13.5)] + [(14.5, days - 1)] * 3):
        s, dur, lift = at(lo, hi), int(rng.integers(2, 6)), float(rng.uniform(1.5, 3.0))
        for k, w in ((-2, 0.1), (-1, 0.25)):
            put(s + k, 1 + (lift - 1) * w)
        for k in range(dur):
            put(s + k, 1 + (lift - 1) * (0.7 if k == 0 else 1.0))
        for k, w in enumerate((0.3, 0.15, 0.05)):
            put(s + dur + k, 1 + (lift - 1) * w)
        window("tournament", f"{game}_cup_{j}", s, s + dur)
    # game updates: a maintenance dip (the row), then a decaying surge after its end
    for j, (lo, hi) in enumerate([(2, 7), (8, 13), (14.5, days - 1.5)]):
        s, dur = at(lo, hi), int(rng.integers(1, 3))
        dip, surge, tau = (
            float(rng.uniform(0.3, 0.5)),
            float(rng.uniform(1.5, 2.5)),
            float(rng.uniform(5, 9)),
        )
        for k in range(dur):
            put(s + k, dip)
        for k in range(36):
            put(s + dur + k, 1 + (surge - 1) * math.exp(-k / tau))
        window("game_update", f"{game}_patch_{j}", s, s + dur)
    # promotions: 2-4 days
    for j, (lo, hi) in enumerate([(1, 4), (6.5, 9.5), (15, days - 4.5)]):
        s, dur = at(lo, hi), int(rng.integers(2, 5)) * 24
        lift = float(rng.uniform(1.2, 1.5))
        for k in range(dur):
            put(s + k, 1 + (lift - 1) * min(1.0, (k + 1) / 6))
        for k in range(12):
            put(s + dur + k, 1 + (lift - 1) * (1 - (k + 1) / 13))
        window("promotion", f"{game}_sale_{j}", s, s + dur)
    # a kind first seen inside the scored window, with an expected multiplier
    s, lift = at(16, days - 2), float(rng.uniform(1.3, 1.6))
    for k in range(24):
        put(s + k, lift)
    window("holiday", f"{game}_holiday", s, s + 24, multiplier=lift * float(rng.uniform(0.9, 1.1)))
    assert scored > 0
    return events, mult


def load_steam_events(
    con, folder: Path, seed: int, games: list[str] | None = None
) -> dict[str, tuple[list[EventWindow], dict[datetime, float]]]:
    """The Steam file with injected events (see the module docstring); per game its events
    and its multiplier by hour."""
    frame = pl.read_csv(folder / "steam_players_hourly.csv", try_parse_dates=True)
    names = sorted(frame["game_type"].unique().to_list())
    out: dict[str, tuple[list[EventWindow], dict[datetime, float]]] = {}
    parts = []
    for gi, game in enumerate(names):
        if games is not None and game not in games:
            continue
        f = frame.filter(pl.col("game_type") == game).with_columns(
            pl.col("ts").dt.truncate("1h").alias("hour")
        )
        first: datetime = f["hour"].min()  # type: ignore[assignment]
        last: datetime = f["hour"].max()  # type: ignore[assignment]
        n = _hours(first, last) + 1
        if n < MIN_DAYS * 24:
            print(f"-- steam {game}: skipped, {n} h < {MIN_DAYS} days", flush=True)
            continue
        rng = np.random.default_rng([seed, gi])
        events, mult = schedule(first, n, rng, game)
        by_hour = {first + timedelta(hours=i): float(m) for i, m in enumerate(mult)}
        idx = ((f["hour"] - first).dt.total_hours()).to_numpy()
        parts.append(
            f.with_columns((pl.col("value") * pl.Series(mult[idx])).alias("value"))
            .with_columns(pl.lit("global").alias("region"))
            .select("ts", "game_type", "region", "metric", "value")
        )
        for k, e in enumerate(events):
            con.execute(
                "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at,"
                " batch_id) values (?, ?, ?, ?, 'global', ?, ?, 'bench')",
                [f"{game}-{k}", e.name, e.kind, game, e.start, e.end],
            ).fetchall()
        out[game] = (events, by_hour)
    _insert_metrics(con, pl.concat(parts))
    return out


# --------------------------------------------------------------------------- scoring


@dataclass
class Series:
    """One series' points per plan and level: (all hours, event hours)."""

    name: str
    at: dict[tuple[str, float], tuple[CurvePoint, CurvePoint] | None] = field(default_factory=dict)
    event_hours: int = 0


def _replay(
    ts: list[datetime],
    values: np.ndarray,
    req: BacktestRequest,
    spec,
    setting: tuple[float, float],
    events: list[EventWindow],
) -> ReplayResult:
    q, m = setting
    fleet = replace(spec, service_level=q, safety_margin=m)
    return replay(
        ts,
        values.tolist(),
        start=req.start,
        end=req.end,  # type: ignore[arg-type]
        spec=fleet,
        lead=req.lead,
        margin=req.margin,
        config=decision_config(fleet, event=EVENT_CONFIG, **NOWCAST_CHANGES),
        events=events,
    )


def score_series(
    con, name: str, req: BacktestRequest, events: list[EventWindow], mask_of
) -> Series:
    """Sweep the policy with and without events; price the references at the same levels."""
    since = req.start - timedelta(hours=req.history_hours)
    ts, values = load_series(con, req, since, req.end)  # type: ignore[arg-type]
    spec = fleet_spec(con, req)
    out = Series(name)
    last: ReplayResult | None = None
    for plan, evs in (("default", []), ("events", events)):
        if plan not in POLICY_PLANS:
            continue
        pts_all, pts_ev = [], []
        for i, setting in enumerate(SETTINGS):
            r = _replay(ts, values, req, spec, setting, evs)
            dem = r.frame["demand"].fill_null(float("nan")).to_numpy()
            cap = r.frame["capacity"].to_numpy()
            mask = mask_of(r.frame["ts"].to_list())
            pts_all.append(point(dem, cap, float(i)))
            pts_ev.append(point(dem, cap, float(i), mask))
            last = r
        for lv in LEVELS:
            a, e = policy_at(pts_all, lv), policy_at(pts_ev, lv)
            out.at[(plan, lv)] = None if a is None or e is None else (a, e)
    assert last is not None
    dem = last.frame["demand"].fill_null(float("nan")).to_numpy()
    mask = mask_of(last.frame["ts"].to_list())
    out.event_hours = int(mask.sum())
    for plan, key in REFS:
        base = last.bases[key]
        for lv in LEVELS:
            p = reference_at(base, dem, last.unit, last.min_size, last.max_size, lv)
            if p is None:
                out.at[(plan, lv)] = None
                continue
            cap = sized(base, p.knob, last.unit, last.min_size, last.max_size)
            out.at[(plan, lv)] = (p, point(dem, cap, p.knob, mask))
    return out


def per_series(s: Series) -> str:
    """One series' hours short inside event hours / over all hours per plan and level ("-":
    the level is out of the plan's reach on this series)."""
    cells = []
    for plan in ("default", "events", "seasonal rule"):
        parts = []
        for lv in LEVELS:
            p = s.at.get((plan, lv))
            parts.append("-" if p is None else f"{p[1].share_short:.1%}/{p[0].share_short:.1%}")
        cells.append(f"{plan} {' '.join(parts)}")
    return "     " + " | ".join(cells)


def summary(group: str, rows: list[Series]) -> str:
    """Averages over the series; a policy level not reached counts at reactive's there."""

    def mean(plan: str, lv: float, which: int, attr: str) -> float:
        vals = []
        for s in rows:
            p = s.at.get((plan, lv))
            if p is None and plan in ("default", "events"):
                p = s.at.get(("reactive", lv))
            vals.append(math.nan if p is None else getattr(p[which], attr))
        return float(np.nanmean(vals)) if vals else math.nan

    hours = sum(s.event_hours for s in rows) / max(1, len(rows))
    lines = [f"== {group}: {len(rows)} series, {hours:.0f} event hours per series on average"]
    head = f"{'plan':<18}"
    for lv in LEVELS:
        head += f" | {'@' + format(lv, '+.0%'):>5} {'evShort':>8} {'evUnsv':>7} {'short':>7}"
        head += f" {'unsv':>7}"
    lines.append(head)
    for plan in PLANS:
        line = f"{plan:<18}"
        for lv in LEVELS:
            line += f" | {'':>5} {mean(plan, lv, 1, 'share_short'):>8.2%}"
            line += f" {mean(plan, lv, 1, 'unserved'):>7.2%}"
            line += f" {mean(plan, lv, 0, 'share_short'):>7.2%}"
            line += f" {mean(plan, lv, 0, 'unserved'):>7.2%}"
        lines.append(line)
    for plan, ref in (("events", "seasonal rule"), ("events", "default")):
        line = f"{plan + ' / ' + ref:<18}"
        for lv in LEVELS:
            line += f" | {'':>5}"
            for which, attr, w in ((1, "share_short", 8), (1, "unserved", 7)):
                a, b = mean(plan, lv, which, attr), mean(ref, lv, which, attr)
                line += f" {(a / b if b else math.inf):>{w - 1}.2f}x"
            for which, attr, w in ((0, "share_short", 7), (0, "unserved", 7)):
                a, b = mean(plan, lv, which, attr), mean(ref, lv, which, attr)
                line += f" {(a / b if b else math.inf):>{w - 1}.2f}x"
        lines.append(line)
    return "\n".join(lines)


def _pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(kv.split("=", 1)) for kv in text.split(",") if kv]  # type: ignore[misc]


def _fields(text: str, defaults: object) -> dict[str, object]:
    """``a=1,b=true`` as typed values of ``defaults``' fields of the same names."""
    out: dict[str, object] = {}
    for k, v in _pairs(text):
        old = getattr(defaults, k)
        out[k] = v.lower() in ("1", "true", "yes") if isinstance(old, bool) else type(old)(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steam", type=Path, default=None, help="folder with steam_players_hourly.csv")
    ap.add_argument("--seed", type=int, default=1, help="seed of the injected events")
    ap.add_argument("--half", choices=("tune", "test", "all"), default="all")
    ap.add_argument("--limit", type=int, default=None, help="first N Steam games only")
    ap.add_argument("--games", default=None, help="Steam game types, comma-separated")
    ap.add_argument("--no-sample", action="store_true", help="leave the sample out")
    ap.add_argument("--fleets", default=",".join(DEFAULT_FLEETS), help="game/region pairs")
    ap.add_argument("--sample-days", type=int, default=35)
    ap.add_argument("--weeks", type=int, default=4, help="sample weeks scored (the last)")
    ap.add_argument("--lead", type=int, default=1)
    ap.add_argument("--quiet", action="store_true", help="data set summaries only")
    ap.add_argument("--event", default="", help="EventConfig fields, e.g. floor=0.1,smooth=2")
    ap.add_argument("--nowcast", default="", help="NowcastConfig fields, e.g. alpha=0.5")
    ap.add_argument("--plans", default="default,events", help="policy plans replayed")
    ap.add_argument("--sweep-from", type=int, default=0, help="skip the first N knob settings")
    args = ap.parse_args(argv)
    global EVENT_CONFIG, NOWCAST_CHANGES, POLICY_PLANS, SETTINGS
    SETTINGS = SWEEP[args.sweep_from :]
    EVENT_CONFIG = EventConfig(**_fields(args.event, EventConfig()))  # type: ignore[arg-type]
    NOWCAST_CHANGES = _fields(args.nowcast, NowcastConfig())
    POLICY_PLANS = tuple(args.plans.split(","))

    groups: dict[str, list[Series]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        con = db.connect(Path(tmp) / "bench.duckdb")
        t_all = time.perf_counter()
        if args.steam is not None:
            frame = pl.read_csv(args.steam / "steam_players_hourly.csv", columns=["game_type"])
            games = sorted(frame["game_type"].unique().to_list())
            if args.half != "all":
                games = games[0 if args.half == "tune" else 1 :: 2]
            if args.games:
                games = [g for g in games if g in set(args.games.split(","))]
            games = games[: args.limit]
            injected = load_steam_events(con, args.steam, args.seed, games)
            for game in [g for g in games if g in injected]:
                events, mult = injected[game]
                req = steam_request(con, game, args.lead)

                def mask_of(ts: list[datetime], mult=mult, events=events) -> np.ndarray:
                    return np.array(
                        [
                            abs(mult.get(t, 1.0) - 1) > 0.02
                            or any(e.start <= t < e.end for e in events)
                            for t in ts
                        ]
                    )

                t0 = time.perf_counter()
                s = score_series(con, game, req, events, mask_of)
                groups.setdefault(f"steam-dev seed {args.seed} ({args.half})", []).append(s)
                if not args.quiet:
                    print(f"-- steam {game}: {s.event_hours} event hours, "
                          f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
                    print(per_series(s), flush=True)
        if not args.no_sample:
            from fleetcast.interface.sample import generate

            generate(Path(tmp) / "sample", days=args.sample_days, seed=7, end=SAMPLE_END)
            load_sample(con, Path(tmp) / "sample")
            start = SAMPLE_END - timedelta(hours=args.weeks * 168 - 1)
            for pair in args.fleets.split(","):
                game, region = pair.split("/")
                req = BacktestRequest(game, "players", start, args.lead, region, SAMPLE_END)
                since = start - timedelta(hours=req.history_hours)
                events = read_series_events(
                    con,
                    req.game_type,
                    req.region,
                    since,
                    SAMPLE_END + timedelta(hours=args.lead + 2),
                )
                pad = timedelta(hours=3)

                def mask_s(ts: list[datetime], events=events, pad=pad) -> np.ndarray:
                    return np.array(
                        [any(e.start - pad <= t < e.end + pad for e in events) for t in ts]
                    )

                t0 = time.perf_counter()
                s = score_series(con, pair, req, events, mask_s)
                groups.setdefault("sample", []).append(s)
                if not args.quiet:
                    print(f"-- sample {pair}: {len(events)} events, {s.event_hours} event "
                          f"hours, {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
                    print(per_series(s), flush=True)
        con.close()
    for name, rows in groups.items():
        print()
        print(summary(name, rows))
    print(f"\n{time.perf_counter() - t_all:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
