"""Ingest + validate landed files into DuckDB: one transaction per file (R9, R10, R14, R16).

For each file: read every column as text (``fleetcast.resources.landing``), detect the kind
and parse strictly (``models.records``), validate with GX (``models.validation``), then write
the stored rows, the quarantined rows and the ledger row in ONE transaction.

Counting (the ledger's unit is the *input row*: a data row of a CSV/Parquet file, a record of a
JSON-lines file): ``rows_in = rows_stored + rows_quarantined``, and the quarantine table holds
exactly ``rows_quarantined`` rows for the batch, one per quarantined input row, with the raw row
as JSON and every reason joined by " | ".

- Wide metrics rows: each non-empty metric cell is one value. If any cell of a row fails, the
  row is quarantined (counted once, as quarantined) *and its good cells are still stored*; the
  ledger message says how many rows were stored partly and how many values were stored.
- A file that fails a table-level check (unknown columns, empty, no usable row) or whose bytes
  are not text (binary garbage, not UTF-8) is *rejected*: status ``rejected``, nothing stored,
  every row quarantined with the reason, so nothing is lost (the file stays in the landing
  folder). The command exits 3 then, after loading the other files; the summary shows
  ``rejected`` with the message.
- A file with the bytes of an earlier batch is recorded as ``duplicate`` (0 rows) and changes
  nothing. A later file with a corrected value for the same natural key replaces it.
- An unreadable file (broken CSV, corrupt Parquet, non-JSON line) writes nothing and is
  reported as ``failed``: the command exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.landing import (
    BinaryFile,
    UnreadableFile,
    checksum,
    read_raw,
    resolve_inputs,
)
from models.clock import utcnow
from models.records import (
    ROW,
    SchemaError,
    detect_kind,
    non_numeric_columns,
    normalise,
    raw_json,
    table_of,
    wide_metric_columns,
)
from models.validation import POS, FrameValidator, Limits, Verdict, with_positions

REASON_SEPARATOR = " | "
STATUSES = ("loaded", "duplicate", "rejected", "failed")


@dataclass(frozen=True)
class BatchResult:
    batch_id: str | None
    file: str
    kind: str | None
    status: str  # loaded | rejected | duplicate | failed
    rows_in: int
    rows_stored: int
    rows_quarantined: int
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every row ended up stored or quarantined (or the file was a duplicate)."""
        return self.status != "failed"


def ingest_paths(
    settings: Settings,
    paths: list[Path],
    *,
    data_docs: bool = True,
    base: Path | None = None,
    on_file: Callable[[BatchResult], None] | None = None,
) -> list[BatchResult]:
    """Ingest ``paths`` (files or folders inside ``settings.landing_dir``), one batch per file.

    Relative paths are relative to ``base`` (the CLI passes the working folder), else to the
    landing folder. Raises ``fleetcast.resources.landing.PathRefused`` before reading anything if
    a path escapes the landing folder or is a symlink. Writes GX Data Docs under
    ``settings.docs_dir``. ``on_file`` is called after each file (progress display).
    """
    files = resolve_inputs(Path(settings.landing_dir), paths, base)
    if not files:
        return []
    validator = FrameValidator(settings.docs_dir if data_docs else None)
    results = []
    with db.session(settings.db_path) as con:
        for path in files:
            results.append(ingest_file(con, settings, validator, path))
            if on_file is not None:
                on_file(results[-1])
    if data_docs:
        validator.build_docs()
    return results


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    validator: FrameValidator,
    path: Path,
    *,
    now: dt.datetime | None = None,
) -> BatchResult:
    """One file -> one batch, written in one transaction (or nothing, for an unreadable file)."""
    started = utcnow()
    name = _display_name(settings, path)
    with ThreadPoolExecutor(max_workers=1) as pool:  # hashing releases the GIL: overlap it
        hashing = pool.submit(checksum, path)
        raw: pl.DataFrame | None = None
        unreadable: UnreadableFile | None = None
        try:
            raw = read_raw(path)
        except UnreadableFile as exc:
            unreadable = exc
        digest = hashing.result()
    seen = con.sql(db.sql("ingest_batch_by_checksum"), params={"checksum": digest}).fetchall()
    batch_id = f"b-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    if seen:
        first_batch, first_file, _ = seen[0]
        result = BatchResult(
            batch_id,
            name,
            None,
            "duplicate",
            0,
            0,
            0,
            f"same bytes as batch {first_batch} ({first_file}): skipped, nothing changed",
        )
        with db.transaction(con):
            _ledger(con, result, digest, started)
        return result
    if raw is None and isinstance(unreadable, BinaryFile):  # never parses: rejected, recorded
        raw = pl.DataFrame()
        plan = _rejected(raw, None, str(unreadable))
    elif raw is None:  # perhaps still being copied: nothing recorded, the next run retries
        return BatchResult(None, name, None, "failed", 0, 0, 0, str(unreadable))
    else:
        limits = Limits(
            now=now or started,
            future_skew=dt.timedelta(minutes=settings.future_skew_minutes),
            freshness=dt.timedelta(hours=settings.freshness_hours),
        )
        plan = plan_batch(raw, validator, limits)
    result = BatchResult(
        batch_id,
        name,
        plan.kind,
        plan.status,
        raw.height,
        raw.height - plan.quarantined.height,
        plan.quarantined.height,
        plan.message,
        plan.warnings,
    )
    quarantine = pl.DataFrame(
        {
            "batch_id": batch_id,
            "source_file": name,
            "row_number": plan.quarantined.get_column(ROW),
            "raw": plan.quarantined.get_column("raw"),
            "reason": plan.quarantined.get_column("reason"),
            "created_at": started,
        },
        schema_overrides={"created_at": pl.Datetime("us")},
    )
    with db.transaction(con):
        if plan.status == "loaded":
            _store(con, plan.table, plan.stored, batch_id, now or started)
        if quarantine.height:
            con.register("quarantine_stage", quarantine.to_arrow())
            try:
                con.execute(db.sql("ingest_quarantine_insert")).fetchall()
            finally:
                con.unregister("quarantine_stage")
        _ledger(con, result, digest, started)
    return result


