"""Seeded sample game telemetry, written as files into a landing folder.

``generate(out_dir, days=30, seed=7, end=None)`` writes, for every fleet (one per game type and
region), hourly telemetry that looks like a live game's: a daily cycle peaking in the region's
local evening, a weekly cycle (weekends higher), gentle growth, autocorrelated multiplicative
noise, a game update (maintenance dip, then a surge), tournaments (past ones and one within 48 h
after ``end``), a holiday, a promotion, a few missing hours and a few planted bad rows. The files
are then ingested like any real file (``fleetcast ingest``):

=========================================  ============  ======================================
file                                       kind          format
=========================================  ============  ======================================
``metrics_wide_<game_type>.csv``           metrics_wide  CSV, ts with ``Z`` (three game types)
``metrics_wide_tournament_series.jsonl``   metrics_wide  JSON lines, ts with the local offset
``metrics_long_system.parquet``            metrics_long  Parquet: server_load, latency_ms,
                                                         storage_pct for every fleet
``sessions.jsonl``                         sessions      JSON lines (a sample of sessions)
``events.csv``                             events        CSV, local offsets for regional events
``fleets.csv``                             fleets        CSV, columns of the ``fleets`` table
=========================================  ============  ======================================

Deterministic for a given seed and ``end``. The manifest tells what was written, where the
bad rows are (per file and kind) and when the next tournament starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from models.records import KNOWN_METRICS

HOUR = np.timedelta64(1, "h")
FAR_FUTURE = "2099-01-01T00:00:00Z"
INJECTION_GAME_TYPE = "battle_royale'; DROP TABLE metrics; --"

SYSTEM_METRICS = ("server_load", "latency_ms", "storage_pct")  # written as a long file
WIDE_METRICS = tuple(m for m in KNOWN_METRICS if m not in SYSTEM_METRICS)  # the wide file
FLEET_COLUMNS = (
    "fleet",
    "game_type",
    "region",
    "server_config",
    "asg_name",
    "demand_metric",
    "capacity_players",
    "capacity_cpu",
    "capacity_memory_gb",
    "capacity_net_mbps",
    "processes_per_instance",
    "min_size",
    "max_size",
    "priority",
    "session_type",
    "lead_time_minutes",
    "safety_margin",
    "mode",
    "cost_per_hour",
)

# What one instance of each server configuration costs: AWS's on-demand list price for Linux in
# us-east-1 (USD per hour), so `fleetcast events`, budgets by cost and the report show dollars.
ON_DEMAND_USD_PER_HOUR = {"c6i.large": 0.085, "c6i.2xlarge": 0.34, "c6i.4xlarge": 0.68}


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Region:
    name: str
    utc_offset_hours: int  # fixed offset (no daylight saving in the sample)
    latency_ms: float  # typical round trip to the region's players


@dataclass(frozen=True)
class Game:
    name: str
    peak_hour: float  # local hour of the daily peak
    sharpness: float  # daily cycle: trough/peak = exp(-2 * sharpness)
    lunch_bump: float  # extra share around 12:30 local (casual games)
    growth_per_month: float
    players_per_session: float
    session_minutes: float
    players_per_core: float
    memory_mb_per_player: float
    net_in_kbps: float
    net_out_kbps: float
    apm: float  # actions per minute of an average player
    movement: float  # distance units per minute of an average player
    tournament_lift: float  # players multiplier during a regional tournament
    # one instance (the fleet's server configuration)
    server_config: str
    capacity_players: float
    capacity_cpu: float
    capacity_memory_gb: float
    capacity_net_mbps: float
    processes_per_instance: int
    priority: int
    session_type: str
    lead_time_minutes: int
    safety_margin: float


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("na-east", -5, 32.0),
        Region("na-west", -8, 38.0),
        Region("eu-west", 1, 28.0),
        Region("ap-southeast", 8, 45.0),
        Region("sa-east", -3, 60.0),
    )
}

GAMES: dict[str, Game] = {
    g.name: g
    for g in (
        Game(
            "battle_royale", 21.0, 0.85, 0.0, 0.05, 80.0, 25.0, 25.0, 60.0, 60.0, 250.0,
            45.0, 120.0, 1.08, "c6i.4xlarge-br", 400.0, 16.0, 32.0, 1000.0, 4, 30,
            "casual", 45, 0.10,
        ),
        Game(
            "ranked_arena", 20.5, 0.9, 0.0, 0.03, 10.0, 32.0, 40.0, 40.0, 40.0, 150.0,
            80.0, 60.0, 1.25, "c6i.2xlarge-ranked", 300.0, 8.0, 16.0, 500.0, 30, 20,
            "ranked", 30, 0.10,
        ),
        Game(
            "casual_puzzle", 20.0, 0.6, 0.12, 0.04, 1.25, 9.0, 250.0, 8.0, 8.0, 20.0,
            25.0, 2.0, 1.0, "c6i.large-puzzle", 400.0, 2.0, 4.0, 100.0, 8, 40,
            "casual", 15, 0.05,
        ),
        Game(
            "tournament_series", 20.0, 0.8, 0.0, 0.02, 16.0, 60.0, 15.0, 120.0, 80.0,
            400.0, 110.0, 80.0, 3.0, "c6i.4xlarge-tourney", 200.0, 16.0, 32.0, 1000.0, 2,
            10, "tournament", 60, 0.15,
        ),
    )
}  # fmt: skip

# Typical evening peak of concurrent players at the start of the window. Not every game is
# offered in every region.
PEAK_PLAYERS: dict[tuple[str, str], float] = {
    ("battle_royale", "na-east"): 42_000,
    ("battle_royale", "eu-west"): 36_000,
    ("battle_royale", "ap-southeast"): 30_000,
    ("battle_royale", "sa-east"): 14_000,
    ("ranked_arena", "na-east"): 9_000,
    ("ranked_arena", "eu-west"): 11_000,
    ("ranked_arena", "ap-southeast"): 7_000,
    ("casual_puzzle", "na-east"): 4_000,
    ("casual_puzzle", "na-west"): 2_500,
    ("casual_puzzle", "eu-west"): 3_000,
    ("tournament_series", "na-east"): 1_800,
    ("tournament_series", "eu-west"): 1_500,
}

# Weekly factor by local weekday (Mon..Sun), interpolated through the day.
WEEKLY = np.array([0.90, 0.88, 0.91, 0.95, 1.04, 1.22, 1.16])

TOURNAMENT_REGIONS = ("na-east", "eu-west")
TOURNAMENT_LOCAL_HOUR = 19
TOURNAMENT_HOURS = 4
TOURNAMENT_RAMP = np.array([0.8, 1.0, 1.0, 0.75])  # share of the lift in each hour


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class EventWindow:
    """An event as written to the events file; times naive UTC, '' = all."""

    name: str
    kind: str
    game_type: str
    region: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Gap:
    """Hours missing from every metrics file of one fleet."""

    game_type: str
    region: str
    start: datetime
    hours: int


@dataclass(frozen=True)
class SampleFile:
    path: Path
    kind: str  # metrics_wide | metrics_long | sessions | events | fleets
    format: str  # csv | parquet | jsonl
    rows: int  # data rows in the file, bad ones included
    bad_rows: dict[str, int] = field(default_factory=dict)  # planted kind -> count

    @property
    def bad_total(self) -> int:
        return sum(self.bad_rows.values())

    @property
    def good_rows(self) -> int:
        return self.rows - self.bad_total


@dataclass(frozen=True)
class SampleManifest:
    out_dir: Path
    seed: int
    days: int
    start: datetime  # first hour, naive UTC
    end: datetime  # last hour, naive UTC
    files: list[SampleFile]
    fleets: list[tuple[str, str]]  # (game_type, region)
    events: list[EventWindow]
    gaps: list[Gap]

    @property
    def paths(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for f in self.files:
            out.setdefault(f.kind, []).append(f.path)
        return out

    @property
    def counts(self) -> dict[str, int]:
        """Data rows written per kind (bad rows included)."""
        out: dict[str, int] = {}
        for f in self.files:
            out[f.kind] = out.get(f.kind, 0) + f.rows
        return out

    @property
    def bad_rows(self) -> dict[str, dict[str, int]]:
        """Planted bad rows per file name, by kind of fault."""
        return {f.path.name: dict(f.bad_rows) for f in self.files}

    @property
    def future_tournaments(self) -> list[EventWindow]:
        return [e for e in self.events if e.kind == "tournament" and e.start > self.end]

    @property
    def future_tournament(self) -> EventWindow:
        """The first tournament after ``end`` (it starts within 48 h of it)."""
        return min(self.future_tournaments, key=lambda e: e.start)

    def file(self, name: str) -> SampleFile:
        for f in self.files:
            if f.path.name == name:
                return f
        raise KeyError(f"no sample file named {name!r}; have {[f.path.name for f in self.files]}")

    def to_dict(self) -> dict[str, object]:
        def enc(o: object) -> object:
            if isinstance(o, datetime):
                return o.isoformat()
            if isinstance(o, Path):
                return str(o)
            if isinstance(o, dict):
                return {k: enc(v) for k, v in o.items()}
            if isinstance(o, list | tuple):
                return [enc(v) for v in o]
            return o

        return {
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "days": self.days,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "files": [enc({**asdict(f), "bad_total": f.bad_total}) for f in self.files],
            "fleets": [list(x) for x in self.fleets],
            "counts": self.counts,
            "events": [enc(asdict(e)) for e in self.events],
            "future_tournaments": [enc(asdict(e)) for e in self.future_tournaments],
            "gaps": [enc(asdict(g)) for g in self.gaps],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# --------------------------------------------------------------------------- helpers


def _floor_hour_utc(value: datetime | None) -> datetime:
    """Naive UTC datetime floored to the hour (naive input is taken as UTC)."""
    if value is None:
        value = datetime.now(UTC)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(minute=0, second=0, microsecond=0)


def _iso_z(ts: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "Z")


def _offset_suffix(hours: int) -> str:
    sign = "+" if hours >= 0 else "-"
    return f"{sign}{abs(hours):02d}:00"


def _iso_local(ts: np.ndarray, offset_hours: int) -> np.ndarray:
    local: np.ndarray = ts.astype("datetime64[s]") + np.timedelta64(offset_hours, "h")
    return np.char.add(np.datetime_as_string(local, unit="s"), _offset_suffix(offset_hours))


def _to_np(dt: datetime) -> np.datetime64:
    return np.datetime64(dt.replace(tzinfo=None), "s")


def _to_dt(ts: np.datetime64) -> datetime:
    return datetime.fromisoformat(str(ts.astype("datetime64[s]")))


def _fleet_name(game_type: str, region: str) -> str:
    return f"{game_type}-{region}"


def daily_shape(game: Game, local_hour: np.ndarray) -> np.ndarray:
    """Daily cycle in local time, 1.0 at the evening peak."""
    phase = 2 * math.pi * (local_hour - game.peak_hour) / 24.0
    shape = np.exp(game.sharpness * (np.cos(phase) - 1.0))
    if game.lunch_bump:
        shape = shape + game.lunch_bump * np.exp(-((local_hour - 12.5) ** 2) / (2 * 1.5**2))
    return shape / shape.max(initial=1e-9) if shape.size else shape


def weekly_factor(local_days: np.ndarray) -> np.ndarray:
    """Weekly factor for fractional local days since the epoch (a Thursday)."""
    # day 0 (1970-01-01) is a Thursday: weekday index 3. Interpolate between day centres.
    pos = (local_days - 0.5 + 3.0) % 7.0
    xp = np.arange(8, dtype=float)
    fp = np.append(WEEKLY, WEEKLY[0])
    return np.interp(pos, xp, fp)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class _Effect:
    """An event with the effect it has on players (the effect is not written out)."""

    window: EventWindow
    games: dict[str, float]  # game_type -> peak multiplier during the event


def _schedule_events(start: datetime, end: datetime, rng: np.random.Generator) -> list[_Effect]:
    span_h = int((end - start).total_seconds() // 3600) + 1
    effects: list[_Effect] = []

    # Tournaments: twice a week per tournament region at 19:00 local, plus the next one, which
    # starts between 4 and 28 hours after `end`.
    for region in TOURNAMENT_REGIONS:
        off = REGIONS[region].utc_offset_hours
        first = end + timedelta(hours=4)
        local = first + timedelta(hours=off)
        t = local.replace(hour=TOURNAMENT_LOCAL_HOUR) - timedelta(hours=off)
        if t < first:
            t += timedelta(days=1)
        starts = [t]
        step = 3
        while True:
            t = t - timedelta(days=step)
            step = 7 - step  # alternate 3 and 4 days: two a week
            if t + timedelta(hours=TOURNAMENT_HOURS) <= start:
                break
            starts.append(t)
        starts.sort()
        for i, s in enumerate(starts, start=1):
            scale = float(rng.uniform(0.9, 1.1))
            lifts = {
                g.name: 1.0 + (g.tournament_lift - 1.0) * scale
                for g in GAMES.values()
                if g.tournament_lift != 1.0
            }
            window = EventWindow(
                f"arena_championship_{region}_{i:02d}",
                "tournament",
                "",
                region,
                s,
                s + timedelta(hours=TOURNAMENT_HOURS),
            )
            effects.append(_Effect(window, lifts))

    def day_at(frac: float) -> datetime:
        d = start + timedelta(hours=int(span_h * frac))
        return d.replace(hour=0)

    # A game update of battle royale everywhere: 4 h maintenance from 09:00 UTC, then a surge.
    upd = day_at(0.55) + timedelta(hours=9)
    effects.append(
        _Effect(
            EventWindow("br_season_update", "game_update", "battle_royale", "", upd,
                        upd + timedelta(hours=52)),
            {"battle_royale": 1.0},
        )
    )  # fmt: skip

    # A public holiday in eu-west (a local calendar day), more play during the day.
    off = REGIONS["eu-west"].utc_offset_hours
    hol = day_at(0.78) - timedelta(hours=off)
    effects.append(
        _Effect(
            EventWindow("eu_public_holiday", "holiday", "", "eu-west", hol,
                        hol + timedelta(days=1)),
            {g: 1.0 for g in GAMES},
        )
    )  # fmt: skip

    # A casual puzzle promotion over a weekend, all regions.
    promo = day_at(0.3)
    while promo.weekday() != 4:  # Friday
        promo += timedelta(days=1)
    effects.append(
        _Effect(
            EventWindow("puzzle_weekend_boost", "promotion", "casual_puzzle", "", promo,
                        promo + timedelta(days=3)),
            {"casual_puzzle": 1.15},
        )
    )  # fmt: skip
    return effects


def _event_multiplier(
    game: Game, region: Region, ts: np.ndarray, effects: Iterable[_Effect]
) -> np.ndarray:
    mult = np.ones(ts.size)
    for eff in effects:
        w = eff.window
        if w.game_type and w.game_type != game.name:
            continue
        if w.region and w.region != region.name:
            continue
        if game.name not in eff.games:
            continue
        s, e = _to_np(w.start), _to_np(w.end)
        hours = (ts - s) / HOUR  # hours since the event started
        inside = (ts >= s) & (ts < e)
        if w.kind == "tournament":
            lift = eff.games[game.name] - 1.0
            step = np.clip(np.floor(hours), 0, TOURNAMENT_HOURS - 1).astype(int)
            ramp = TOURNAMENT_RAMP[step]
            mult = np.where(inside, mult * (1.0 + lift * ramp), mult)
        elif w.kind == "game_update":
            maint = (hours >= 0) & (hours < 4)
            after = (hours >= 4) & (ts < e)
            surge = 1.0 + 0.45 * np.exp(-(hours - 4.0) / 20.0)
            mult = np.where(maint, mult * 0.12, mult)
            mult = np.where(after, mult * surge, mult)
        elif w.kind == "holiday":
            local_hour = hours % 24.0  # the window starts at local midnight
            day_lift = 1.1 + 0.3 * np.exp(-((local_hour - 14.0) ** 2) / (2 * 3.0**2))
            mult = np.where(inside, mult * day_lift, mult)
        else:
            mult = np.where(inside, mult * eff.games[game.name], mult)
    return mult


# --------------------------------------------------------------------------- series


@dataclass
class _Series:
    game: Game
    region: Region
    ts: np.ndarray  # datetime64[s], hourly, no gaps yet
    cols: dict[str, np.ndarray]


def _simulate(
    game: Game,
    region: Region,
    ts: np.ndarray,
    effects: list[_Effect],
    rng: np.random.Generator,
) -> _Series:
    n = ts.size
    epoch_h = (ts - np.datetime64(0, "s")) / HOUR
    local_h = epoch_h + region.utc_offset_hours
    local_hour = local_h % 24.0
    elapsed_days = (epoch_h - epoch_h[0]) / 24.0

    daily = daily_shape(game, local_hour)
    weekly = weekly_factor(local_h / 24.0)
    growth = (1.0 + game.growth_per_month) ** (elapsed_days / 30.0)
    events = _event_multiplier(game, region, ts, effects)
    # multiplicative noise: slow AR(1) drift on the log scale plus hourly jitter
    eps = rng.normal(0.0, 0.025, n)
    ar = np.empty(n)
    acc = rng.normal(0.0, 0.04)
    for i in range(n):
        acc = 0.85 * acc + eps[i]
        ar[i] = acc
    jitter = rng.normal(0.0, 0.02, n)
    peak = PEAK_PLAYERS[(game.name, region.name)]
    mean = peak * daily * weekly * growth * events / 1.1  # weekly mean ~1.0, evening peak
    players = np.round(mean * np.exp(ar + jitter))
    players = np.maximum(players, 0.0)

    def noisy(x: np.ndarray, sd: float) -> np.ndarray:
        return x * np.exp(rng.normal(0.0, sd, n))

    in_tournament = np.zeros(n, dtype=bool)
    for eff in effects:
        w = eff.window
        if w.kind == "tournament" and w.region in ("", region.name):
            in_tournament |= (ts >= _to_np(w.start)) & (ts < _to_np(w.end))

    sessions = np.round(noisy(players / game.players_per_session, 0.03))
    cpu = noisy(players / game.players_per_core, 0.03) + 2.0
    mem = noisy(players * game.memory_mb_per_player / 1024.0, 0.02) + 4.0
    net_in = noisy(players * game.net_in_kbps / 1000.0, 0.04)
    net_out = noisy(players * game.net_out_kbps / 1000.0, 0.04)
    apm = noisy(game.apm * (0.94 + 0.1 * daily) * np.where(in_tournament, 1.15, 1.0), 0.04)
    movement = noisy(np.full(n, game.movement) * (0.97 + 0.05 * daily), 0.05)

    ref = peak * 1.3  # what a reactively sized fleet is built for
    load = np.clip(28.0 + 55.0 * players / ref + rng.normal(0.0, 2.5, n), 1.0, 99.5)
    latency = np.maximum(
        region.latency_ms + 30.0 * (load / 100.0) ** 3 + rng.normal(0.0, 1.5, n), 5.0
    )
    # storage fills with play and is cleaned up every Monday 03:00 local
    since_cleanup = ((local_h - (4 * 24 + 3)) % (7 * 24)) / 24.0  # days since Mon 03:00
    storage = np.clip(38.0 + 4.5 * since_cleanup * growth + rng.normal(0.0, 0.3, n), 0.0, 100.0)
    cols = {
        "players": players,
        "sessions": sessions,
        "cpu_cores": np.round(cpu, 2),
        "memory_gb": np.round(mem, 2),
        "net_in_mbps": np.round(net_in, 2),
        "net_out_mbps": np.round(net_out, 2),
        "actions_per_minute": np.round(apm, 2),
        "movement": np.round(movement, 3),
        "server_load": np.round(load, 2),
        "latency_ms": np.round(latency, 2),
        "storage_pct": np.round(storage, 2),
    }
    return _Series(game, region, ts, cols)


# --------------------------------------------------------------------------- planting faults


def _plant(
    frame: pl.DataFrame,
    rng: np.random.Generator,
    *,
    replace: dict[str, tuple[str, object]] | None = None,
    add: dict[str, tuple[str, object] | None] | None = None,
    protect_tail: int = 48,
    id_column: str | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Plant bad rows into an all-string-typed or typed frame.

    ``replace``: fault kind -> (column, bad value), written over a real row (so that row's hour
    goes missing once the bad row is quarantined). ``add``: fault kind -> (column, bad value)
    for a new row copied from a real one, or None for an exact duplicate. Faults are placed
    before the last ``protect_tail`` rows and at random positions. Returns the frame and the
    count per fault kind. With ``id_column``, added faulty rows (not duplicates) get a fresh id,
    so only the planted duplicate repeats a key.
    """
    n = frame.height
    needed = len(replace or {}) + len(add or {})
    if n < needed:
        raise ValueError(f"cannot plant {needed} bad rows into {n} rows")
    limit = n - protect_tail if n - protect_tail >= needed else n
    picks = rng.choice(limit, size=needed, replace=False)
    counts: dict[str, int] = {}
    schema = frame.schema
    pos = "_plant_pos"
    work = frame.with_row_index(pos).with_columns(pl.col(pos).cast(pl.Float64))
    k = 0
    for kind, (col, bad) in (replace or {}).items():
        i = int(picks[k])
        k += 1
        work = work.with_columns(
            pl.when(pl.col(pos) == i)
            .then(pl.lit(bad, dtype=schema[col]))
            .otherwise(pl.col(col))
            .alias(col)
        )
        counts[kind] = counts.get(kind, 0) + 1
    inserts: list[pl.DataFrame] = []
    for kind, change in (add or {}).items():
        i = int(picks[k])
        k += 1
        row = work.slice(i, 1).with_columns(pl.lit(i + 0.5 + 0.01 * k).alias(pos))
        if change is not None:
            row = row.with_columns(pl.lit(change[1], dtype=schema[change[0]]).alias(change[0]))
            if id_column is not None:
                row = row.with_columns(pl.col(id_column) + f"-{kind.replace('_', '-')}")
        inserts.append(row)
        counts[kind] = counts.get(kind, 0) + 1
    out = pl.concat([work, *inserts]).sort(pos).drop(pos)
    return out, counts


