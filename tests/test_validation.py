"""Pure parsing (models.records) and GX suites (models.validation) on tiny literal frames."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from models.records import SchemaError, detect_kind, normalise, parse_numbers, parse_timestamps
from models.validation import FrameValidator, Limits

NOW = dt.datetime(2026, 11, 28, 12, 0)


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def test_timestamps_iso_8601_with_and_without_offset_to_naive_utc() -> None:
    raw = pl.Series(
        "ts",
        [
            "2024-01-01T10:00:00",
            "2024-01-01 10:00:00",
            "2024-01-01T10:00:00Z",
            "2024-01-01T12:00:00+02:00",
            "2024-01-01T05:30:00-0430",
            "2024-01-01T10:00:00.250",
            "2024-01-01T10:00",
            "2024-01-01",
            "1970-01-01T00:00:00",
            "2024-13-01T00:00:00",
            "yesterday",
            None,
        ],
    )
    got = parse_timestamps(raw).to_list()
    ten = dt.datetime(2024, 1, 1, 10)
    assert got[:5] == [ten, ten, ten, ten, ten]
    assert got[5] == dt.datetime(2024, 1, 1, 10, 0, 0, 250000)
    assert got[6:9] == [ten, dt.datetime(2024, 1, 1), dt.datetime(1970, 1, 1)]
    assert got[9:] == [None, None, None]


def test_numbers_must_be_finite() -> None:
    got = parse_numbers(pl.Series(["1", " 2.5 ", "1e3", "-4", "nan", "inf", "-inf", "x", ""]))
    assert got.to_list() == [1.0, 2.5, 1000.0, -4.0, None, None, None, None, None]


@pytest.mark.parametrize(
    ("columns", "kind"),
    [
        (["ts", "game_type", "metric", "value"], "metrics_long"),
        (["ts", "game_type", "region", "metric", "value"], "metrics_long"),
        (["ts", "game_type", "players", "cpu_cores"], "metrics_wide"),
        (["session_id", "game_type", "start", "stop"], "sessions"),
        (["name", "kind", "start", "end", "game_type"], "events"),
    ],
)
def test_kinds_detected_from_columns(columns: list[str], kind: str) -> None:
    assert detect_kind(columns) == kind


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["when", "who"], "unrecognised columns"),
        (["ts", "game_type", "metric", "value", "extra"], "unexpected columns"),
        (["ts", "game_type", "CPU Load"], "invalid metric column names"),
        (["ts", "game_type"], "no metric columns"),
        (["ts", "ts", "game_type"], "duplicate column names"),
        (["fleet", "game_type", "asg_name", "capacity_players"], "fleetcast fleets import FILE"),
    ],
)
def test_wrong_schemas_say_what_was_expected(columns: list[str], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        detect_kind(columns)


def test_wide_rows_become_long_values_keeping_row_numbers() -> None:
    raw = pl.DataFrame(
        {
            "ts": ["2024-01-01T00:00:00", "2024-01-01T01:00:00"],
            "game_type": ["g", "g"],
            "players": ["1", None],
            "cpu_cores": ["2", ""],
        }  # fmt: skip
    )
    norm = normalise("metrics_wide", raw)
    assert norm.frame.select("_row", "metric", "value").rows() == [
        (1, "players", 1.0),
        (1, "cpu_cores", 2.0),
    ]
    assert norm.dropped.rows() == [(2, "no metric values: every metric cell is empty")]
    assert raw.columns == ["ts", "game_type", "players", "cpu_cores"]  # not mutated


def _long(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    raw = pl.DataFrame(rows, schema=["ts", "game_type", "metric", "value"], orient="row")
    return normalise("metrics_long", raw).frame


def test_metrics_suite_flags_rows_by_expectation(validator: FrameValidator) -> None:
    frame = _long(
        [
            ("2026-11-28T11:00:00", "g", "players", "5"),
            ("2026-11-28T11:00:00", "g", "players", "6"),  # duplicate key
            ("2026-11-28T12:10:00", "g", "players", "1"),  # within the 15 min skew
            ("2026-11-28T12:30:00", "g", "players", "1"),  # beyond it
            ("2026-11-28T11:00:00", "G!", "players", "1"),
            ("2026-11-28T11:00:00", "g", "storage_pct", "100.5"),
            ("2026-11-28T11:00:00", "g", "odd_metric", "-3"),  # unknown metric: negatives ok
            ("2026-11-28T11:00:00", "g", "odd_metric2", "1e13"),  # but not absurd
        ]
    )
    verdict = validator.validate("metrics", frame, Limits(now=NOW))
    by_pos = dict(verdict.failures.group_by("_pos").agg(pl.col("reason").str.join("|")).rows())
    assert sorted(by_pos) == [1, 3, 4, 5, 7]
    assert "expect_column_values_to_be_unique" in by_pos[1]
    assert "expect_column_values_to_be_between(ts)" in by_pos[3]
    assert "expect_column_values_to_match_regex(game_type)" in by_pos[4]
    assert "storage_pct = 100.5" in by_pos[5]
    assert "odd_metric2" in by_pos[7]
    assert not verdict.rejected and verdict.warnings == []


def test_freshness_is_a_warning_only(validator: FrameValidator) -> None:
    frame = _long([("2026-11-27T00:00:00", "g", "players", "5")])
    verdict = validator.validate("metrics", frame, Limits(now=NOW))
    assert verdict.failures.height == 0 and not verdict.rejected
    assert len(verdict.warnings) == 1 and "expect_column_max_to_be_between" in verdict.warnings[0]


def test_all_rows_bad_rejects_the_table(validator: FrameValidator) -> None:
    frame = _long([("2026-11-28T11:00:00", "g", "players", "-1")])
    verdict = validator.validate("metrics", frame, Limits(now=NOW))
    assert verdict.rejected and "no usable rows" in verdict.table_errors[0]


def test_events_suite(validator: FrameValidator) -> None:
    raw = pl.DataFrame(
        {
            "name": ["Cup", "Cup", "", "Sale"],
            "kind": ["tournament", "tournament", "holiday", "promotion"],
            "game_type": ["arena", "arena", "", "Bad Name"],
            "start": ["2030-01-01T00:00:00"] * 4,
            "end": ["2030-01-02T00:00:00", "2030-01-02T00:00:00", "2030-01-02", "2030-01-02"],
        }
    )
    frame = normalise("events", raw).frame
    verdict = validator.validate("events", frame, Limits(now=NOW))
    failed = sorted(set(verdict.failures.get_column("_pos").to_list()))
    assert failed == [1, 2, 3]  # duplicate, missing name, invalid game type; future is fine


def _hostile_metrics(seed: int, n: int = 3000) -> pl.DataFrame:
    """A raw (all-text) long metrics frame of 30 series with faults planted at random rows:
    unparseable ts/value, missing cells, far-future and pre-1900 ts, values outside their
    metric's bounds, repeated keys, bad names."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        s = i % 30
        rows.append(
            {
                "ts": (dt.datetime(2026, 1, 1) + dt.timedelta(hours=i // 30)).isoformat(),
                "game_type": f"game_{s % 6}",
                "region": f"r{s // 6}",
                "metric": ("players", "storage_pct", "latency_ms")[s % 3],
                "value": f"{rng.uniform(0, 90):.2f}",
            }
        )
    faults = [
        ("ts", "not-a-time"), ("ts", None), ("ts", "2999-01-01T00:00:00"),
        ("ts", "1850-06-01T00:00:00"), ("value", "abc"), ("value", None), ("value", "inf"),
        ("value", "-5"), ("value", "1e15"), ("game_type", "Bad Name"), ("metric", None),
        ("region", "x'; drop table metrics; --"),
    ]  # fmt: skip
    for row in rng.sample(range(n), 40):
        column, bad = rng.choice(faults)
        rows[row][column] = bad
        if rng.random() < 0.3:  # and some rows repeat another row's key
            rows[rng.randrange(n)].update({k: rows[row][k] for k in ("ts", "game_type", "region")})
    for row in rng.sample(range(n), 5):  # storage above 100 % on storage series only
        if rows[row]["metric"] == "storage_pct":
            rows[row]["value"] = "140"
    return pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_summary_screen_gives_the_verdict_of_validating_every_row(
    validator: FrameValidator, seed: int
) -> None:
    """metrics.summary then metrics.rows on the suspect series only == metrics.rows on every
    row: the same failing rows with the same reasons, the same table errors."""
    from models.validation import with_positions

    norm = normalise("metrics_long", _hostile_metrics(seed))
    limits = Limits(now=NOW)
    got = validator.validate("metrics", norm.frame, limits)

    framed = with_positions(norm.frame)
    errors: list[str] = []
    every = pl.concat(
        [
            validator._row_level("metrics", framed, limits, errors),
            validator._check_names("metrics", framed),
        ]
    )
    key = [pl.col("_pos"), pl.col("reason")]
    assert every.height > 40  # the planted faults were found
    assert got.failures.sort(key).rows() == every.sort(key).rows()
    assert got.table_errors == errors


def test_summary_screen_passes_clean_series_without_row_level_validation(
    validator: FrameValidator,
) -> None:
    raw = pl.DataFrame(
        {
            "ts": [f"2026-01-01T{h:02d}:00:00" for h in range(24)] * 2,
            "game_type": ["g"] * 48,
            "metric": ["players"] * 24 + ["storage_pct"] * 24,
            "value": ["10"] * 47 + ["101"],  # one storage value above 100 %
        }
    )
    from models.validation import metrics_summary, with_positions

    norm = normalise("metrics_long", raw)
    summary = metrics_summary(with_positions(norm.frame))
    assert summary.height == 2
    verdict = validator.validate("metrics", norm.frame, Limits(now=NOW))
    assert verdict.failures.get_column("_pos").to_list() == [47]
    assert "storage_pct = 101.0 is outside [0.0, 100.0]" in verdict.failures["reason"][0]