@dataclass(frozen=True)
class BatchPlan:
    """What one file will write: pure result of parsing and validating it."""

    kind: str | None
    table: str | None
    status: str  # loaded | rejected
    stored: pl.DataFrame  # typed rows for the table (empty when rejected)
    quarantined: pl.DataFrame  # _row, raw, reason: one row per quarantined input row
    message: str
    warnings: list[str]


def plan_batch(raw: pl.DataFrame, validator: FrameValidator, limits: Limits) -> BatchPlan:
    """Parse, normalise and validate ``raw``; decide what is stored and what is quarantined."""
    if raw.height == 0:
        what = "no data rows: the file is empty below its header" if raw.width else "empty file"
        return _rejected(raw, None, what)
    try:
        kind = detect_kind(raw.columns)
        if kind == "metrics_wide":
            text_cols = non_numeric_columns(raw, wide_metric_columns(raw.columns))
            if text_cols:
                raise SchemaError(f"wide metrics columns {text_cols} hold no numbers")
    except SchemaError as exc:
        return _rejected(raw, None, f"wrong schema: {exc}")

    norm = normalise(kind, raw)
    verdict: Verdict = validator.validate(norm.table, norm.frame, limits)
    failed = norm.dropped.select(ROW, "reason")
    if verdict.failures.height:
        failed = (
            verdict.failures.join(with_positions(norm.frame.select(ROW)), on=POS)
            .select(ROW, "reason")
            .vstack(failed)
        )
    if verdict.rejected:
        return _rejected(raw, kind, "; ".join(verdict.table_errors), failed, verdict.warnings)

    if failed.height == 0:  # the common case: skip the bookkeeping joins
        message = f"unit: input rows; {raw.height} stored, 0 quarantined"
        if kind == "metrics_wide":
            message += f"; {norm.frame.height} metric values stored"
        empty = _with_raw(raw, failed)
        return BatchPlan(kind, norm.table, "loaded", norm.frame, empty, message, verdict.warnings)

    bad_rows = failed.group_by(ROW, maintain_order=True).agg(
        pl.col("reason").unique(maintain_order=True).str.join(REASON_SEPARATOR)
    )
    bad_pos = verdict.failures.get_column(POS).unique()
    stored = with_positions(norm.frame).filter(~pl.col(POS).is_in(bad_pos.implode())).drop(POS)
    quarantined = _with_raw(raw, bad_rows)
    message = f"unit: input rows; {raw.height - quarantined.height} stored, "
    message += f"{quarantined.height} quarantined"
    if kind == "metrics_wide":
        partly = stored.select(ROW).unique().join(bad_rows.select(ROW), on=ROW).height
        message += (
            f"; {stored.height} metric values stored; {partly} quarantined wide rows had their "
            "good cells stored"
        )
    return BatchPlan(kind, norm.table, "loaded", stored, quarantined, message, verdict.warnings)


