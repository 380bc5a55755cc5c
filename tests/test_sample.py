"""The seeded sample-data generator: files, formats, cycles, events and planted faults."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from fleetcast.interface.cli import main
from fleetcast.interface.sample import (
    GAMES,
    REGIONS,
    SYSTEM_METRICS,
    WIDE_METRICS,
    SampleManifest,
    generate,
)
from fleetcast.resources import db
from models.names import is_valid_name

END = datetime(2026, 11, 27, 12)  # a Friday, naive UTC
DAYS = 28


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> SampleManifest:
    return generate(tmp_path_factory.mktemp("sample"), days=DAYS, seed=7, end=END)


def _read(path: Path) -> pl.DataFrame:
    """Read a sample file as text columns (bad values included), like an ingest would."""
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema=False)
    if path.suffix == ".jsonl":
        return pl.read_ndjson(path).with_columns(pl.all().cast(pl.String))
    return pl.read_parquet(path).with_columns(pl.all().cast(pl.String))


def _utc(col: str) -> pl.Expr:
    return pl.col(col).str.to_datetime(time_zone="UTC", strict=False).dt.replace_time_zone(None)


def _clean_wide(manifest: SampleManifest) -> pl.DataFrame:
    """All wide metric rows that carry no planted fault, with ts parsed to naive UTC."""
    frames = [_read(p) for p in manifest.paths["metrics_wide"]]
    wide = pl.concat(frames).unique(maintain_order=True)
    wide = wide.with_columns(_utc("ts"), pl.col("players").cast(pl.Float64, strict=False))
    return wide.filter(
        pl.col("ts") <= manifest.end,
        pl.col("players") >= 0,
        pl.col("game_type").is_in(list(GAMES)),
    )


def _with_local(frame: pl.DataFrame) -> pl.DataFrame:
    offsets = pl.col("region").replace_strict(
        {r.name: r.utc_offset_hours for r in REGIONS.values()}, return_dtype=pl.Int64
    )
    local = pl.col("ts") + pl.duration(hours=offsets)
    return frame.with_columns(
        local.dt.hour().alias("local_hour"), local.dt.weekday().alias("local_weekday")
    )


def test_same_seed_gives_identical_files_and_another_seed_does_not(
    manifest: SampleManifest, tmp_path: Path
) -> None:
    again = generate(tmp_path / "again", days=DAYS, seed=7, end=END)
    other = generate(tmp_path / "other", days=DAYS, seed=8, end=END)
    assert [f.path.name for f in again.files] == [f.path.name for f in manifest.files]
    for f in manifest.files:
        assert f.path.read_bytes() == (again.out_dir / f.path.name).read_bytes(), f.path.name
    assert again.to_dict()["counts"] == manifest.to_dict()["counts"]
    differing = [
        f.path.name
        for f in manifest.files
        if f.path.read_bytes() != (other.out_dir / f.path.name).read_bytes()
    ]
    assert "metrics_wide_battle_royale.csv" in differing
    assert "sessions.jsonl" in differing


def test_files_formats_and_columns_per_kind(manifest: SampleManifest) -> None:
    kinds = manifest.paths
    assert set(kinds) == {"metrics_wide", "metrics_long", "sessions", "events", "fleets"}
    assert {f.format for f in manifest.files} == {"csv", "parquet", "jsonl"}
    for path in kinds["metrics_wide"]:
        assert _read(path).columns == ["ts", "game_type", "region", *WIDE_METRICS]
    long = pl.read_parquet(kinds["metrics_long"][0])
    assert long.columns == ["ts", "game_type", "region", "metric", "value"]
    assert long.schema["value"] == pl.Float64
    assert set(long["metric"].unique()) == set(SYSTEM_METRICS)
    sessions = pl.read_ndjson(kinds["sessions"][0])
    assert sessions.columns == [
        "session_id", "game_type", "region", "server_config", "start", "stop",
        "peak_players", "actions_per_minute", "movement",
    ]  # fmt: skip
    events = pl.read_csv(kinds["events"][0], infer_schema=False)
    assert events.columns == ["name", "kind", "game_type", "region", "start", "end", "announced"]
    assert set(events["kind"]) <= {"tournament", "game_update", "holiday", "promotion", "other"}
    assert {"tournament", "game_update", "holiday"} <= set(events["kind"])
    for f in manifest.files:  # the manifest's row counts are the files' row counts
        assert _read(f.path).height == f.rows, f.path.name


def test_timestamps_are_hourly_iso_utc_covering_the_window(manifest: SampleManifest) -> None:
    wide = _clean_wide(manifest)
    assert wide["ts"].null_count() == 0
    assert wide["ts"].min() == manifest.start == END - timedelta(hours=DAYS * 24 - 1)
    assert wide["ts"].max() == manifest.end == END
    assert (wide["ts"].dt.minute() == 0).all()
    raw = pl.concat([_read(p).select("ts") for p in manifest.paths["metrics_wide"]])["ts"]
    assert raw.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:00:00(Z|[+-]\d\d:00)$").all()
    assert raw.str.ends_with("Z").any() and raw.str.contains(r"[+-]\d\d:00$").any()


def test_every_fleet_has_its_hours_except_the_planned_gaps(manifest: SampleManifest) -> None:
    wide = _clean_wide(manifest)
    per = {(g, r): n for g, r, n in wide.group_by("game_type", "region").len().iter_rows()}
    assert set(per) == set(manifest.fleets)
    assert len(manifest.fleets) >= 10
    assert not all(len({r for g2, r in manifest.fleets if g2 == g}) == len(REGIONS) for g in GAMES)
    hours = DAYS * 24
    missing_by_gap = {(g.game_type, g.region): 0 for g in manifest.gaps}
    for g in manifest.gaps:
        missing_by_gap[(g.game_type, g.region)] += g.hours
    assert manifest.gaps and sum(missing_by_gap.values()) >= 3
    # bad rows that replaced a real row (negative / non-numeric players) also leave an hour out
    for fleet, n in per.items():
        assert hours - missing_by_gap.get(fleet, 0) - 2 <= n <= hours - missing_by_gap.get(fleet, 0)
    for g in manifest.gaps:
        ts = wide.filter(pl.col("game_type") == g.game_type, pl.col("region") == g.region)["ts"]
        assert g.start not in ts.to_list()


def test_daily_cycle_peaks_in_the_local_evening(manifest: SampleManifest) -> None:
    wide = _with_local(_clean_wide(manifest))
    by = (
        wide.group_by("game_type", "region")
        .agg(
            pl.col("players").filter(pl.col("local_hour").is_between(19, 22)).mean().alias("eve"),
            pl.col("players").filter(pl.col("local_hour").is_between(3, 6)).mean().alias("early"),
        )
        .sort("game_type", "region")
    )
    for g, r, eve, early in by.iter_rows():
        assert eve > 2.0 * early, (g, r, eve, early)


def test_weekends_are_busier_than_weekdays(manifest: SampleManifest) -> None:
    wide = _with_local(_clean_wide(manifest))
    by = wide.group_by("game_type", "region").agg(
        pl.col("players").filter(pl.col("local_weekday") >= 6).mean().alias("weekend"),
        pl.col("players").filter(pl.col("local_weekday") <= 4).mean().alias("weekday"),
    )
    for g, r, weekend, weekday in by.iter_rows():
        assert weekend > 1.1 * weekday, (g, r, weekend, weekday)


def test_magnitudes_and_derived_resources_are_plausible(manifest: SampleManifest) -> None:
    wide = _clean_wide(manifest).with_columns(
        pl.col(m).cast(pl.Float64, strict=False) for m in WIDE_METRICS if m != "players"
    )
    peak = {
        (g, r): p
        for g, r, p in wide.group_by("game_type", "region").agg(pl.col("players").max()).rows()
    }
    assert 20_000 < peak[("battle_royale", "na-east")] < 150_000
    assert 1_000 < peak[("casual_puzzle", "eu-west")] < 10_000
    corr = (
        wide.drop_nulls()
        .group_by("game_type", "region")
        .agg(
            pl.corr("players", m).alias(m)
            for m in ("sessions", "cpu_cores", "memory_gb", "net_in_mbps", "net_out_mbps")
        )
    )
    assert corr.select(pl.min_horizontal(pl.exclude("game_type", "region")).min()).item() > 0.95
    assert (wide.drop_nulls().select(pl.exclude("ts", "game_type", "region")) >= 0).to_numpy().all()


def test_tournaments_past_and_one_within_48h_after_end(manifest: SampleManifest) -> None:
    events = pl.read_csv(manifest.paths["events"][0], infer_schema=False).with_columns(
        _utc("start"), _utc("end")
    )
    tours = events.filter(pl.col("kind") == "tournament")
    future = tours.filter(pl.col("start") > manifest.end)
    assert future.height >= 1
    assert (future["start"] <= manifest.end + timedelta(hours=48)).all()
    nxt = manifest.future_tournament
    assert manifest.end < nxt.start <= manifest.end + timedelta(hours=48)
    assert nxt.start in future["start"].to_list()
    # several past tournaments of the same kind in the same region, to learn the uplift from
    past = tours.filter(pl.col("start") <= manifest.end, pl.col("region") == nxt.region)
    assert past.height >= 4


def test_tournaments_lift_the_tournament_series_strongly(manifest: SampleManifest) -> None:
    wide = _clean_wide(manifest).filter(pl.col("game_type") == "tournament_series")
    players = {(r, t): p for t, r, p in wide.select("ts", "region", "players").iter_rows()}
    lifts = []
    for e in manifest.events:
        if e.kind != "tournament" or e.start > manifest.end:
            continue
        for h in range(1, 3):  # the middle of the tournament vs the same hour a day before
            now, before = e.start + timedelta(hours=h), e.start + timedelta(hours=h - 24)
            if (e.region, now) in players and (e.region, before) in players:
                lifts.append(players[(e.region, now)] / players[(e.region, before)])
    assert len(lifts) >= 8
    assert sorted(lifts)[len(lifts) // 2] > 2.0


def test_game_update_dips_during_maintenance(manifest: SampleManifest) -> None:
    upd = next(e for e in manifest.events if e.kind == "game_update")
    wide = _clean_wide(manifest).filter(pl.col("game_type") == upd.game_type)
    during = wide.filter(pl.col("ts") == upd.start + timedelta(hours=1))
    day_before = wide.filter(pl.col("ts") == upd.start + timedelta(hours=1 - 24))
    assert during["players"].sum() < 0.3 * day_before["players"].sum()


def test_planted_bad_rows_match_the_manifest(manifest: SampleManifest) -> None:
    """Each planted fault is found in its file; everything else passes the same checks."""
    far = manifest.end + timedelta(days=1)
    for f in manifest.files:
        frame = _read(f.path)
        ts_col = "ts" if "ts" in frame.columns else "start" if f.kind == "sessions" else None
        found: dict[str, int] = {}
        if "game_type" in frame.columns and f.kind != "events":
            found["injection_game_type"] = sum(not is_valid_name(g) for g in frame["game_type"])
        if ts_col:
            found["far_future_ts"] = frame.filter(_utc(ts_col) > far).height
            assert frame.filter(_utc(ts_col).is_null()).height == 0
        if f.kind == "metrics_wide":
            num = frame.select(pl.col(m).cast(pl.Float64, strict=False) for m in WIDE_METRICS)
            found["non_numeric"] = num.select(pl.any_horizontal(pl.all().is_null()).sum()).item()
            found["negative_players"] = num.filter(pl.col("players") < 0).height
        if f.kind == "sessions":
            found["negative_peak_players"] = frame.filter(
                pl.col("peak_players").cast(pl.Float64) < 0
            ).height
            found["duplicate"] = frame.height - frame["session_id"].n_unique()
        elif f.kind in ("metrics_wide", "metrics_long"):
            found["duplicate"] = frame.height - frame.unique().height
        found = {k: v for k, v in found.items() if v}
        assert found == f.bad_rows, f.path.name
    assert manifest.file("metrics_wide_battle_royale.csv").bad_total == 5
    assert sum(f.bad_total for f in manifest.files) >= 12
    assert manifest.to_dict()["files"][0]["bad_total"] == manifest.files[0].bad_total


def test_fleets_file_loads_into_the_fleets_table(manifest: SampleManifest, tmp_path: Path) -> None:
    fleets_df = pl.read_csv(manifest.paths["fleets"][0])
    assert fleets_df.height == len(manifest.fleets)
    assert fleets_df["asg_name"].to_list()[0] == "fc-battle_royale-na-east"
    assert dict(zip(fleets_df["game_type"], fleets_df["priority"], strict=False)) == {
        "tournament_series": 10, "ranked_arena": 20, "battle_royale": 30, "casual_puzzle": 40,
    }  # fmt: skip
    con = db.connect(tmp_path / "f.duckdb")
    try:
        con.sql("insert into fleets by name select * from fleets_df").fetchall()
        got = con.sql(
            "select count(*), min(min_size), bool_and(mode = 'scale'), min(cost_per_hour) "
            "from fleets"
        )
        assert got.fetchall() == [(len(manifest.fleets), 2, True, 0.085)]  # c6i.large's price
        # the largest hour fits under max_size for every fleet
        peaks = _clean_wide(manifest).group_by("game_type", "region").agg(pl.col("players").max())
        con.register("peaks", peaks)
        over = con.sql(
            "select f.fleet from fleets f join peaks w using (game_type, region) "
            "where w.players / f.capacity_players > f.max_size"
        ).fetchall()
        assert over == []
    finally:
        con.close()


def test_default_end_is_the_current_hour(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    m = generate(tmp_path, days=2, seed=1)
    assert m.end in (before, before + timedelta(hours=1))
    assert m.start == m.end - timedelta(hours=47)
    assert m.future_tournament.start > m.end


def test_a_month_for_all_fleets_is_fast(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    generate(tmp_path, days=30, seed=3, end=END)
    assert time.perf_counter() - t0 < 2.0  # ~0.35 s measured here


def test_days_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(tmp_path, days=0, end=END)


def test_sample_command_writes_files_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, man = tmp_path / "landing", tmp_path / "manifest.json"
    argv = ["sample", "--out", str(out), "--days", "3", "--seed", "5",
            "--end", "2026-11-27T12:00:00Z", "--manifest", str(man)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "next tournament" in printed and "metrics_long_system.parquet" in printed
    assert (out / "metrics_wide_battle_royale.csv").is_file()
    import json

    data = json.loads(man.read_text())
    assert data["end"] == "2026-11-27T12:00:00" and data["seed"] == 5
    assert data["future_tournaments"]
