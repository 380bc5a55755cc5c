"""Great Expectations (GX Core 1.x) suites per table, run on typed normal frames.

No DuckDB and no Prefect here: ``FrameValidator.validate(table, frame, limits)`` takes the
typed frame from ``models.records.normalise`` and returns a ``Verdict``: the positions of the
rows that failed a row-level expectation (each with a reason naming the expectation), the
table-level errors that reject the whole file, and warnings (freshness) that never reject.

To stay fast on millions of rows, each suite runs on the narrowest pandas frame that can
answer it (GX hashes every column of a batch before validating):

- ``<table>.rows``: parsability (``unparseable`` must be null), non-null keys, timestamp range
  (not before 1900, not after now + skew), pairs such as ``end >= start``, uniqueness of the
  natural key (``natural_key`` = position of the key's first occurrence in the file), row count;
  for metrics the value range of each row's metric (``METRIC_BOUNDS``, carried on the row as
  ``min_allowed``/``max_allowed`` and compared as column pairs: one vectorised pass instead of
  one filtered pass per metric);
- ``names``: every distinct game type / region / metric / server configuration must match
  ``^[a-z0-9_-]{1,64}$`` (checked once per distinct value, then mapped back to its rows);
- ``<table>.freshness``: newest timestamp of the rows that passed within ``freshness`` of now: a
  *warning* only, never a rejection (backfills and old history must load).

pandas frames get datetime64[ns] columns: GX compares those vectorised, any other datetime
dtype one Python object at a time.

Duplicates: GX flags every row of a duplicated natural key; the first occurrence in the file is
kept and the later ones fail with a reason naming the row they repeat.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from models.hourly import EVENT_KINDS
from models.names import NAME_PATTERN
from models.records import NATURAL_KEYS, ROW, UNPARSEABLE

POS = "_pos"
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
OLDEST = dt.datetime(1900, 1, 1)

# (lower, upper) per metric: no negative players, CPU, ...; storage is a percentage; the upper
# bounds only refuse absurd values (a unit mix-up, an overflow), not large fleets.
METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "players": (0.0, 1e9),
    "sessions": (0.0, 1e9),
    "cpu_cores": (0.0, 1e8),
    "memory_gb": (0.0, 1e9),
    "net_in_mbps": (0.0, 1e10),
    "net_out_mbps": (0.0, 1e10),
    "actions_per_minute": (0.0, 1e5),
    "movement": (0.0, 1e7),
    "server_load": (0.0, 1e4),
    "latency_ms": (0.0, 1e7),
    "storage_pct": (0.0, 100.0),
}
OTHER_METRIC_BOUNDS = (-1e12, 1e12)  # metrics we do not know: finite and not absurd
SESSION_BOUNDS: dict[str, tuple[float, float]] = {
    "peak_players": (0.0, 1e7),
    "actions_per_minute": (0.0, 1e5),
    "movement": (0.0, 1e7),
}
NAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "metrics": ("game_type", "region", "metric"),
    "sessions": ("game_type", "region"),  # server_config is a label (c6i.4xlarge), bound as a value
    "events": ("game_type", "region"),  # null = all; a present value must be a valid name
}
_NULLABLE_NAMES = {"events"}
_TIME_COLUMN = {"metrics": "ts", "sessions": "started_at", "events": "starts_at"}


@dataclass(frozen=True)
class Limits:
    """Time limits for one run: ``now`` is naive UTC."""

    now: dt.datetime
    future_skew: dt.timedelta = dt.timedelta(minutes=15)
    freshness: dt.timedelta = dt.timedelta(hours=6)

    @property
    def max_ts(self) -> dt.datetime:
        return self.now + self.future_skew

    @property
    def fresh_after(self) -> dt.datetime:
        return self.now - self.freshness


@dataclass(frozen=True)
class Verdict:
    failures: pl.DataFrame  # _pos (position in the normal frame), reason; several per row ok
    table_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return bool(self.table_errors)


def with_natural_key(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``_pos`` and ``natural_key`` (position of the key's first occurrence; null if a key
    part is missing). Returns a new frame."""
    keys = list(NATURAL_KEYS[table])
    nullable = [k for k in keys if not (table == "events" and k in ("game_type", "region"))]
    out = frame if POS in frame.columns else with_positions(frame)
    first = pl.col(POS).min().over(keys)
    complete = pl.all_horizontal([pl.col(k).is_not_null() for k in nullable])
    return out.with_columns(natural_key=pl.when(complete).then(first).otherwise(None))


