"""Flows end to end in Prefect's ephemeral mode (no server): the pipeline, forecast-and-scale,
two overlapping runs on one DuckDB file, a backfill run twice, artifacts, `fleetcast status`.

One pipeline run (module fixture) prepares a trained database; each test works on a copy.
Real DuckDB files, real Prophet fits (8 days of sample data), real GX, a real moto server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from helpers_aws import all_desired
from pydantic import ValidationError

from fleetcast.interface.cli import main as cli_main
from fleetcast.interface.sample import generate
from fleetcast.resources.local_aws import MotoServer, provision_groups
from fleetcast.stages.fleets import import_fleets, read_fleet_file
from flows.params import BackfillParams, ForecastAndScaleParams, PipelineParams

GAME = "casual_puzzle"
DATA_TABLES = (
    "metrics",
    "sessions",
    "events",
    "quarantine",
    "fleets",
    "models",
    "forecasts",
    "accuracy",
    "allocations",
    "overrides",
)


@dataclass
class Prepared:
    root: Path
    db: Path
    landing: Path
    moto: MotoServer
    state: object  # the pipeline's final state
    groups: list[tuple[str, int, int, int]]


def _desired(moto: MotoServer) -> dict[str, int]:
    return all_desired(moto.url)


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params or []).fetchall()
    finally:
        con.close()


def _snapshot(db: Path) -> dict[str, list[tuple]]:
    # Table names are this module's constants, not input.
    return {t: _rows(db, f"select * from {t} order by all") for t in DATA_TABLES}  # noqa: S608


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None, moto_session: MotoServer
) -> Prepared:
    from flows.pipeline import pipeline

    root = tmp_path_factory.mktemp("flows")
    landing, db = root / "landing", root / "fleetcast.duckdb"
    end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    generate(landing, days=8, seed=5, end=end - timedelta(hours=1))
    specs = read_fleet_file(landing / "fleets.csv")
    import_fleets(landing / "fleets.csv", db)
    (landing / "fleets.csv").unlink()
    moto_session.reset()
    groups = [(s.asg_name, s.min_size, s.max_size, s.min_size) for s in specs]
    provision_groups(moto_session.url, "us-east-1", groups)
    params = PipelineParams(
        game_type=GAME, db=str(db), landing=str(landing), aws_endpoint=moto_session.url
    )
    state = pipeline(params, return_state=True)
    return Prepared(root, db, landing, moto_session, state, groups)


@pytest.fixture
def copy(prepared: Prepared, tmp_path: Path) -> Iterator[Prepared]:
    """The prepared database and landing folder, copied; the moto groups reset to their min."""
    db = tmp_path / "fleetcast.duckdb"
    shutil.copy(prepared.db, db)
    landing = tmp_path / "landing"
    shutil.copytree(prepared.landing, landing)
    prepared.moto.reset()
    provision_groups(prepared.moto.url, "us-east-1", prepared.groups)
    yield Prepared(tmp_path, db, landing, prepared.moto, None, prepared.groups)


# --------------------------------------------------------------------------- parameters


def test_params_refuse_bad_names_and_ranges() -> None:
    with pytest.raises(ValidationError):
        PipelineParams(game_type="battle_royale'; DROP TABLE metrics; --")
    with pytest.raises(ValidationError):
        ForecastAndScaleParams(horizon_hours=0)
    with pytest.raises(ValidationError):
        ForecastAndScaleParams(capacity_mode="yolo")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="before start"):
        BackfillParams(start="2026-11-05", end="2026-11-01")  # type: ignore[arg-type]
    schema = PipelineParams.model_json_schema()
    assert schema["properties"]["capacity_mode"]["enum"] == ["fleet_setting", "forecast_only"]
    assert all("description" in p for p in schema["properties"].values())


def test_flow_parameter_schema_is_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.backfill import backfill
    from flows.pipeline import pipeline

    for f in (pipeline, backfill):
        schema = parameter_schema(f.fn).model_dump_for_openapi()
        assert list(schema["properties"]) == ["params"]
        assert schema["definitions"]  # a model, rendered as a form (not raw JSON)


# --------------------------------------------------------------------------- pipeline


def test_pipeline_completes_and_records_forecasts_and_decisions(prepared: Prepared) -> None:
    state = prepared.state
    assert state.is_completed(), state  # type: ignore[attr-defined]
    summary = state.result()  # type: ignore[attr-defined]
    assert summary.ingest and all(b.status in ("loaded", "rejected") for b in summary.ingest)
    assert "trained" in summary.training
    n, games = _rows(prepared.db, "select count(*), count(distinct game_type) from forecasts")[0]
    assert n == summary.forecast_rows > 0 and games == 1
    decisions = _rows(
        prepared.db,
        "select asg_name, mode, target_desired, applied_desired, applied from allocations "
        "where game_type = ?",
        [GAME],
    )
    assert len(decisions) == len(summary.decisions) >= 1
    assert _rows(prepared.db, "select count(*) from allocations where game_type <> ?", [GAME]) == [
        (0,)
    ]


def test_pipeline_publishes_artifacts_with_stable_keys(prepared: Prepared) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters as f

    wanted = {
        "forecast-casual-puzzle",
        "capacity-plan-casual-puzzle",
        "pipeline-summary-casual-puzzle",
    }
    name = "pipeline-casual_puzzle-fleet_setting"
    with get_client(sync_client=True) as client:  # filtered: the backend's reads are paged
        arts = client.read_artifacts(
            artifact_filter=f.ArtifactFilter(key=f.ArtifactFilterKey(any_=sorted(wanted)))
        )
        runs = client.read_flow_runs(
            flow_run_filter=f.FlowRunFilter(name=f.FlowRunFilterName(any_=[name]))
        )
    keys = {a.key for a in arts}
    assert wanted <= keys
    assert name in {r.name for r in runs}


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return str(max(found, key=lambda a: a.created).data)


def _inline_pngs(markdown: str) -> dict[str, bytes]:
    """The markdown's inline images by their heading."""
    import base64
    import re

    found = re.findall(
        r"### (.+)\n\n!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown
    )
    return {title: base64.b64decode(b64) for title, b64 in found}