def _as_strings(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))


# --------------------------------------------------------------------------- writing


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    frame.write_csv(path)


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    frame.write_ndjson(path)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(path, statistics=False)


def _wide_frame(series: list[_Series], ts_style: str) -> pl.DataFrame:
    parts = []
    for s in series:
        ts = _iso_z(s.ts) if ts_style == "z" else _iso_local(s.ts, s.region.utc_offset_hours)
        parts.append(
            pl.DataFrame(
                {
                    "ts": ts.tolist(),
                    "game_type": [s.game.name] * s.ts.size,
                    "region": [s.region.name] * s.ts.size,
                    **{m: s.cols[m] for m in WIDE_METRICS},
                }
            ).with_columns(pl.col("players", "sessions").cast(pl.Int64))
        )
    return pl.concat(parts).sort("ts", "region", maintain_order=True)


def _long_system_frame(series: list[_Series]) -> pl.DataFrame:
    parts = []
    for s in series:
        ts = _iso_z(s.ts).tolist()
        for m in SYSTEM_METRICS:
            parts.append(
                pl.DataFrame(
                    {
                        "ts": ts,
                        "game_type": [s.game.name] * len(ts),
                        "region": [s.region.name] * len(ts),
                        "metric": [m] * len(ts),
                        "value": s.cols[m].astype(float),
                    }
                )
            )
    return pl.concat(parts).sort("ts", "game_type", "region", "metric", maintain_order=True)