def with_positions(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``_pos``, each row's 0-based position (the id failures refer to)."""
    return frame.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64))


SERIES = ("game_type", "region", "metric")


def metrics_summary(framed: pl.DataFrame) -> pl.DataFrame:
    """One row per series (game type, region, metric) of a metrics normal frame: what the
    ``metrics.summary`` suite checks instead of every row. Exact, not sampled: a series passes
    every summary expectation only if each of its rows passes every ``metrics.rows``
    expectation (no unparseable cell, no missing ts or value, ts and value within bounds, no
    repeated ts), so only the rows of the series that fail are validated one by one."""
    ts, value = pl.col("ts"), pl.col("value")
    complete = pl.col("game_type").is_not_null() & pl.col("metric").is_not_null()
    summary = framed.group_by(list(SERIES)).agg(
        rows=pl.len(),
        n_unparseable=pl.col(UNPARSEABLE).is_not_null().sum(),
        n_ts_missing=ts.null_count(),
        n_value_missing=value.null_count(),
        ts_min=ts.min(),
        ts_max=ts.max(),
        value_min=value.min(),
        value_max=value.max(),
        repeated_ts=ts.count() - ts.drop_nulls().n_unique(),
    )
    return summary.with_columns(
        pl.when(complete).then(pl.col("repeated_ts")).otherwise(0).alias("repeated_ts"),
        *metric_bounds(pl.col("metric")),
    )


@dataclass(frozen=True)
class Screen:
    """What ``metrics.summary`` found: series to validate row by row, invalid names, warnings."""

    suspect: pl.DataFrame  # game_type, region, metric of the series that failed
    bad_names: bool
    warnings: list[str]


def _stale(column: str, newest: object, limits: Limits, expectation: str) -> str:
    return (
        f"stale data: newest {column} {newest} is older than {limits.freshness} before now "
        f"({expectation})"
    )


def _at_least(E: Any, a: str, b: str) -> Any:
    """GX: column ``a`` >= column ``b`` on every row where both are present."""
    return E.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"
    )


def _reason(expectation: str, column: str | None, detail: str = "") -> str:
    head = f"{expectation}({column})" if column else expectation
    return f"{head}: {detail}" if detail else head