def test_run_plots_show_capacity_against_demand_per_fleet_in_the_ui(prepared: Prepared) -> None:
    """The run's plots artifact carries, inline, one capacity-vs-demand image per fleet decided
    (titled with current -> target) and the forecast plots; each image is a real PNG."""
    images = _inline_pngs(_artifact("plots-casual-puzzle"))
    fleets = {r[0]: r[1:] for r in _rows(
        prepared.db, "select fleet, coalesce(current_desired::varchar, '?'), "
        "coalesce(applied_desired, target_desired) from allocations "
        "where game_type = ?", [GAME])}  # fmt: skip
    capacity = {t: png for t, png in images.items() if "capacity vs players" in t}
    assert len(capacity) == len(fleets) >= 1, sorted(images)
    for fleet, (current, target) in fleets.items():
        [title] = [t for t in capacity if t.startswith(f"{fleet}:")]
        assert f"({current} -> {target} instances)" in title, title
    assert any("last 3 days and forecast" in t for t in images)
    # the steps are in players, on the players per instance each decision sized with
    from datetime import datetime as dt

    from fleetcast.resources import db

    with db.session(prepared.db, read_only=True) as con:
        for fleet, inputs, instances in con.sql(
            "select fleet, inputs, coalesce(applied_desired, current_desired) from allocations "
            "where game_type = ? and coalesce(applied_desired, current_desired) is not null",
            params=[GAME],
        ).fetchall():
            per = json.loads(inputs)["processes"]["players_per_instance"]
            steps = con.sql(
                db.sql("plots_capacity_history"), params={"fleet": fleet, "since": dt(2000, 1, 1)}
            ).fetchall()
            assert [round(c, 6) for _, c in steps] == [round(instances * per, 6)], (fleet, steps)
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for png in images.values())


def test_status_command_shows_fleets_decisions_and_why(
    prepared: Prepared, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["status", "--db", str(prepared.db), "--game-type", GAME])
    out = capsys.readouterr().out
    assert code == 0
    assert "casual_puzzle-na-east" in out and "battle_royale" not in out
    assert "overrides in force: none" in out
    assert "instances for" in out  # the decision's reason, in instances and players


