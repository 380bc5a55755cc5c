"""Ingest + validate end to end: real DuckDB file, real GX, files in a real landing folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from helpers_data import query

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.landing import PathRefused
from fleetcast.stages.ingest import BatchResult, ingest_paths

DATA = Path(__file__).parent / "data" / "ingest"
INJECTION = "x'; drop table metrics; --"


def land(settings: Settings, name: str, as_name: str | None = None) -> Path:
    target = settings.landing_dir / (as_name or name)
    shutil.copy(DATA / name, target)
    return target


def write(settings: Settings, name: str, text: str) -> Path:
    path = settings.landing_dir / name
    path.write_text(text)
    return path


def ingest(settings: Settings, *names: str) -> list[BatchResult]:
    return ingest_paths(settings, [Path(n) for n in names], data_docs=False)


def ledger(settings: Settings) -> list[tuple]:
    return query(
        settings,
        "select file, status, rows_in, rows_stored, rows_quarantined, message "
        "from ingest_batches order by started_at",
    )


def reasons(settings: Settings, file: str) -> dict[int, str]:
    rows = query(
        settings, "select row_number, reason from quarantine where source_file = ?", [file]
    )
    return dict(rows)


def test_planted_bad_rows_counts_add_up_each_with_a_reason(settings: Settings) -> None:
    land(settings, "metrics_planted.csv")
    [r] = ingest(settings, "metrics_planted.csv")
    assert (r.kind, r.status, r.rows_in) == ("metrics_long", "loaded", 12)
    assert r.rows_stored + r.rows_quarantined == r.rows_in
    assert (r.rows_stored, r.rows_quarantined) == (3, 9)

    got = reasons(settings, "metrics_planted.csv")
    assert sorted(got) == [2, 3, 4, 5, 6, 7, 8, 9, 12]
    assert "expect_column_pair_values_a_to_be_greater_than_b(value): players = -5.0" in got[2]
    assert "expect_column_values_to_match_regex(game_type)" in got[3]
    assert "expect_column_values_to_be_between(ts)" in got[4]  # far future
    assert "not a finite number: 'nan'" in got[5]
    assert "not a finite number: 'inf'" in got[6]
    assert "expect_column_values_to_be_unique(natural_key): repeats" in got[7]
    assert "of row 1" in got[7]
    assert "ts is not an ISO 8601 timestamp: 'not-a-time'" in got[8]
    assert "storage_pct = 101.0 is outside [0.0, 100.0]" in got[9]
    assert "game_type is missing" in got[12]

    raw = query(settings, "select raw from quarantine where row_number = 3")[0][0]
    assert json.loads(raw)["game_type"] == INJECTION  # the original row is kept, verbatim
    stored = query(settings, "select ts, game_type, region, metric, value from metrics order by 1")
    assert [(str(t), g, reg, m, v) for t, g, reg, m, v in stored] == [
        ("2024-03-01 00:00:00", "battle_royale", "eu-west", "players", 1200.0),  # first kept
        (
            "2024-03-01 04:00:00",
            "battle_royale",
            "global",
            "storage_pct",
            55.5,
        ),  # +02:00, no region
        ("2024-03-01 07:00:00", "battle_royale", "eu-west", "latency_ms", 42.0),
    ]
    [(file, status, rin, rs, rq, message)] = ledger(settings)
    assert (rin, rs, rq) == (12, 3, 9) and "unit: input rows" in message
    assert query(settings, "select count(*) from quarantine where batch_id = ?", [r.batch_id]) == [
        (9,)
    ]
    assert any("stale data" in w for w in r.warnings)  # 2024 data: a warning, not a rejection


def test_injection_string_never_reaches_tables(settings: Settings) -> None:
    write(
        settings,
        "inj.csv",
        f"ts,game_type,metric,value\n2024-01-01T00:00:00,ok,players,1\n"
        f'2024-01-01T00:00:00,"{INJECTION}",players,2\n'
        f'2024-01-01T00:00:00,ok,"{INJECTION}",3\n',
    )
    [r] = ingest(settings, "inj.csv")
    assert (r.rows_stored, r.rows_quarantined) == (1, 2)
    tables = {t for (t,) in query(settings, "show tables")}
    assert {"metrics", "quarantine", "ingest_batches", "sessions", "events"} <= tables
    assert query(settings, "select game_type, metric, value from metrics") == [
        ("ok", "players", 1.0)
    ]


def test_same_file_twice_changes_nothing(settings: Settings) -> None:
    land(settings, "metrics_planted.csv")
    ingest(settings, "metrics_planted.csv")
    before = query(settings, "select * from metrics order by all")
    quarantined = query(settings, "select count(*) from quarantine")
    land(settings, "metrics_planted.csv", "copy_of_planted.csv")
    results = ingest(settings, "metrics_planted.csv", "copy_of_planted.csv")
    assert [r.status for r in results] == ["duplicate", "duplicate"]
    assert all(r.rows_in == r.rows_stored == r.rows_quarantined == 0 for r in results)
    assert query(settings, "select * from metrics order by all") == before
    assert query(settings, "select count(*) from quarantine") == quarantined


def test_a_later_file_corrects_a_value(settings: Settings) -> None:
    head = "ts,game_type,metric,value\n"
    write(
        settings,
        "d1.csv",
        head + "2024-01-01T00:00:00,g,players,10\n2024-01-01T01:00:00,g,players,11\n",
    )
    [first] = ingest(settings, "d1.csv")
    write(
        settings,
        "d2.csv",
        head + "2024-01-01T01:00:00,g,players,99\n2024-01-01T00:00:00,g,players,10\n",
    )
    [second] = ingest(settings, "d2.csv")
    assert second.status == "loaded" and second.rows_stored == 2
    rows = query(settings, "select hour(ts), value, batch_id from metrics order by ts")
    assert rows == [(0, 10.0, first.batch_id), (1, 99.0, second.batch_id)]  # unchanged kept
    con = db.connect(settings.db_path)
    try:
        assert con.sql(db.sql("ingest_metrics_duplicate_keys")).fetchall() == []
    finally:
        con.close()


def test_wide_file_good_cells_stored_bad_row_quarantined(settings: Settings) -> None:
    land(settings, "metrics_wide.csv")
    [r] = ingest(settings, "metrics_wide.csv")
    assert (r.kind, r.rows_in, r.rows_stored, r.rows_quarantined) == ("metrics_wide", 3, 1, 2)
    assert "6 metric values stored" in r.message and "1 quarantined wide rows" in r.message
    got = reasons(settings, "metrics_wide.csv")
    assert "storage_pct = 150.0" in got[2]
    assert "no metric values" in got[3]
    stored = query(settings, "select hour(ts), metric, value from metrics order by 1, 2")
    assert stored == [
        (0, "cpu_cores", 4.0),
        (0, "players", 100.0),
        (0, "queue_len", 3.0),  # an extra, validly named numeric column is a metric too
        (0, "storage_pct", 50.0),
        (1, "players", 110.0),  # good cells of the quarantined row 2
        (1, "queue_len", 2.0),
    ]
    assert query(settings, "select distinct region from metrics") == [("us-east",)]


def test_parquet_and_jsonl_load_like_csv(settings: Settings) -> None:
    frame = pl.DataFrame(
        {
            "ts": pl.Series(
                ["2024-05-01T10:00:00+02:00", "2024-05-01T11:00:00+02:00"]
            ).str.to_datetime(time_zone="UTC"),
            "game_type": ["ranked_arena", "ranked_arena"],
            "metric": ["players", "players"],
            "value": [10.5, float("nan")],
        }
    )
    frame.write_parquet(settings.landing_dir / "m.parquet")
    write(
        settings,
        "m.jsonl",
        '{"ts": "2024-05-01T12:00:00Z", "game_type": "ranked_arena", "metric": "players", '
        '"value": 12}\n\n{"ts": "2024-05-01T13:00:00", "game_type": "ranked_arena", '
        '"region": "ap-south", "metric": "players", "value": -1}\n',
    )
    pq, js = ingest(settings, "m.parquet", "m.jsonl")
    assert (pq.kind, pq.rows_in, pq.rows_stored, pq.rows_quarantined) == ("metrics_long", 2, 1, 1)
    assert (js.kind, js.rows_in, js.rows_stored, js.rows_quarantined) == ("metrics_long", 2, 1, 1)
    assert query(settings, "select hour(ts), region, value from metrics order by ts") == [
        (8, "global", 10.5),  # 10:00+02:00 -> 08:00 UTC
        (12, "global", 12.0),
    ]
    assert "not a finite number" in reasons(settings, "m.parquet")[2]
    assert "players = -1.0" in reasons(settings, "m.jsonl")[2]


def test_sessions_and_events_files(settings: Settings) -> None:
    land(settings, "sessions.csv")
    land(settings, "events.jsonl")
    s, e = ingest(settings, "sessions.csv", "events.jsonl")
    assert (s.kind, s.rows_in, s.rows_stored, s.rows_quarantined) == ("sessions", 5, 2, 3)
    got = reasons(settings, "sessions.csv")
    assert "expect_column_pair_values_a_to_be_greater_than_b(stopped_at)" in got[2]
    assert "repeats the natural key (session_id) of row 1" in got[4]
    assert "stop is not an ISO 8601 timestamp: 'soon'" in got[5]
    assert query(
        settings, "select session_id, server_config, stopped_at from sessions order by 1"
    ) == [
        ("s-1", "large", query(settings, "select timestamp '2024-03-01 00:30:00'")[0][0]),
        ("s-3", "default", None),
    ]
    assert (e.kind, e.rows_in, e.rows_stored, e.rows_quarantined) == ("events", 5, 3, 2)
    got = reasons(settings, "events.jsonl")
    assert "expect_column_values_to_be_in_set(kind)" in got[3]
    assert "ends_at is before starts_at" in got[4]
    events = query(
        settings, "select name, game_type, region, year(starts_at) from events order by 1"
    )
    assert events == [
        ("Next season", None, None, 2031),  # planned ahead: future events are fine
        ("Patch 1.2", None, None, 2024),  # empty = all
        ("Spring Cup", "tournament_series", None, 2024),
    ]


def test_old_history_loads_with_a_freshness_warning(settings: Settings) -> None:
    write(settings, "old.csv", "ts,game_type,metric,value\n1970-01-01T00:00:00,g,players,1\n")
    [r] = ingest(settings, "old.csv")
    assert (r.status, r.rows_stored, r.rows_quarantined) == ("loaded", 1, 0)
    assert r.warnings and "stale data" in r.warnings[0]
    assert "warnings: stale data" in ledger(settings)[0][5]


def test_fresh_data_has_no_warning(settings: Settings) -> None:
    from models.clock import utcnow

    now = utcnow().replace(microsecond=0).isoformat()
    write(settings, "fresh.csv", f"ts,game_type,metric,value\n{now},g,players,1\n")
    [r] = ingest(settings, "fresh.csv")
    assert (r.status, r.rows_stored, r.warnings) == ("loaded", 1, [])


def test_wrong_schema_is_rejected_whole_and_quarantined(settings: Settings) -> None:
    land(settings, "wrong_schema.csv")
    [r] = ingest(settings, "wrong_schema.csv")
    assert (r.status, r.rows_in, r.rows_stored, r.rows_quarantined) == ("rejected", 2, 0, 2)
    assert "wrong schema" in r.message and "unrecognised columns" in r.message
    got = reasons(settings, "wrong_schema.csv")
    assert sorted(got) == [1, 2] and all(
        v.startswith("file rejected: wrong schema") for v in got.values()
    )
    assert ledger(settings)[0][1] == "rejected"


def test_no_usable_rows_and_empty_file_are_rejected(settings: Settings) -> None:
    write(settings, "allbad.csv", "ts,game_type,metric,value\n2024-01-01,g,players,-1\n")
    write(settings, "empty.csv", "ts,game_type,metric,value\n")
    bad, empty = ingest(settings, "allbad.csv", "empty.csv")
    assert (bad.status, bad.rows_in, bad.rows_quarantined) == ("rejected", 1, 1)
    assert "no usable rows" in bad.message
    assert (empty.status, empty.rows_in, empty.rows_quarantined) == ("rejected", 0, 0)
    assert "no data rows" in empty.message and "below its header" in empty.message
    assert query(settings, "select count(*) from metrics") == [(0,)]


def test_broken_file_is_an_error_and_writes_nothing(settings: Settings) -> None:
    land(settings, "broken.csv")
    (settings.landing_dir / "corrupt.parquet").write_bytes(b"PAR1 not really parquet")
    write(settings, "bad.jsonl", '{"ts": "2024-01-01T00:00:00"}\n{not json\n')
    results = ingest(settings, "broken.csv", "corrupt.parquet", "bad.jsonl")
    assert [r.status for r in results] == ["failed", "failed", "failed"]
    assert "broken.csv: cannot read as csv" in results[0].message
    assert "line 2 is not JSON" in results[2].message
    assert all("\n" not in r.message for r in results)
    assert query(settings, "select count(*) from ingest_batches") == [(0,)]
    assert query(settings, "select count(*) from quarantine") == [(0,)]


def test_paths_outside_landing_and_symlinks_are_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "x.csv"
    outside.write_text("ts,game_type,metric,value\n2024-01-01,g,players,1\n")
    (settings.landing_dir / "link.csv").symlink_to(outside)
    (settings.landing_dir / "sub").mkdir()
    (settings.landing_dir / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    for bad in [
        Path("../x.csv"),
        outside,
        Path("link.csv"),
        Path("linkdir/x.csv"),
        Path("sub/../../x.csv"),
    ]:
        with pytest.raises(PathRefused, match="outside the landing folder|symlink"):
            ingest(settings, str(bad))
    assert not settings.db_path.exists()  # refused before anything was opened or read


def test_landing_folder_reached_through_absolute_paths(settings: Settings) -> None:
    land(settings, "metrics_wide.csv")
    [r] = ingest_paths(settings, [settings.landing_dir / "metrics_wide.csv"], data_docs=False)
    assert r.status == "loaded" and r.file == "metrics_wide.csv"


def test_data_docs_are_written(settings: Settings) -> None:
    land(settings, "metrics_wide.csv")
    ingest_paths(settings, [Path("metrics_wide.csv")])
    assert (settings.docs_dir / "index.html").exists()
    assert list((settings.docs_dir / "validations").rglob("*.html"))


def test_cli_ingest(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    land(settings, "metrics_planted.csv")
    land(settings, "sessions.csv")
    args = ["--db", str(settings.db_path), "ingest", "--landing", str(settings.landing_dir)]
    assert main([*args, "--no-docs"]) == 0  # the whole landing folder
    out = capsys.readouterr().out
    assert "metrics_planted.csv" in out and "sessions.csv" in out and "loaded" in out
    assert "2 file(s): 2 loaded, 0 duplicate" in out
    assert main([*args, "--no-docs", str(settings.landing_dir / "metrics_planted.csv")]) == 0
    out = capsys.readouterr().out
    assert "duplicate" in out and "1 file(s): 0 loaded, 1 duplicate" in out

    assert main([*args, "../escape.csv"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "outside the landing folder" in err and err.count("\n") == 1

    land(settings, "broken.csv")
    assert main([*args, "--no-docs", str(settings.landing_dir / "broken.csv")]) == 1
    assert "cannot read as csv" in capsys.readouterr().err


def _project(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A working folder with the landing folder as ``landing/`` in it, as in the README."""
    project = settings.landing_dir.parent
    monkeypatch.chdir(project)
    assert settings.landing_dir.name == "landing"
    return ["--db", str(settings.db_path), "ingest", "--no-docs"]