class FrameValidator:
    """One ephemeral GX context for a whole run; suites built once, reused for every file."""

    def __init__(self, docs_dir: Path | None = None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name="local",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self._source = self.context.data_sources.add_pandas("fleetcast")
        self._definitions: dict[str, Any] = {}

    # --- suites -------------------------------------------------------------------------

    def _definition(self, name: str) -> Any:
        """The validation definition for suite ``name``, built on first use."""
        if name in self._definitions:
            return self._definitions[name]
        gx = self._gx
        suite = self.context.suites.add(gx.ExpectationSuite(name=name))
        for expectation in self._expectations(name):
            suite.add_expectation(expectation)
        asset = self._source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        vd = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        self._definitions[name] = vd
        return vd

    def _expectations(self, name: str) -> list[Any]:
        E = self._gx.expectations
        max_ts = {"$PARAMETER": "max_ts"}
        if name == "names":
            return [
                E.ExpectColumnValuesToNotBeNull(column="value"),
                E.ExpectColumnValuesToMatchRegex(column="value", regex=NAME_PATTERN),
            ]
        if name == "nullable_names":
            return [E.ExpectColumnValuesToMatchRegex(column="value", regex=NAME_PATTERN)]
        if name.endswith(".freshness"):
            column = _TIME_COLUMN[name.split(".")[0]]
            return [E.ExpectColumnMaxToBeBetween(column=column, min_value={"$PARAMETER": "fresh"})]
        if name == "metrics.summary":
            # One row per series; see metrics_summary. Counts must be 0, ranges within bounds,
            # names valid (the names suite then says which), and the newest ts fresh (a warning).
            return [
                E.ExpectTableRowCountToBeBetween(min_value=1),
                *[E.ExpectColumnValuesToNotBeNull(column=c) for c in SERIES],
                *[E.ExpectColumnValuesToMatchRegex(column=c, regex=NAME_PATTERN) for c in SERIES],
                E.ExpectColumnMaxToBeBetween(column="ts_max", min_value={"$PARAMETER": "fresh"}),
                *[
                    E.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=0)
                    for c in ("n_unparseable", "n_ts_missing", "n_value_missing", "repeated_ts")
                ],
                E.ExpectColumnValuesToBeBetween(column="ts_min", min_value=OLDEST),
                E.ExpectColumnValuesToBeBetween(column="ts_max", max_value=max_ts),
                _at_least(E, "value_min", "min_allowed"),
                _at_least(E, "max_allowed", "value_max"),
            ]
        common = [
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeNull(column=UNPARSEABLE),
            E.ExpectColumnValuesToBeUnique(column="natural_key"),
        ]
        if name == "metrics.rows":
            # The value range depends on the metric: each row carries its metric's bounds
            # (min_allowed, max_allowed from METRIC_BOUNDS), compared as column pairs.
            return common + [
                E.ExpectColumnValuesToNotBeNull(column="ts"),
                E.ExpectColumnValuesToNotBeNull(column="value"),
                E.ExpectColumnValuesToBeBetween(column="ts", min_value=OLDEST, max_value=max_ts),
                _at_least(E, "value", "min_allowed"),
                _at_least(E, "max_allowed", "value"),
            ]
        if name == "sessions.rows":
            return common + [
                E.ExpectColumnValuesToNotBeNull(column="session_id"),
                E.ExpectColumnValuesToMatchRegex(column="session_id", regex=SESSION_ID_PATTERN),
                E.ExpectColumnValuesToNotBeNull(column="started_at"),
                E.ExpectColumnValuesToBeBetween(
                    column="started_at", min_value=OLDEST, max_value=max_ts
                ),
                _at_least(E, "stopped_at", "started_at"),
                *[
                    E.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
                    for c, (lo, hi) in SESSION_BOUNDS.items()
                ],
            ]
        if name == "events.rows":
            # Events may be planned ahead: no future limit, only a sane calendar range.
            return common + [
                E.ExpectColumnValuesToNotBeNull(column="name"),
                E.ExpectColumnValueLengthsToBeBetween(column="name", min_value=1, max_value=200),
                E.ExpectColumnValuesToNotBeNull(column="kind"),
                E.ExpectColumnValuesToBeInSet(column="kind", value_set=list(EVENT_KINDS)),
                E.ExpectColumnValuesToNotBeNull(column="starts_at"),
                E.ExpectColumnValuesToNotBeNull(column="ends_at"),
                E.ExpectColumnValuesToBeBetween(
                    column="starts_at", min_value=OLDEST, max_value=dt.datetime(2200, 1, 1)
                ),
                _at_least(E, "ends_at", "starts_at"),
            ]
        raise KeyError(f"no suite named {name!r}")

    def _run(self, name: str, frame: Any, **params: Any) -> Any:
        return self._definition(name).run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=params or None,
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": 0},
        )

    # --- validation ---------------------------------------------------------------------

    def validate(self, table: str, frame: pl.DataFrame, limits: Limits) -> Verdict:
        """Run ``table``'s suites on ``frame`` (a normal frame from ``models.records``).

        Metrics (the volume table) are screened first: the ``metrics.summary`` suite runs on one
        row per series (``metrics_summary``), and only the rows of the series it fails go
        through ``metrics.rows`` to find which rows fail and why. The verdict is the same as
        validating every row (tests/test_validation.py checks that), at the cost of one
        group-by instead of a GX pass over every row."""
        framed = with_positions(frame)
        table_errors: list[str] = []
        failures: list[pl.DataFrame] = []
        if table == "metrics":
            summary = metrics_summary(framed)
            screen = self._screen(summary, limits, table_errors)
            if screen.suspect.height:
                rows = framed.join(screen.suspect, on=list(SERIES), how="semi", nulls_equal=True)
                failures.append(self._row_level(table, rows, limits, table_errors))
            if screen.bad_names:
                failures.append(self._check_names(table, framed, summary))
        else:
            failures.append(self._row_level(table, framed, limits, table_errors))
            failures.append(self._check_names(table, framed))

        found = pl.concat(failures) if failures else _no_failures()
        if table == "metrics" and found.height == 0:
            warnings = screen.warnings  # every row passed: the summary's newest ts is exact
        else:
            warnings = self._freshness(table, framed, found, limits)
        failed_rows = found.get_column(POS).n_unique()
        if framed.height and failed_rows == framed.height and not table_errors:
            table_errors.append(
                f"no usable rows: all {framed.height} rows failed row-level expectations"
            )
        return Verdict(found, table_errors, warnings)

    def _screen(self, summary: pl.DataFrame, limits: Limits, table_errors: list[str]) -> Screen:
        """Run ``metrics.summary``: the series that fail a row expectation, whether any name
        is invalid, and the freshness warning (exact when every row passes)."""
        result = self._run(
            "metrics.summary",
            _to_pandas(summary),
            max_ts=limits.max_ts,
            fresh=limits.fresh_after,
        )
        keys = summary.select(SERIES)
        bad: set[int] = set()
        bad_names = False
        warnings: list[str] = []
        for r in result.results:
            if r.success:
                continue
            cfg = r.expectation_config
            column = cfg.kwargs.get("column")
            if cfg.type == "expect_table_row_count_to_be_between":
                table_errors.append("no usable rows: nothing to validate")
            elif cfg.type == "expect_column_max_to_be_between":
                if summary.height:  # no rows: no newest timestamp, so nothing is stale
                    warnings.append(_stale("ts", r.result.get("observed_value"), limits, cfg.type))
            elif column in SERIES:
                bad_names = True
            elif (idx := r.result.get("unexpected_index_list")) is None:
                return Screen(keys, True, [])  # could not run: check every row instead
            else:
                bad.update(int(i) for i in idx)
        return Screen(keys[sorted(bad)], bad_names, warnings)

    def _row_level(
        self, table: str, framed: pl.DataFrame, limits: Limits, table_errors: list[str]
    ) -> pl.DataFrame:
        """``<table>.rows`` on ``framed`` (rows with their ``_pos``): the failing rows."""
        keyed = with_natural_key(table, framed)
        if table == "metrics":
            keyed = keyed.with_columns(metric_bounds(pl.col("metric")))
        narrow = keyed.select([UNPARSEABLE, "natural_key", *_row_columns(table)])
        result = self._run(f"{table}.rows", _to_pandas(narrow), max_ts=limits.max_ts)
        positions = keyed.get_column(POS)
        failures = [_no_failures()]
        for r in result.results:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column") or cfg.kwargs.get("column_A")
            if r.success:
                continue
            if cfg.type == "expect_table_row_count_to_be_between":
                table_errors.append("no usable rows: nothing to validate")
                continue
            idx = r.result.get("unexpected_index_list")
            if idx is None:
                table_errors.append(_reason(cfg.type, column, _exception(r)))
                continue
            at = positions.gather(pl.Series(idx, dtype=pl.Int64)).to_list()
            failures.append(_row_failures(keyed, table, cfg, column, at, limits))
        return pl.concat(failures)

    def _freshness(
        self, table: str, framed: pl.DataFrame, found: pl.DataFrame, limits: Limits
    ) -> list[str]:
        """Freshness is a warning only (backfills and old history must load), judged on the
        newest timestamp of the rows that passed."""
        if table == "events":
            return []
        column = _TIME_COLUMN[table]
        good = framed.select(POS, column)
        if found.height:
            good = good.join(found.select(POS), on=POS, how="anti")
        if good.height == 0:
            return []
        newest = good.select(pl.col(column).max())
        fresh = self._run(f"{table}.freshness", _to_pandas(newest), fresh=limits.fresh_after)
        warnings = []
        for r in fresh.results:
            if not r.success:
                observed = r.result.get("observed_value")
                warnings.append(_stale(column, observed, limits, r.expectation_config.type))
        return warnings

    def _check_names(
        self, table: str, keyed: pl.DataFrame, distinct_from: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """Every distinct name checked once (``distinct_from``: a frame with the same name
        columns and the same distinct values, e.g. the per-series summary); failing values are
        mapped back to their rows in ``keyed``."""
        cols = NAME_COLUMNS[table]
        nullable = table in _NULLABLE_NAMES
        source = keyed if distinct_from is None else distinct_from
        distinct = pl.concat(
            [
                source.select(pl.lit(c).alias("column"), pl.col(c).alias("value")).unique()
                for c in cols
            ]
        )
        if nullable:
            distinct = distinct.filter(pl.col("value").is_not_null())
        if distinct.height == 0:
            return _no_failures()
        result = self._run("nullable_names" if nullable else "names", _to_pandas(distinct))
        out = []
        for r in result.results:
            if r.success:
                continue
            bad = distinct[r.result["unexpected_index_list"]]
            for column, value in bad.iter_rows():
                match = pl.col(column).is_null() if value is None else pl.col(column) == value
                detail = (
                    f"{column} is missing"
                    if value is None
                    else f"invalid {column} {value[:80]!r}: use 1-64 lowercase letters, "
                    "digits, '_' or '-'"
                )
                out.append(
                    keyed.filter(match).select(
                        POS, reason=pl.lit(_reason(r.expectation_config.type, column, detail))
                    )
                )
        return pl.concat(out) if out else _no_failures()

    def build_docs(self) -> Path | None:
        """Write the Data Docs for every validation of this run (offline: unstyled HTML)."""
        if self.docs_dir is None:
            return None
        self.context.build_data_docs(site_names=["local"])
        return self.docs_dir / "index.html"


# pandas' datetime64[ns] range; GX compares datetime64[ns] columns vectorised, any other
# datetime dtype one Python object at a time (5 s per 200k rows here).
_NS_MIN, _NS_MAX = dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31)