def _sessions_frame(series: list[_Series], end: datetime, rng: np.random.Generator) -> pl.DataFrame:
    """A sample of game sessions: a few records per fleet and hour, in proportion to demand."""
    last = _to_np(end) + HOUR  # data covers up to the end of the last hour
    parts = []
    for s in series:
        g = s.game
        conc = s.cols["sessions"]
        lam = 4.0 * conc / max(float(conc.max(initial=0.0)), 1.0)
        k = rng.poisson(lam)
        total = int(k.sum())
        if total == 0:
            continue
        hour_ts = np.repeat(s.ts, k)
        start = hour_ts + rng.integers(0, 3600, total).astype("timedelta64[s]")
        minutes = np.maximum(rng.gamma(9.0, g.session_minutes / 9.0, total), 1.0)
        stop = start + np.round(minutes * 60).astype("timedelta64[s]")
        peak = np.maximum(
            1, np.round(g.players_per_session * rng.uniform(0.75, 1.0, total))
        ).astype(int)
        prefix = f"{g.name[:2]}-{s.region.name}-"
        ids = [f"{prefix}{x:016x}" for x in rng.integers(0, 2**62, total, dtype=np.int64)]
        stop_s = _iso_z(stop)
        parts.append(
            pl.DataFrame(
                {
                    "session_id": ids,
                    "game_type": [g.name] * total,
                    "region": [s.region.name] * total,
                    "server_config": [g.server_config] * total,
                    "start": _iso_z(start).tolist(),
                    "stop": [None if st > last else v for st, v in zip(stop, stop_s, strict=True)],
                    "peak_players": peak,
                    "actions_per_minute": np.round(rng.normal(g.apm, g.apm * 0.15, total), 1),
                    "movement": np.round(
                        np.abs(rng.normal(g.movement, g.movement * 0.2, total)), 2
                    ),
                },
                schema_overrides={"stop": pl.String},
            )
        )
    return pl.concat(parts).sort("start", "session_id")