# --------------------------------------------------------------------------- forecast-and-scale


def test_forecast_only_records_decisions_and_changes_nothing(copy: Prepared) -> None:
    from flows.forecast_and_scale import forecast_and_scale

    before = _desired(copy.moto)
    params = ForecastAndScaleParams(
        game_type=GAME,
        db=str(copy.db),
        aws_endpoint=copy.moto.url,
        capacity_mode="forecast_only",
        horizon_hours=12,
    )
    state = forecast_and_scale(params, return_state=True)
    assert state.is_completed(), state
    decisions = state.result().decisions
    assert decisions and all(d.mode == "forecast_only" and not d.applied for d in decisions)
    assert _desired(copy.moto) == before


# --------------------------------------------------------------------------- one writer at a time

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fleetcast.config import Settings
    from fleetcast.resources.locking import run_lock
    with run_lock(Settings(db_path=Path(sys.argv[1])), wait_seconds=5, label="other run"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_two_overlapping_runs_one_waits_and_nothing_is_lost(copy: Prepared) -> None:
    from flows.forecast_and_scale import forecast_and_scale

    with duckdb.connect(str(copy.db)) as con:  # the fixture's forecasts made 3 h ago: all due
        con.execute("update forecasts set created_at = created_at - interval 3 hour")
    runs_before = _rows(copy.db, "select count(distinct run_id) from forecasts")[0][0]
    params = ForecastAndScaleParams(
        game_type=GAME, db=str(copy.db), aws_endpoint=copy.moto.url, horizon_hours=12
    )
    states: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            states.append(forecast_and_scale(params, return_state=True))
        except BaseException as exc:  # noqa: BLE001 - the test asserts none escapes
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert [s.is_completed() for s in states] == [True, True], states  # type: ignore[attr-defined]
    runs_after = _rows(copy.db, "select count(distinct run_id) from forecasts")[0][0]
    # the run that got the lock first forecast every series; the one that waited found them
    # all made within the hour (models/refresh.py) and kept them
    assert runs_after == runs_before + 1
    per_run = _rows(
        copy.db,
        "select run_id, count(*) from allocations where game_type = ? group by run_id",
        [GAME],
    )
    fleets = len(_rows(copy.db, "select fleet from fleets where game_type = ?", [GAME]))
    assert len(per_run) == 3 and all(n == fleets for _, n in per_run)  # fixture run + 2


def test_a_run_that_cannot_get_the_file_ends_cancelled_and_writes_nothing(
    copy: Prepared,
) -> None:
    from flows.forecast_and_scale import forecast_and_scale

    before = _snapshot(copy.db)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(copy.db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("locked")
        params = ForecastAndScaleParams(
            game_type=GAME, db=str(copy.db), aws_endpoint=copy.moto.url, lock_wait_minutes=0.02
        )
        state = forecast_and_scale(params, return_state=True)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert state.is_cancelled(), state
    assert "another fleetcast run is writing" in (state.message or "")
    assert _snapshot(copy.db) == before


# --------------------------------------------------------------------------- backfill


def _late_file(copy: Prepared, day: str) -> Path:
    """Corrected values for a day of casual_puzzle players that was already ingested."""
    rows = _rows(
        copy.db,
        "select ts, game_type, region, metric, value from metrics "
        "where game_type = ? and metric = 'players' order by ts limit 48",
        [GAME],
    )
    frame = pl.DataFrame(
        rows, schema=["ts", "game_type", "region", "metric", "value"], orient="row"
    ).with_columns(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), (pl.col("value") * 1.05).round(1)
    )
    path = copy.landing / day / "late_players.csv"
    path.parent.mkdir(parents=True)
    frame.write_csv(path)
    return path


def test_backfill_twice_gives_the_same_tables_as_once(copy: Prepared) -> None:
    from flows.backfill import backfill

    today = datetime.now(UTC).date()
    _late_file(copy, today.isoformat())
    params = BackfillParams(
        start=today, end=today, game_type=GAME, db=str(copy.db), landing=str(copy.landing)
    )
    first = backfill(params, return_state=True)
    assert first.is_completed(), first
    s1 = first.result()
    assert sum(b.rows_stored for b in s1.ingest) == 48  # the late corrections
    assert s1.forecast_rows and s1.forecast_rows > 0
    once = _snapshot(copy.db)
    ledger_once = _rows(copy.db, "select count(*) from ingest_batches")[0][0]

    second = backfill(params, return_state=True)
    assert second.is_completed(), second
    s2 = second.result()
    assert {b.status for b in s2.ingest} == {"duplicate"}
    assert _snapshot(copy.db) == once  # every data table as the first run left it
    ledger = _rows(
        copy.db,
        "select status, sum(rows_stored) from (select *, row_number() over "
        "(order by started_at, batch_id) as n from ingest_batches) where n > ? group by status",
        [ledger_once],
    )
    assert ledger in ([], [("duplicate", 0)])  # the ledger only records the skipped files


def test_backfill_replay_shows_capacity_against_demand_in_the_ui(copy: Prepared) -> None:
    """Replayed decisions come with a figures table and, inline, one capacity-vs-demand plot
    per fleet replayed, written beside its plan CSV."""
    from flows.backfill import backfill

    today = datetime.now(UTC).date()
    params = BackfillParams(
        start=today - timedelta(days=2), end=today, game_type=GAME, db=str(copy.db),
        landing=str(copy.landing), replay_decisions=True,
    )  # fmt: skip
    state = backfill(params, return_state=True)
    assert state.is_completed(), state
    replays = state.result().replays
    fleets = {f for (f,) in _rows(copy.db, "select fleet from fleets where game_type = ?", [GAME])}
    assert {r["fleet"] for r in replays} == fleets
    assert all(Path(r["plot"]).is_file() and Path(r["plot"]).suffix == ".png" for r in replays)
    images = _inline_pngs(_artifact("backfill-plots-casual-puzzle"))
    assert {t.split(":")[0] for t in images} == fleets
    assert "hours short" in _artifact("backfill-replay-casual-puzzle")


def test_backfill_range_selects_files_by_day(copy: Prepared) -> None:
    from fleetcast.config import Settings
    from fleetcast.stages.orchestration import landing_files_between

    late = _late_file(copy, "2026-01-03")
    settings = Settings(landing_dir=copy.landing)
    from datetime import date

    assert landing_files_between(settings, date(2026, 1, 3), date(2026, 1, 3)) == [late]
    assert late not in landing_files_between(settings, date(2026, 1, 4), date(2026, 1, 9))


def test_change_held_by_a_fleet_rule_is_recorded_and_stays_pending_without_an_answer(
    copy: Prepared,
) -> None:
    """A rule of 0 instances on every fleet: every change waits. The run records them pending
    (before asking), applies none, asks, gets no answer within its wait, and says so on the
    records; the changes stay pending for `fleetcast approve|reject` (the run parameter no
    longer decides: the fleet's rule does)."""
    from flows.forecast_and_scale import forecast_and_scale

    db_args = ["--db", str(copy.db)]
    assert (
        cli_main(["approval", "set", *db_args, "--game-type", GAME, "--max-change-instances", "0"])
        == 0
    )
    before = _desired(copy.moto)
    params = ForecastAndScaleParams(
        game_type=GAME,
        db=str(copy.db),
        aws_endpoint=copy.moto.url,
        horizon_hours=12,
        approval_timeout_minutes=0.05,
        observed_max_age_minutes=1,  # no observed demand: no scale-out exception past the band
    )
    state = forecast_and_scale(params, return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    held = [d for d in summary.decisions if d.status == "pending"]
    assert held, [d.reason for d in summary.decisions]
    assert _desired(copy.moto) == before
    pending = _rows(
        copy.db,
        "select fleet, current_desired, proposed_desired, status, waiting from pending_changes",
    )
    assert {f for f, *_ in pending} == {d.fleet for d in held}
    assert all(
        s == "pending" and "stopped waiting" in w and "no answer" in w for *_, s, w in pending
    )
    assert {c.fleet for c in summary.approvals} == {d.fleet for d in held}
    assert any("stopped waiting" in n for n in summary.notes)