def _rejected(
    raw: pl.DataFrame,
    kind: str | None,
    message: str,
    failed: pl.DataFrame | None = None,
    warnings: list[str] | None = None,
) -> BatchPlan:
    """Reject the whole file: every row quarantined with the file-level reason (and its own)."""
    rows = pl.DataFrame({ROW: pl.int_range(1, raw.height + 1, eager=True, dtype=pl.Int64)})
    own = (
        failed.group_by(ROW).agg(pl.col("reason").unique(maintain_order=True).str.join(" | "))
        if failed is not None and failed.height
        else pl.DataFrame(schema={ROW: pl.Int64, "reason": pl.String})
    )
    reasons = rows.join(own, on=ROW, how="left").select(
        ROW,
        reason=pl.concat_str(
            [pl.lit(f"file rejected: {message}"), pl.col("reason")],
            separator=REASON_SEPARATOR,
            ignore_nulls=True,
        ),
    )
    table = table_of(kind) if kind else None  # type: ignore[arg-type]
    return BatchPlan(
        kind,
        table,
        "rejected",
        pl.DataFrame(),
        _with_raw(raw, reasons),
        f"rejected: {message}",
        warnings or [],
    )


def _with_raw(raw: pl.DataFrame, reasons: pl.DataFrame) -> pl.DataFrame:
    """``reasons`` (_row, reason) with each row's original text as JSON, by row number."""
    if reasons.height == 0:
        return pl.DataFrame(schema={ROW: pl.Int64, "raw": pl.String, "reason": pl.String})
    picked = raw.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    picked = picked.join(reasons.select(ROW), on=ROW, how="semi")
    encoded = picked.select(ROW, raw=raw_json(picked.drop(ROW)))
    return reasons.join(encoded, on=ROW, how="left").select(ROW, "raw", "reason").sort(ROW)


def _store(
    con: duckdb.DuckDBPyConnection,
    table: str | None,
    rows: pl.DataFrame,
    batch: str,
    now: dt.datetime,
) -> None:
    if rows.height == 0 or table is None:
        return
    stage = rows.drop(ROW, "unparseable").to_arrow()
    name = f"{table}_stage"
    con.register(name, stage)
    try:
        if table == "metrics":
            bounds = rows.select(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi"))
            params = {"ts_min": bounds["lo"][0], "ts_max": bounds["hi"][0]}
            con.execute(db.sql("ingest_metrics_delete_changed"), params).fetchall()
            con.execute(
                db.sql("ingest_metrics_insert_new"), {**params, "batch_id": batch}
            ).fetchall()
        elif table == "events":
            con.execute(db.sql("ingest_events_upsert"), {"batch_id": batch, "now": now}).fetchall()
        else:
            con.execute(db.sql("ingest_sessions_upsert"), {"batch_id": batch}).fetchall()
    finally:
        con.unregister(name)


def _ledger(
    con: duckdb.DuckDBPyConnection, result: BatchResult, digest: str, started: dt.datetime
) -> None:
    message = result.message
    if result.warnings:
        message += " | warnings: " + "; ".join(result.warnings)
    con.execute(
        db.sql("ingest_batch_insert"),
        {
            "batch_id": result.batch_id,
            "file": result.file,
            "checksum": digest,
            "kind": result.kind,
            "status": result.status,
            "rows_in": result.rows_in,
            "rows_stored": result.rows_stored,
            "rows_quarantined": result.rows_quarantined,
            "message": message,
            "started_at": started,
            "finished_at": utcnow(),
        },
    ).fetchall()


def _display_name(settings: Settings, path: Path) -> str:
    """The file's path relative to the landing folder (what the ledger and quarantine show)."""
    root = Path(settings.landing_dir).resolve()
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def format_summary(results: list[BatchResult]) -> str:
    """A per-file table for people: kind, rows in / stored / quarantined, status, warnings."""
    header = f"{'file':40} {'kind':13} {'in':>8} {'stored':>8} {'quar.':>7}  status"
    lines = [header]
    for r in results:
        lines.append(
            f"{r.file[:40]:40} {r.kind or '-':13} {r.rows_in:>8} {r.rows_stored:>8} "
            f"{r.rows_quarantined:>7}  {r.status}"
        )
        if r.status in ("rejected", "failed", "duplicate"):
            lines.append(f"    {r.message}")
        for w in r.warnings:
            lines.append(f"    warning: {w}")
    lines.append(totals_line(results))
    return "\n".join(lines)


def totals_line(results: list[BatchResult]) -> str:
    """One plain sentence: how many files loaded, were duplicates, rejected or unreadable, and
    how many rows were stored and quarantined."""
    count = {s: sum(r.status == s for r in results) for s in STATUSES}
    files = (
        f"{len(results)} file(s): {count['loaded']} loaded, "
        f"{count['duplicate']} duplicate (same bytes already ingested, skipped), "
        f"{count['rejected']} rejected whole, {count['failed']} unreadable"
    )
    stored = sum(r.rows_stored for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    return f"{files}; rows: {stored} stored, {quarantined} quarantined"
