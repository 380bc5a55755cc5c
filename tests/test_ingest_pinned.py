"""``fleetcast.stages.ingest`` pinned exactly, fast enough to run once per mutant.

Real DuckDB files and real GX, files in a real landing folder; one validator per module (as
one ingest run uses one for every file). Every input row is checked stored or quarantined with
its exact reason and raw text, every ledger column is checked, and the messages are compared
whole. ``great_expectations`` is imported here, at collection, so that mutmut's fork server
pays for the import once instead of every mutant's test run (it is most of a validator's
first-use cost; building the context and suites takes about 0.1 s).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from pathlib import Path

import great_expectations  # noqa: F401  (imported once in the mutation fork server; see above)
import polars as pl
import pytest
from helpers_data import query as rows

import fleetcast.stages.ingest as ingest
from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.landing import checksum
from fleetcast.stages.ingest import (
    BatchResult,
    format_summary,
    ingest_file,
    ingest_paths,
    plan_batch,
    totals_line,
)
from models.clock import utcnow
from models.validation import FrameValidator, Limits

STAGES = "select view_name from duckdb_views() where temporary and not internal"
NOW = dt.datetime(2024, 3, 1, 12)  # the run's "now" for the time limits


BATCH_ID = re.compile(r"b-(\d{8}T\d{6})-[0-9a-f]{8}")


UNIQUE = "expect_column_values_to_be_unique(natural_key): repeats the natural key"


BETWEEN = "expect_column_pair_values_a_to_be_greater_than_b(value)"


REGEX = "expect_column_values_to_match_regex(game_type)"


UNPARSEABLE = "expect_column_values_to_be_null(unparseable)"


VALUE_MISSING = "expect_column_values_to_not_be_null(value): value is missing"


NAME_RULE = "use 1-64 lowercase letters, digits, '_' or '-'"


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator(None)


@pytest.fixture
def limits_settings(settings: Settings) -> Settings:
    """Time limits other than the defaults, so a test sees that ingest reads them."""
    return replace(settings, future_skew_minutes=90, freshness_hours=8)


def write(settings: Settings, name: str, text: str | bytes) -> Path:
    path = settings.landing_dir / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def run(
    settings: Settings, validator: FrameValidator, *names: str, now: dt.datetime | None = NOW
) -> list[BatchResult]:
    results = []
    with db.session(settings.db_path) as con:
        for n in names:
            results.append(ingest_file(con, settings, validator, settings.landing_dir / n, now=now))
            assert con.sql(STAGES).fetchall() == []  # no staged frame left registered
    return results


def metrics(settings: Settings) -> list[tuple]:
    return rows(settings, "select ts, game_type, region, metric, value, batch_id from metrics "
                "order by all")  # fmt: skip


def quarantine(settings: Settings) -> list[tuple]:
    """(batch_id, file, row number, raw row as a dict, reason), in batch then row order."""
    got = rows(settings, "select batch_id, source_file, row_number, raw, reason from quarantine "
               "order by created_at, batch_id, row_number")  # fmt: skip
    return [(b, f, n, json.loads(raw), reason) for b, f, n, raw, reason in got]


def ledger(settings: Settings) -> list[tuple]:
    return rows(settings, "select batch_id, file, checksum, kind, status, rows_in, rows_stored, "
                "rows_quarantined, message, started_at, finished_at from ingest_batches "
                "order by started_at")  # fmt: skip


def check_batch(settings: Settings, r: BatchResult, path: Path, t0: dt.datetime) -> None:
    """The ledger row of ``r``: every column, the time columns by the batch id and the clock."""
    [row] = [x for x in ledger(settings) if x[0] == r.batch_id]
    message = r.message + (" | warnings: " + "; ".join(r.warnings) if r.warnings else "")
    assert row[:9] == (r.batch_id, r.file, checksum(path), r.kind, r.status, r.rows_in,
                       r.rows_stored, r.rows_quarantined, message)  # fmt: skip
    started, finished = row[9], row[10]
    assert t0 <= started <= finished <= utcnow()
    match = BATCH_ID.fullmatch(r.batch_id or "")
    assert match and match.group(1) == f"{started:%Y%m%dT%H%M%S}"
    created = rows(settings, "select distinct created_at from quarantine where batch_id = ?",
                   [r.batch_id])  # fmt: skip
    assert created in ([], [(started,)])  # the quarantine rows carry the batch's start


LONG = (
    "ts,game_type,region,metric,value\n"
    "2024-03-01T00:00:00,br,eu,players,10\n"  # 1 good
    "2024-03-01T01:00:00,br,eu,players,-5\n"  # 2 below the metric's range
    "2024-03-01T00:00:00,br,eu,players,11\n"  # 3 repeats row 1's key
    "2024-03-01T02:00:00,Bad!,eu,players,1\n"  # 4 invalid name
    "2024-03-01T13:20:00,br,eu,players,7\n"  # 5 within now + 90 min: stored
    "2024-03-01T13:40:00,br,eu,players,8\n"  # 6 beyond now + 90 min
    "2024-03-01T03:00:00,br,eu,players,abc\n"  # 7 not a number
    "2024-03-01T01:30:00,br,,cpu_cores,2\n"  # 8 good, no region: global
    "2024-03-01T05:00:00,Bad!,eu,players,-1\n"  # 9 two reasons
)


WIDE = (
    "ts,game_type,region,players,cpu_cores,queue_len\n"
    "2024-03-01T00:00:00,br,eu,100,4,1\n"  # 1 good: three values
    "2024-03-01T01:00:00,br,eu,,,\n"  # 2 every metric cell empty: nothing to store
    "2024-03-01T02:00:00,br,eu,abc,5,2\n"  # 3 one bad cell: quarantined, two good cells stored
    "2024-03-01T03:00:00,br,eu,120,,\n"  # 4 empty cells (not measured): stored
    "yesterday,br,eu,100,4,1\n"  # 5 bad ts: no cell stored
    "2024-03-01T05:00:00,br,eu,nan,inf,\n"  # 6 every cell bad
)


SCHEMA = (
    "rejected: wrong schema: unrecognised columns ['what', 'when']: expected metrics long (ts, "
    "game_type, metric, value), metrics wide (ts, game_type, <metric>...), sessions (session_id, "
    "game_type, start, ...) or events (name, kind, start, end, ...)"
)


def ALLBAD_RAW(value: str) -> dict[str, str]:  # noqa: N802
    return {"ts": "2024-01-01", "game_type": "g", "metric": "players", "value": value}


def test_long_file_every_row_stored_or_quarantined_with_its_exact_reason(
    limits_settings: Settings, validator: FrameValidator
) -> None:
    s = limits_settings
    path = write(s, "long.csv", LONG)
    t0 = utcnow()
    [r] = run(s, validator, "long.csv")
    assert replace(r, batch_id=None) == BatchResult(
        None, "long.csv", "metrics_long", "loaded", 9, 3, 6,
        "unit: input rows; 3 stored, 6 quarantined", [],
    )  # fmt: skip
    assert r.ok
    b = r.batch_id
    assert metrics(s) == [
        (dt.datetime(2024, 3, 1, 0), "br", "eu", "players", 10.0, b),
        (dt.datetime(2024, 3, 1, 1, 30), "br", "global", "cpu_cores", 2.0, b),
        (dt.datetime(2024, 3, 1, 13, 20), "br", "eu", "players", 7.0, b),
    ]
    head = ["ts", "game_type", "region", "metric", "value"]
    raw = [dict(zip(head, line.split(","), strict=True)) for line in LONG.splitlines()[1:]]
    bad_name = f"{REGEX}: invalid game_type 'Bad!': {NAME_RULE}"
    assert quarantine(s) == [
        (b, "long.csv", 2, raw[1], f"{BETWEEN}: players = -5.0 is outside [0.0, 1000000000.0]"),
        (b, "long.csv", 3, raw[2], f"{UNIQUE} (ts, game_type, region, metric) of row 1"),
        (b, "long.csv", 4, raw[3], bad_name),
        (b, "long.csv", 6, raw[5], "expect_column_values_to_be_between(ts): ts "
         "2024-03-01 13:40:00.000000 is outside [1900-01-01 00:00:00, now + 1:30:00]"),
        (b, "long.csv", 7, raw[6], f"{UNPARSEABLE}: value is not a finite number: 'abc' | "
         f"{VALUE_MISSING}"),
        (b, "long.csv", 9, raw[8], f"{BETWEEN}: players = -1.0 is outside [0.0, 1000000000.0]"
         f" | {bad_name}"),
    ]  # fmt: skip
    check_batch(s, r, path, t0)


def test_plan_batch_is_pure_and_rejects_before_validating(validator: FrameValidator) -> None:
    limits = Limits(now=NOW)
    raw = pl.DataFrame({"ts": ["2024-03-01T00:00:00"], "game_type": ["g"], "players": ["x"]})
    plan = plan_batch(raw, validator, limits)
    assert (plan.kind, plan.table, plan.status, plan.message) == (
        None, None, "rejected", "rejected: wrong schema: wide metrics columns ['players'] hold "
        "no numbers")  # fmt: skip
    assert plan.stored.shape == (0, 0) and plan.warnings == []
    text = json.dumps(raw.row(0, named=True), separators=(",", ":"))
    assert plan.quarantined.to_dicts() == [
        {"_row": 1, "raw": text, "reason": f"file {plan.message}"}
    ]
    assert raw.columns == ["ts", "game_type", "players"]  # not mutated
    empty = plan_batch(pl.DataFrame(), validator, limits)
    assert (empty.status, empty.message, empty.quarantined.height) == (
        "rejected", "rejected: empty file", 0)  # fmt: skip
    assert empty.quarantined.schema == pl.Schema({"_row": pl.Int64, "raw": pl.String,
                                                  "reason": pl.String})  # fmt: skip
    rejected = plan_batch(
        pl.DataFrame({"ts": ["2024-03-01"], "game_type": ["g"], "metric": ["players"],
                      "value": ["-1"]}), validator, limits)  # fmt: skip
    assert (rejected.kind, rejected.table) == ("metrics_long", "metrics")


def test_rejected_files_quarantine_every_row_with_the_file_reason(
    settings: Settings, validator: FrameValidator
) -> None:
    write(settings, "zero.csv", b"")
    write(settings, "header.csv", "ts,game_type,metric,value\n")
    write(settings, "schema.csv", "when,what\n2024-01-01,x\n,y\n")
    write(settings, "text.csv", "ts,game_type,players,mood\n2024-01-01,g,1,happy\n")
    write(settings, "allbad.csv", "ts,game_type,metric,value\n2024-01-01,g,players,-1\n"
          "2024-01-01,g,players,-2\n2024-01-01,g,players,-1\n")  # fmt: skip
    write(settings, "noise.csv", b"\x00\x01\x02\xff" * 50)
    t0 = utcnow()
    names = ["zero.csv", "header.csv", "schema.csv", "text.csv", "allbad.csv", "noise.csv"]
    results = run(settings, validator, *names)
    assert [(r.file, r.kind, r.status, r.rows_in, r.rows_stored, r.rows_quarantined, r.message)
            for r in results] == [
        ("zero.csv", None, "rejected", 0, 0, 0, "rejected: empty file"),
        ("header.csv", None, "rejected", 0, 0, 0,
         "rejected: no data rows: the file is empty below its header"),
        ("schema.csv", None, "rejected", 2, 0, 2, SCHEMA),
        ("text.csv", None, "rejected", 1, 0, 1,
         "rejected: wrong schema: wide metrics columns ['mood'] hold no numbers"),
        ("allbad.csv", "metrics_long", "rejected", 3, 0, 3,
         "rejected: no usable rows: all 3 rows failed row-level expectations"),
        ("noise.csv", None, "rejected", 0, 0, 0, "rejected: noise.csv: unreadable: binary "
         "content (NUL byte at offset 0), not a csv text file"),
    ]  # fmt: skip
    assert all(r.ok and r.warnings == [] for r in results)
    assert metrics(settings) == []
    _, schema, text, allbad, _ = (r.batch_id for r in results[1:])
    low = f"{BETWEEN}: players = {{}} is outside [0.0, 1000000000.0]"
    repeat = f"{UNIQUE} (ts, game_type, region, metric) of row 1"
    allbad_file = "file rejected: no usable rows: all 3 rows failed row-level expectations"
    assert quarantine(settings) == [
        (schema, "schema.csv", 1, {"when": "2024-01-01", "what": "x"}, f"file {SCHEMA}"),
        (schema, "schema.csv", 2, {"when": None, "what": "y"}, f"file {SCHEMA}"),
        (text, "text.csv", 1, {"ts": "2024-01-01", "game_type": "g", "players": "1",
                               "mood": "happy"}, f"file {results[3].message}"),
        (allbad, "allbad.csv", 1, ALLBAD_RAW("-1"), f"{allbad_file} | {low.format(-1.0)}"),
        (allbad, "allbad.csv", 2, ALLBAD_RAW("-2"), f"{allbad_file} | {low.format(-2.0)} | "
         f"{repeat}"),
        (allbad, "allbad.csv", 3, ALLBAD_RAW("-1"), f"{allbad_file} | {low.format(-1.0)} | "
         f"{repeat}"),
    ]  # fmt: skip
    for r, name in zip(results, names, strict=True):
        check_batch(settings, r, settings.landing_dir / name, t0)


def test_wide_file_good_cells_of_a_quarantined_row_are_stored(
    limits_settings: Settings, validator: FrameValidator
) -> None:
    """R10: one value per metric cell; a row with a bad cell is quarantined (counted once) and
    its good cells stored; the message counts values and the rows stored partly."""
    s = limits_settings
    path = write(s, "wide.csv", WIDE)
    t0 = utcnow()
    [r] = run(s, validator, "wide.csv")
    stale = ("stale data: newest ts 2024-03-01 03:00:00 is older than 8:00:00 before now "
             "(expect_column_max_to_be_between)")  # fmt: skip
    assert replace(r, batch_id=None) == BatchResult(
        None, "wide.csv", "metrics_wide", "loaded", 6, 2, 4,
        "unit: input rows; 2 stored, 4 quarantined; 6 metric values stored; 1 quarantined wide "
        "rows had their good cells stored", [stale],
    )  # fmt: skip
    b = r.batch_id
    at = lambda h: dt.datetime(2024, 3, 1, h)  # noqa: E731
    assert metrics(s) == [
        (at(0), "br", "eu", "cpu_cores", 4.0, b),
        (at(0), "br", "eu", "players", 100.0, b),
        (at(0), "br", "eu", "queue_len", 1.0, b),
        (at(2), "br", "eu", "cpu_cores", 5.0, b),
        (at(2), "br", "eu", "queue_len", 2.0, b),
        (at(3), "br", "eu", "players", 120.0, b),
    ]
    head = WIDE.splitlines()[0].split(",")
    raw = [
        {k: v or None for k, v in zip(head, line.split(","), strict=True)}
        for line in WIDE.splitlines()[1:]
    ]
    assert quarantine(s) == [
        (b, "wide.csv", 2, raw[1], "no metric values: every metric cell is empty"),
        (b, "wide.csv", 3, raw[2], f"{UNPARSEABLE}: value of players is not a finite number: "
         f"'abc' | {VALUE_MISSING}"),
        (b, "wide.csv", 5, raw[4], f"{UNPARSEABLE}: ts is not an ISO 8601 timestamp: "
         "'yesterday' | expect_column_values_to_not_be_null(ts): ts is missing"),
        (b, "wide.csv", 6, raw[5], f"{UNPARSEABLE}: value of players is not a finite number: "
         f"'nan' | {VALUE_MISSING} | {UNPARSEABLE}: value of cpu_cores is not a finite number: "
         "'inf'"),
    ]  # fmt: skip
    check_batch(s, r, path, t0)


def test_clean_files_messages_and_default_limits(
    settings: Settings, validator: FrameValidator
) -> None:
    """No bad row (the short path): the message, the values count of a wide file; and with no
    ``now`` given, the limits are the run's start and the settings' defaults."""
    fresh = utcnow().replace(microsecond=0)
    write(settings, "w.csv", f"ts,game_type,players,cpu_cores\n{fresh.isoformat()},g,5,\n"
          f"{(fresh - dt.timedelta(hours=1)).isoformat()},g,6,2\n")  # fmt: skip
    soon = fresh + dt.timedelta(minutes=10)  # within the default 15 minutes
    write(settings, "l.csv", f"ts,game_type,metric,value\n{soon.isoformat()},g,players,1\n")
    w, lo = run(settings, validator, "w.csv", "l.csv", now=None)
    assert replace(w, batch_id=None) == BatchResult(
        None, "w.csv", "metrics_wide", "loaded", 2, 2, 0,
        "unit: input rows; 2 stored, 0 quarantined; 3 metric values stored", [],
    )  # fmt: skip
    assert replace(lo, batch_id=None) == BatchResult(
        None, "l.csv", "metrics_long", "loaded", 1, 1, 0, "unit: input rows; 1 stored, 0 "
        "quarantined", [],
    )  # fmt: skip
    assert len(metrics(settings)) == 4 and quarantine(settings) == []
    assert [x[8] for x in ledger(settings)] == [w.message, lo.message]


def test_unreadable_file_fails_and_records_nothing(
    settings: Settings, validator: FrameValidator, tmp_path: Path
) -> None:
    write(settings, "broken.csv", 'ts,game_type,metric,value\n"open,a\n1,2\n')
    outside = tmp_path / "elsewhere.csv"  # ingest_file is given any path: its name as given
    outside.write_text("ts,game_type,metric,value\n2024-03-01T00:00:00,g,players,1\n")
    with db.session(settings.db_path) as con:
        broken = ingest_file(con, settings, validator, settings.landing_dir / "broken.csv")
        other = ingest_file(con, settings, validator, outside, now=NOW)
    assert broken.message.startswith("broken.csv: cannot read as csv: ")
    assert replace(broken, message="") == BatchResult(None, "broken.csv", None, "failed", 0, 0, 0)
    assert not broken.ok
    assert (other.file, other.status) == (str(outside), "loaded")
    assert [x[1] for x in ledger(settings)] == [str(outside)]


def test_a_failed_step_leaves_nothing_of_the_batch(
    settings: Settings, validator: FrameValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows, the quarantine rows and the ledger row are one transaction: when the ledger
    insert fails after the others, none of them is kept, and the connection is usable."""
    write(settings, "m.csv", "ts,game_type,metric,value\n2024-03-01T00:00:00,g,players,1\n"
          "2024-03-01T01:00:00,g,players,-1\n")  # fmt: skip
    write(settings, "n.csv", "ts,game_type,metric,value\n2024-03-01T02:00:00,g,players,2\n")
    real = ingest._ledger

    def fail(*args: object) -> None:
        raise RuntimeError("disk full")

    with db.session(settings.db_path) as con:
        monkeypatch.setattr(ingest, "_ledger", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            ingest_file(con, settings, validator, settings.landing_dir / "m.csv", now=NOW)
        counts = "select (select count(*) from metrics), (select count(*) from quarantine)"
        assert con.sql(counts).fetchall() == [(0, 0)]
        monkeypatch.setattr(ingest, "_ledger", real)
        [n] = [ingest_file(con, settings, validator, settings.landing_dir / "n.csv", now=NOW)]
    assert n.status == "loaded" and len(metrics(settings)) == 1 and len(ledger(settings)) == 1


def test_reruns_same_bytes_are_duplicates_other_bytes_change_only_corrected_values(
    settings: Settings, validator: FrameValidator
) -> None:
    """R9: the checksum skips the same bytes; the same rows in other bytes pass it, and the
    anti-join keeps the natural key unique: a corrected value replaces the old one (with the
    new batch), unchanged values keep the batch that first stored them, new keys are added."""
    head = "ts,game_type,region,metric,value\n"
    lines = [f"2024-03-01T0{h}:00:00,g,eu,players,{h}" for h in range(4)]
    path = write(settings, "a.csv", head + "\n".join(lines) + "\n")
    write(settings, "copy.csv", path.read_bytes())
    corrected = [*reversed(lines[1:]), "2024-03-01T00:00:00,g,eu,players,99",
                 "2024-03-01T05:00:00,g,eu,players,5"]  # fmt: skip
    write(settings, "c.csv", head + "\r\n".join(corrected) + "\r\n")
    t0 = utcnow()
    a, dup, c = run(settings, validator, "a.csv", "copy.csv", "c.csv")
    assert replace(dup, batch_id=None) == BatchResult(
        None, "copy.csv", None, "duplicate", 0, 0, 0,
        f"same bytes as batch {a.batch_id} (a.csv): skipped, nothing changed",
    )  # fmt: skip
    assert (c.status, c.rows_in, c.rows_stored, c.rows_quarantined) == ("loaded", 5, 5, 0)
    at = lambda h: dt.datetime(2024, 3, 1, h)  # noqa: E731
    assert metrics(settings) == [
        (at(0), "g", "eu", "players", 99.0, c.batch_id),
        (at(1), "g", "eu", "players", 1.0, a.batch_id),
        (at(2), "g", "eu", "players", 2.0, a.batch_id),
        (at(3), "g", "eu", "players", 3.0, a.batch_id),
        (at(5), "g", "eu", "players", 5.0, c.batch_id),
    ]
    for r, name in [(a, "a.csv"), (dup, "copy.csv"), (c, "c.csv")]:
        check_batch(settings, r, settings.landing_dir / name, t0)
    [again] = run(settings, validator, "c.csv")  # the newest batch's bytes: named in the message
    assert again.message == f"same bytes as batch {c.batch_id} (c.csv): skipped, nothing changed"
    assert len(ledger(settings)) == 4 and len(metrics(settings)) == 5


def test_store_with_no_rows_or_no_table_writes_nothing(settings: Settings) -> None:
    frame = pl.DataFrame({"_row": [1], "unparseable": [None], "ts": [NOW], "game_type": ["g"],
                          "region": ["global"], "metric": ["players"], "value": [1.0]})  # fmt: skip
    with db.session(settings.db_path) as con:
        ingest._store(con, "metrics", pl.DataFrame(), "b-1", NOW)
        ingest._store(con, None, frame, "b-1", NOW)
        ingest._store(con, "metrics", frame, "b-2", NOW)
    assert metrics(settings) == [(NOW, "g", "global", "players", 1.0, "b-2")]


def test_ingest_paths_no_files_and_data_docs(settings: Settings) -> None:
    assert ingest_paths(settings, [], data_docs=True) == []
    assert not settings.db_path.exists() and not settings.docs_dir.exists()
    write(settings, "a.csv", "ts,game_type,metric,value\n2024-03-01T00:00:00,g,players,1\n")
    [r] = ingest_paths(settings, [Path("a.csv")], data_docs=False)
    assert r.status == "loaded" and not settings.docs_dir.exists()
    (settings.landing_dir / "day").mkdir()
    write(settings, "day/c.csv", "ts,game_type,metric,value\n2024-03-01T02:00:00,g,players,1\n")
    [r] = ingest_paths(
        settings, [Path("c.csv")], data_docs=False, base=settings.landing_dir / "day"
    )
    assert (r.file, r.status) == ("day/c.csv", "loaded")  # relative to base, not the landing
    write(settings, "b.csv", "ts,game_type,metric,value\n2024-03-01T01:00:00,g,players,1\n")
    [r] = ingest_paths(settings, [settings.landing_dir / "b.csv"])
    assert r.status == "loaded" and r.file == "b.csv"
    assert (settings.docs_dir / "index.html").exists()
    assert list((settings.docs_dir / "validations").rglob("*.html"))


def test_sessions_and_events_stored_and_upserted_on_their_keys(
    settings: Settings, validator: FrameValidator
) -> None:
    head = "session_id,game_type,region,server_config,start,stop,peak_players\n"
    write(settings, "s1.csv", head + "s-1,br,eu,large,2024-03-01T00:00:00,2024-03-01T00:30:00,"
          "10\ns-2,br,eu,,2024-03-01T01:00:00,2024-03-01T00:30:00,5\n")  # fmt: skip
    write(settings, "s2.csv", head + "s-1,br,eu,small,2024-03-01T00:00:00,,12\n")
    ev = ('{"name": "Cup", "kind": "tournament", "game_type": "br", "start": '
          '"2024-03-10T18:00:00", "end": "2024-03-10T22:00:00"}\n')  # fmt: skip
    write(settings, "e1.jsonl", ev)
    write(settings, "e2.jsonl", ev.replace("22:00", "23:00") + ev.replace("Cup", ""))
    t0 = utcnow()
    seen: list[BatchResult] = []
    results = ingest_paths(settings, [Path("s1.csv"), Path("e1.jsonl"), Path("s2.csv"),
                           Path("e2.jsonl")], data_docs=False, on_file=seen.append)  # fmt: skip
    assert seen == results
    s1, e1, s2, e2 = results
    assert [(r.file, r.kind, r.status, r.rows_in, r.rows_stored, r.rows_quarantined)
            for r in results] == [
        ("s1.csv", "sessions", "loaded", 2, 1, 1), ("e1.jsonl", "events", "loaded", 1, 1, 0),
        ("s2.csv", "sessions", "loaded", 1, 1, 0), ("e2.jsonl", "events", "loaded", 2, 1, 1),
    ]  # fmt: skip
    t = dt.datetime
    assert rows(settings, "select session_id, server_config, stopped_at, peak_players, batch_id"
                " from sessions order by 1") == [
        ("s-1", "small", None, 12.0, s2.batch_id)]  # fmt: skip
    assert rows(settings, "select name, kind, game_type, ends_at, batch_id from events") == [
        ("Cup", "tournament", "br", t(2024, 3, 10, 23), e2.batch_id)
    ]
    got = [(b, f, n, reason) for b, f, n, _, reason in quarantine(settings)]
    assert got == [
        (s1.batch_id, "s1.csv", 2, "expect_column_pair_values_a_to_be_greater_than_b(stopped_at)"
         ": stopped_at is before started_at"),
        (e2.batch_id, "e2.jsonl", 2, "expect_column_values_to_not_be_null(name): name is missing"),
    ]  # fmt: skip
    for r, name in zip(results, ["s1.csv", "e1.jsonl", "s2.csv", "e2.jsonl"], strict=True):
        check_batch(settings, r, settings.landing_dir / name, t0)


def test_summary_and_totals_for_people() -> None:
    results = [
        BatchResult("b1", "a" * 45 + ".csv", "metrics_long", "loaded", 12, 10, 2, "ok",
                    ["stale data: old"]),
        BatchResult("b2", "dup.csv", None, "duplicate", 0, 0, 0, "same bytes as batch b1"),
        BatchResult("b3", "bad.csv", None, "rejected", 3, 0, 3, "rejected: empty file"),
        BatchResult(None, "broken.csv", None, "failed", 0, 0, 0, "cannot read"),
        BatchResult("b5", "s.csv", "sessions", "loaded", 1, 1, 0, "fine"),
    ]  # fmt: skip
    assert format_summary(results).splitlines() == [
        "file                                     kind                in   stored   quar.  status",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa metrics_long        12       10       2  loaded",
        "    warning: stale data: old",
        "dup.csv                                  "
        "-                    0        0       0  duplicate",
        "    same bytes as batch b1",
        "bad.csv                                  "
        "-                    3        0       3  rejected",
        "    rejected: empty file",
        "broken.csv                               -                    0        0       0  failed",
        "    cannot read",
        "s.csv                                    sessions             1        1       0  loaded",
        totals_line(results),
    ]
    assert totals_line(results) == (
        "5 file(s): 2 loaded, 1 duplicate (same bytes already ingested, skipped), 1 rejected "
        "whole, 1 unreadable; rows: 11 stored, 5 quarantined"
    )
    assert totals_line([]) == (
        "0 file(s): 0 loaded, 0 duplicate (same bytes already ingested, skipped), 0 rejected "
        "whole, 0 unreadable; rows: 0 stored, 0 quarantined"
    )
    assert [r.ok for r in results] == [True, True, True, False, True]


def test_ledger_message_lists_every_warning(settings: Settings) -> None:
    """A batch's warnings follow its message in the ledger, each one, separated by "; "."""
    started = dt.datetime(2024, 3, 1, 12)
    result = BatchResult("b-1", "a.csv", "sessions", "loaded", 2, 2, 0, "unit: input rows",
                         ["stale data: first", "stale data: second"])  # fmt: skip
    with db.session(settings.db_path) as con:
        ingest._ledger(con, result, "abc123", started)
    [row] = ledger(settings)
    assert row[:10] == ("b-1", "a.csv", "abc123", "sessions", "loaded", 2, 2, 0,
                        "unit: input rows | warnings: stale data: first; stale data: second",
                        started)  # fmt: skip


def test_a_wide_file_with_no_values_is_rejected_without_a_stale_warning(
    settings: Settings, validator: FrameValidator
) -> None:
    """Every metric cell empty: nothing to validate, so rejected; there is no newest timestamp,
    so no freshness warning (it said "stale data: newest ts NaT ...")."""
    path = write(settings, "empty_cells.csv", "ts,game_type,players,cpu_cores\n"
                 "2024-03-01T00:00:00,g,,\n2024-03-01T01:00:00,g,,\n")  # fmt: skip
    t0 = utcnow()
    [r] = run(settings, validator, "empty_cells.csv")
    assert replace(r, batch_id=None) == BatchResult(
        None, "empty_cells.csv", "metrics_wide", "rejected", 2, 0, 2,
        "rejected: no usable rows: nothing to validate", [],
    )  # fmt: skip
    reason = (
        "file rejected: no usable rows: nothing to validate | no metric values: every metric "
        "cell is empty"
    )
    assert [(n, raw, why) for _, _, n, raw, why in quarantine(settings)] == [
        (1, {"ts": "2024-03-01T00:00:00", "game_type": "g", "players": None, "cpu_cores": None},
         reason),
        (2, {"ts": "2024-03-01T01:00:00", "game_type": "g", "players": None, "cpu_cores": None},
         reason),
    ]  # fmt: skip
    check_batch(settings, r, path, t0)