def test_cli_paths_are_relative_to_the_working_folder(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _project(settings, monkeypatch)
    (settings.landing_dir / "day").mkdir()
    land(settings, "sessions.csv", "day/sessions.csv")
    land(settings, "metrics_wide.csv")
    assert main([*args, "landing/metrics_wide.csv"]) == 0  # README: as typed
    assert "metrics_wide.csv" in capsys.readouterr().out
    assert main([*args, "landing/"]) == 0  # the folder: the new file loads, the old is a dup
    out = capsys.readouterr().out
    assert "2 file(s): 1 loaded, 1 duplicate" in out and "day/sessions.csv" in out
    assert main([*args, "--landing", "landing", "landing/day"]) == 0
    assert "1 duplicate" in capsys.readouterr().out
    monkeypatch.chdir(settings.landing_dir / "day")  # inside the landing folder: "." works too
    assert main([*args, "--landing", "..", "."]) == 0
    capsys.readouterr()
    monkeypatch.chdir(settings.landing_dir.parent)
    # no path: the whole landing folder ($FLEETCAST_LANDING / --landing / ./landing)
    assert main(args) == 0
    assert "2 file(s): 0 loaded, 2 duplicate" in capsys.readouterr().out


def test_cli_refuses_escapes_and_symlinks_in_one_line(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    args = _project(settings, monkeypatch)
    project = settings.landing_dir.parent
    (project / "beside.csv").write_text("ts,game_type,metric,value\n2024-01-01,g,players,1\n")
    (settings.landing_dir / "link.csv").symlink_to(project / "beside.csv")
    (settings.landing_dir / "linkdir").symlink_to(project, target_is_directory=True)
    for bad in [
        "beside.csv",  # in the working folder, not in the landing folder
        "landing/../beside.csv",
        "landing/link.csv",
        "landing/linkdir/beside.csv",
        "/etc/passwd",
        "../../etc/passwd",
    ]:
        assert main([*args, bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("fleetcast ingest: refused: ") and err.count("\n") == 1, err
        assert "outside the landing folder" in err or "symlink" in err
    # the old meaning (relative to the landing folder) gets a hint, still refused
    land(settings, "sessions.csv")
    assert main([*args, "sessions.csv"]) == 2
    assert "did you mean landing/sessions.csv?" in capsys.readouterr().err
    assert not settings.db_path.exists()  # refused before anything was opened


_ROW = b"2024-01-01T00:00:00,g,players,1\n"
_LATE_NUL = b"ts,game_type,metric,value\n" + _ROW * (100 * 1024 // len(_ROW) + 1) + b"2\x00,\n"


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("garbage.csv", bytes(range(256)) * 64, "binary content (NUL byte"),
        ("garbage.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 8, "not UTF-8 text"),
        (
            "latin1.csv",
            "ts,game_type,metric,value\n2024-01-01,caf\xe9,players,1\n".encode("latin-1"),
            "not UTF-8 text",
        ),
        ("wrong.csv", b"when,what\n2024-01-01,x\n", "wrong schema"),
        ("header.csv", b"ts,game_type,metric,value\n", "no data rows"),
        ("zero.csv", b"", "empty file"),
        # good rows for 100 KiB, then a NUL byte: the whole file is checked, not its start
        ("late_nul.csv", _LATE_NUL, f"binary content (NUL byte at offset {len(_LATE_NUL) - 3})"),
    ],
)
def test_cli_rejected_file_exits_3_and_the_rest_still_loads(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: bytes,
    expect: str,
) -> None:
    args = _project(settings, monkeypatch)
    (settings.landing_dir / name).write_bytes(content)
    land(settings, "metrics_wide.csv")
    assert main([*args, "landing/"]) == 3
    captured = capsys.readouterr()
    assert f"fleetcast ingest: rejected: {name}: " in captured.err and expect in captured.err
    assert captured.err.count("\n") == 1
    assert "1 loaded" in captured.out and "1 rejected whole" in captured.out
    assert query(settings, "select count(*) from metrics")[0][0] > 0  # the good file loaded
    statuses = dict((f, s) for f, s, *_ in ledger(settings))
    assert statuses == {name: "rejected", "metrics_wide.csv": "loaded"}
    # rejected is recorded: a rerun calls the same bytes a duplicate and exits 0
    assert main([*args, f"landing/{name}"]) == 0
    assert "1 duplicate" in capsys.readouterr().out


def test_binary_garbage_is_rejected_not_called_empty(settings: Settings) -> None:
    (settings.landing_dir / "noise.csv").write_bytes(b"\x00\x01\x02\xff\xfe" * 100)
    [r] = ingest(settings, "noise.csv")
    assert r.status == "rejected" and "binary content" in r.message
    assert "empty" not in r.message


def test_utf8_chunk_boundary_does_not_cut_a_character(settings: Settings) -> None:
    from fleetcast.resources.landing import CHUNK_BYTES

    prefix = "ts,game_type,metric,value,note\n2024-01-01T00:00:00,g,players,1,"
    if len(prefix.encode()) % 2 == 0:
        prefix += "x"  # odd: the two-byte characters start at odd offsets
    filler = "é" * CHUNK_BYTES  # so one straddles the (even) end of the first chunk
    write(settings, "wide_note.csv", prefix + filler + "\n")
    [r] = ingest(settings, "wide_note.csv")
    assert "not UTF-8" not in r.message and "binary" not in r.message


def test_ingest_task_skips_unsupported_files(settings: Settings) -> None:
    from tasks.ingest import ingest_files

    land(settings, "sessions.csv")
    write(settings, "README.txt", "not data")
    results = ingest_files.fn(settings, sorted(p for p in settings.landing_dir.iterdir()))
    assert [(r.file, r.status) for r in results] == [("sessions.csv", "loaded")]


@pytest.mark.slow
def test_ingest_flow_runs_the_landing_folder(
    settings: Settings, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import IngestParams
    from flows.ingest import ingest as ingest_flow

    monkeypatch.setenv("FLEETCAST_WORK_DIR", str(settings.work_dir))
    land(settings, "metrics_wide.csv")
    land(settings, "events.jsonl")
    params = IngestParams(db=str(settings.db_path), landing=str(settings.landing_dir))
    results = ingest_flow(params)
    assert sorted((r.file, r.status) for r in results) == [
        ("events.jsonl", "loaded"),
        ("metrics_wide.csv", "loaded"),
    ]
    assert (settings.docs_dir / "index.html").exists()
    assert ingest_flow(params)[0].status == "duplicate"  # a rerun changes nothing