def _to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` for GX: datetimes as datetime64[ns]. Values outside the ns range are clamped to
    its ends, which lie outside every suite's timestamp range, so they still fail."""
    times = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    clamped = frame.with_columns(
        pl.col(c).clip(_NS_MIN, _NS_MAX).dt.cast_time_unit("ns") for c in times
    )
    return clamped.to_pandas()


def metric_bounds(metric: pl.Expr) -> list[pl.Expr]:
    """``min_allowed`` and ``max_allowed`` for each row's metric (unknown metrics: the default)."""
    los = {m: lo for m, (lo, _) in METRIC_BOUNDS.items()}
    his = {m: hi for m, (_, hi) in METRIC_BOUNDS.items()}
    return [
        metric.replace_strict(los, default=OTHER_METRIC_BOUNDS[0], return_dtype=pl.Float64).alias(
            "min_allowed"
        ),
        metric.replace_strict(his, default=OTHER_METRIC_BOUNDS[1], return_dtype=pl.Float64).alias(
            "max_allowed"
        ),
    ]


def _row_columns(table: str) -> list[str]:
    if table == "metrics":
        return ["ts", "value", "min_allowed", "max_allowed"]
    if table == "sessions":
        return ["session_id", "started_at", "stopped_at", *SESSION_BOUNDS]
    return ["name", "kind", "starts_at", "ends_at"]


def _row_failures(
    keyed: pl.DataFrame,
    table: str,
    cfg: Any,
    column: str | None,
    idx: list[int],
    limits: Limits,
) -> pl.DataFrame:
    """Reasons for the rows (by position) that failed one row-level expectation."""
    positions = pl.DataFrame({POS: pl.Series(idx, dtype=pl.Int64)})
    rows = keyed.join(positions, on=POS)
    head = _reason(cfg.type, column)
    if column == UNPARSEABLE:
        reason = pl.format("{}: {}", pl.lit(head), pl.col(UNPARSEABLE))
    elif column == "natural_key":
        # Keep the first occurrence in the file; the rest repeat its key.
        first_row = keyed.select(pl.col(POS).alias("natural_key"), pl.col(ROW).alias("_first"))
        rows = rows.filter(pl.col(POS) != pl.col("natural_key")).join(first_row, on="natural_key")
        key = ", ".join(NATURAL_KEYS[table])
        reason = pl.format(
            "{}: repeats the natural key ({}) of row {}",
            pl.lit(head),
            pl.lit(key),
            pl.col("_first"),
        )
    elif cfg.type == "expect_column_values_to_not_be_null":
        reason = pl.lit(f"{head}: {column} is missing")
    elif (
        cfg.type == "expect_column_values_to_be_between"
        and column is not None
        and column in _TIME_COLUMN.values()
    ):
        reason = pl.format(
            "{}: {} {} is outside [{}, now + {}]",
            pl.lit(head),
            pl.lit(column),
            pl.col(column).cast(pl.String),
            pl.lit(str(OLDEST)),
            pl.lit(str(limits.future_skew)),
        )
    elif column in ("value", "max_allowed") and cfg.kwargs.get("column_B") in (
        "min_allowed",
        "value",
    ):
        reason = pl.format(
            "{}: {} = {} is outside [{}, {}]",
            pl.lit(_reason(cfg.type, "value")),
            pl.col("metric"),
            pl.col("value"),
            pl.col("min_allowed"),
            pl.col("max_allowed"),
        )
    elif column is not None and cfg.kwargs.get("column_B"):
        reason = pl.lit(f"{head}: {column} is before {cfg.kwargs['column_B']}")
    elif column is not None and column in keyed.columns:
        reason = pl.format(
            "{}: {} = {}", pl.lit(head), pl.lit(column), pl.col(column).cast(pl.String)
        )
    else:
        reason = pl.lit(head)
    return rows.select(POS, reason.alias("reason"))


def _exception(r: Any) -> str:
    info = getattr(r, "exception_info", None) or {}
    return str(info.get("exception_message") or "failed")


def _is_name(value: str) -> bool:
    from models.names import is_valid_name

    return is_valid_name(value)


def _no_failures() -> pl.DataFrame:
    return pl.DataFrame(schema={POS: pl.Int64, "reason": pl.String})