ANNOUNCED_AHEAD = {
    "tournament": timedelta(days=7),
    "game_update": timedelta(days=3),
    "holiday": timedelta(days=60),
    "promotion": timedelta(days=7),
    "other": timedelta(days=1),
}


def _events_frame(effects: list[_Effect]) -> pl.DataFrame:
    rows = []
    for eff in sorted(effects, key=lambda e: (e.window.start, e.window.name)):
        w = eff.window
        off = REGIONS[w.region].utc_offset_hours if w.region else None

        def fmt(d: datetime, off: int | None = off) -> str:
            # regional events in the region's local offset, global ones in UTC with Z
            if off is None:
                return d.strftime("%Y-%m-%dT%H:%M:%SZ")
            return (d + timedelta(hours=off)).strftime("%Y-%m-%dT%H:%M:%S") + _offset_suffix(off)

        rows.append(
            {
                "name": w.name,
                "kind": w.kind,
                "game_type": w.game_type or None,  # empty field = all game types
                "region": w.region or None,
                "start": fmt(w.start),
                "end": fmt(w.end),
                # when the studio's calendar named it: without it, a calendar loaded today
                # would be known only from today (docs/operations.md "Events")
                "announced": fmt(w.start - ANNOUNCED_AHEAD[w.kind]),
            }
        )
    return pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})


