"""Where the event hours' shortfalls come from: the event-aware decision path at one level of
overall over-provisioning on steam-dev with injected events (``benchmarks/events.py``'s
schedule and plan), its hours short inside event hours split by event kind and hour offset
(the hours before the start, each of the first hours, the hours after the end), against the
seasonal rule at the same level.

    nice -n 10 .venv/bin/python benchmarks/events_breakdown.py --steam ../shared/data/steam-dev
        [--half tune] [--seed 1] [--level 0.1] [--event own_events=99] [--sweep-from 4]

Each event hour gets the label of the event it is nearest to (inside one first, then the
fewest hours before or after one). Per label: its share of the event hours, the policy's and
the seasonal rule's contribution to the average share of event hours short (percentage
points; the contributions add up to the average) and the share of the label's hours short.
The policy at the level is interpolated between the two knob settings around it, as in
``models.curve.policy_at``; a series whose lowest setting is above the level is left out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks import events as bench  # noqa: E402
from benchmarks.replay import steam_request  # noqa: E402
from fleetcast.resources import db  # noqa: E402
from fleetcast.stages.backtest import SWEEP, fleet_spec, load_series  # noqa: E402
from models.curve import point, reference_at, sized  # noqa: E402
from models.events import EventConfig, EventWindow  # noqa: E402

H = timedelta(hours=1)


def label(t: datetime, events: list[EventWindow]) -> str:
    """``kind:offset`` of the event nearest to hour ``t``."""
    cands: list[tuple[int, int, str]] = []
    for e in events:
        if e.start <= t < e.end:
            k = int((t - e.start) / H)
            if e.end - e.start > 24 * H:
                b = "in0-5" if k < 6 else "in6-23" if k < 24 else "in24+"
            elif e.end - e.start >= 12 * H:
                b = "in0-3" if k < 4 else "in4-11" if k < 12 else "in12+"
            else:
                b = f"in{k}" if k < 3 else "in3+"
            cands.append((0, 0, f"{e.kind}:{b}"))
        elif e.start - 3 * H <= t < e.start:
            k = int((e.start - t) / H)
            cands.append((1, k, f"{e.kind}:pre-{k}"))
        elif e.end <= t < e.end + 36 * H:
            k = int((t - e.end) / H)
            b = f"post{k}" if k < 3 else "post3-11" if k < 12 else "post12+"
            cands.append((1, k, f"{e.kind}:{b}"))
    return min(cands)[2] if cands else "other"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steam", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--half", choices=("tune", "test"), default="tune")
    ap.add_argument("--level", type=float, default=0.10)
    ap.add_argument("--event", default="", help="EventConfig fields, e.g. own_events=99")
    ap.add_argument("--sweep-from", type=int, default=4, help="skip the first N knob settings")
    args = ap.parse_args(argv)
    bench.EVENT_CONFIG = EventConfig(**bench._fields(args.event, EventConfig()))  # type: ignore[arg-type]
    settings = SWEEP[args.sweep_from :]
    lv = args.level
    ours: dict[str, float] = defaultdict(float)
    theirs: dict[str, float] = defaultdict(float)
    share: dict[str, float] = defaultdict(float)
    n, ev_sum, sea_sum, all_sum = 0, 0.0, 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        con = db.connect(Path(tmp) / "bench.duckdb")
        frame = pl.read_csv(args.steam / "steam_players_hourly.csv", columns=["game_type"])
        games = sorted(frame["game_type"].unique().to_list())
        games = games[0 if args.half == "tune" else 1 :: 2]
        injected = bench.load_steam_events(con, args.steam, args.seed, games)
        for game in [g for g in games if g in injected]:
            events, mult = injected[game]
            req = steam_request(con, game, 1)
            since = req.start - timedelta(hours=req.history_hours)
            ts, values = load_series(con, req, since, req.end)  # type: ignore[arg-type]
            spec = fleet_spec(con, req)
            runs = [bench._replay(ts, values, req, spec, s, events) for s in settings]
            hours = runs[0].frame["ts"].to_list()
            dem = runs[0].frame["demand"].fill_null(float("nan")).to_numpy()
            caps = [r.frame["capacity"].to_numpy() for r in runs]
            pts = sorted(((point(dem, c, 0.0).over, c) for c in caps), key=lambda p: float(p[0]))
            if pts[0][0] > lv:
                print(f"-- {game}: +{lv:.0%} out of reach, left out", flush=True)
                continue
            short = np.zeros(len(hours))
            if pts[-1][0] <= lv:
                short += dem > pts[-1][1] + 1e-9
            else:
                for (oa, ca), (ob, cb) in zip(pts, pts[1:], strict=False):
                    if oa <= lv <= ob:
                        w = 0.0 if ob - oa < 1e-9 else (lv - oa) / (ob - oa)
                        short += (1 - w) * (dem > ca + 1e-9) + w * (dem > cb + 1e-9)
                        break
            last = runs[-1]
            base = last.bases["seasonal"]
            ref = reference_at(base, dem, last.unit, last.min_size, last.max_size, lv)
            assert ref is not None
            scap = sized(base, ref.knob, last.unit, last.min_size, last.max_size)
            known = ~np.isnan(dem)
            mask = np.array(
                [abs(mult.get(t, 1.0) - 1) > 0.02 or any(e.start <= t < e.end for e in events)
                 for t in hours]
            )  # fmt: skip
            n_ev = int((mask & known).sum())
            n += 1
            all_sum += float(short[known].mean())
            for j in np.flatnonzero(mask & known):
                lab = label(hours[j], events)
                ours[lab] += short[j] / n_ev
                theirs[lab] += float(dem[j] > scap[j] + 1e-9) / n_ev
                share[lab] += 1 / n_ev
            ev_sum += float(short[mask & known].sum()) / n_ev
            sea_sum += float((dem > scap + 1e-9)[mask & known].sum()) / n_ev
            print(f"-- {game}: done", flush=True)
        con.close()
    print(
        f"\n== steam-dev seed {args.seed} ({args.half}), {n} series, @+{lv:.0%}: event hours "
        f"short {ev_sum / n:.2%} (seasonal rule {sea_sum / n:.2%}, {ev_sum / sea_sum:.2f}x); "
        f"all hours {all_sum / n:.2%}"
    )
    print(f"{'kind:offset':<22} {'hours':>7} {'policy':>7} {'rule':>7} {'policy':>7} {'rule':>7}")
    print(f"{'':<22} {'share':>7} {'pp':>7} {'pp':>7} {'short':>7} {'short':>7}")
    for lab in sorted(ours, key=lambda k: -ours[k]):
        print(
            f"{lab:<22} {share[lab] / n:>7.2%} {ours[lab] / n:>7.2%} {theirs[lab] / n:>7.2%} "
            f"{ours[lab] / share[lab]:>7.0%} {theirs[lab] / share[lab]:>7.0%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