def _fleets_frame(fleets: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []
    for game_type, region in fleets:
        g = GAMES[game_type]
        peak = PEAK_PLAYERS[(game_type, region)]
        headroom = g.tournament_lift * 1.6 if g.tournament_lift > 1.5 else 2.0
        rows.append(
            {
                "fleet": _fleet_name(game_type, region),
                "game_type": game_type,
                "region": region,
                "server_config": g.server_config,
                "asg_name": f"fc-{game_type}-{region}",
                "demand_metric": "players",
                "capacity_players": g.capacity_players,
                "capacity_cpu": g.capacity_cpu,
                "capacity_memory_gb": g.capacity_memory_gb,
                "capacity_net_mbps": g.capacity_net_mbps,
                "processes_per_instance": g.processes_per_instance,
                "min_size": 2,
                "max_size": int(math.ceil(peak * headroom / g.capacity_players)),
                "priority": g.priority,
                "session_type": g.session_type,
                "lead_time_minutes": g.lead_time_minutes,
                "safety_margin": g.safety_margin,
                "mode": "scale",
                "cost_per_hour": ON_DEMAND_USD_PER_HOUR[g.server_config.split("-")[0]],
            }
        )
    return pl.DataFrame(rows).select(FLEET_COLUMNS)


# --------------------------------------------------------------------------- entry point


def generate(
    out_dir: Path, *, days: int = 30, seed: int = 7, end: datetime | None = None
) -> SampleManifest:
    """Write a month (``days``) of hourly sample telemetry for every fleet into ``out_dir``.

    ``end`` is the last hour of data (naive = UTC; default: the current hour, so the data is
    fresh). The same ``seed`` and ``end`` give byte-identical files.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    end_h = _floor_hour_utc(end)
    start_h = end_h - timedelta(hours=days * 24 - 1)
    ts = np.arange(_to_np(start_h), _to_np(end_h) + HOUR, HOUR).astype("datetime64[s]")

    root = np.random.SeedSequence(seed)
    ev_seq, fleet_seq, gap_seq, plant_seq, sess_seq = root.spawn(5)
    effects = _schedule_events(start_h, end_h, np.random.default_rng(ev_seq))

    fleets = list(PEAK_PLAYERS)
    series = [
        _simulate(GAMES[g], REGIONS[r], ts, effects, np.random.default_rng(child))
        for (g, r), child in zip(fleets, fleet_seq.spawn(len(fleets)), strict=True)
    ]

    # Gaps: a few collector outages (missing hours in every metrics file of a fleet), kept
    # clear of the last two days so forecasts start from real data.
    gap_rng = np.random.default_rng(gap_seq)
    gaps: list[Gap] = []
    n = ts.size
    if n > 72:
        which = gap_rng.choice(len(series), size=3, replace=False)
        for hours, idx in zip((1, 2, 3), which, strict=True):
            at = int(gap_rng.integers(0, n - 48 - hours))
            s = series[int(idx)]
            keep = np.ones(s.ts.size, dtype=bool)
            keep[at : at + hours] = False
            gaps.append(Gap(s.game.name, s.region.name, _to_dt(s.ts[at]), hours))
            s.ts = s.ts[keep]
            s.cols = {k: v[keep] for k, v in s.cols.items()}

    plant = np.random.default_rng(plant_seq)
    files: list[SampleFile] = []

    # Wide CSV per game type (ts with Z); values as text so bad values can be planted.
    csv_faults: dict[str, dict[str, dict]] = {
        "battle_royale": {
            "replace": {"negative_players": ("players", "-350"), "non_numeric": ("players", "n/a")},
            "add": {
                "injection_game_type": ("game_type", INJECTION_GAME_TYPE),
                "far_future_ts": ("ts", FAR_FUTURE),
                "duplicate": None,
            },
        },
        "ranked_arena": {"replace": {"negative_players": ("players", "-12")}, "add": {}},
        "casual_puzzle": {"replace": {"non_numeric": ("cpu_cores", "#VALUE!")}, "add": {}},
    }
    for game_type, faults in csv_faults.items():
        frame = _as_strings(_wide_frame([s for s in series if s.game.name == game_type], "z"))
        frame, bad = _plant(frame, plant, replace=faults["replace"], add=faults["add"])
        path = out_dir / f"metrics_wide_{game_type}.csv"
        _write_csv(frame, path)
        files.append(SampleFile(path, "metrics_wide", "csv", frame.height, bad))

    # Wide JSON lines for the tournament series, timestamps in each region's local offset.
    frame = _wide_frame([s for s in series if s.game.name == "tournament_series"], "local")
    frame, bad = _plant(frame, plant, add={"far_future_ts": ("ts", FAR_FUTURE)})
    path = out_dir / "metrics_wide_tournament_series.jsonl"
    _write_jsonl(frame, path)
    files.append(SampleFile(path, "metrics_wide", "jsonl", frame.height, bad))

    # System metrics of every fleet, long format, Parquet.
    frame = _long_system_frame(series)
    frame, bad = _plant(
        frame,
        plant,
        add={
            "injection_game_type": ("game_type", INJECTION_GAME_TYPE),
            "far_future_ts": ("ts", FAR_FUTURE),
            "duplicate": None,
        },
        protect_tail=48 * len(series) * len(SYSTEM_METRICS),
    )
    path = out_dir / "metrics_long_system.parquet"
    _write_parquet(frame, path)
    files.append(SampleFile(path, "metrics_long", "parquet", frame.height, bad))

    # Sessions, JSON lines.
    frame = _sessions_frame(series, end_h, np.random.default_rng(sess_seq))
    frame, bad = _plant(
        frame,
        plant,
        replace={"negative_peak_players": ("peak_players", -4)},
        add={
            "injection_game_type": ("game_type", INJECTION_GAME_TYPE),
            "far_future_ts": ("start", FAR_FUTURE),
            "duplicate": None,
        },
        protect_tail=200,
        id_column="session_id",
    )
    path = out_dir / "sessions.jsonl"
    _write_jsonl(frame, path)
    files.append(SampleFile(path, "sessions", "jsonl", frame.height, bad))

    # Events and fleets: clean.
    frame = _events_frame(effects)
    path = out_dir / "events.csv"
    _write_csv(frame, path)
    files.append(SampleFile(path, "events", "csv", frame.height, {}))

    frame = _fleets_frame(fleets)
    path = out_dir / "fleets.csv"
    _write_csv(frame, path)
    files.append(SampleFile(path, "fleets", "csv", frame.height, {}))

    return SampleManifest(
        out_dir=out_dir,
        seed=seed,
        days=days,
        start=start_h,
        end=end_h,
        files=files,
        fleets=fleets,
        events=[e.window for e in sorted(effects, key=lambda e: (e.window.start, e.window.name))],
        gaps=gaps,
    )
