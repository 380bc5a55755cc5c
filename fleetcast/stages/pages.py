"""What a person reads about a run: the Prefect UI artifacts' tables, markdown and plots.

Plain renderers (tested without Prefect); :mod:`tasks.artifacts` only publishes what they
return. A decision's figures, units, short and full reason and the forecaster that decided come
from :mod:`models.explain`, the one renderer of a decision that ``fleetcast status`` and the HTML
report use too.

- ``forecast-<game-type>``: the forecast peak of every series (and its model);
- ``capacity-plan-<game-type>``: every fleet's decision (current, target, applied, why), as it
  stands after the run and after any approval;
- ``<flow>-summary-<game-type>`` (``pipeline-summary-...``, ``forecast-and-scale-summary-...``,
  ``backfill-summary-...``, ``accuracy-summary-...``): validation, training, accuracy,
  capacity with each full reason, budgets exceeded, overrides, approvals;
- ``plots-<game-type>``: capacity vs demand per fleet and the forecasts, PNGs inline;
  ``backfill-plots-<game-type>``: each replay's capacity vs demand;
- ``data-docs-<game-type>`` / ``report-<game-type>``: links to GX Data Docs and report plots.

Artifact keys allow lowercase letters, digits and dashes only: ``battle_royale`` becomes
``battle-royale`` (and ``all`` stands for every game type).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from fleetcast.resources import db
from fleetcast.resources.plots import plot_capacity_vs_demand, plot_forecast_vs_actual
from fleetcast.stages.events import event_spans
from fleetcast.stages.ingest import STATUSES
from models.explain import (
    breaches,
    change,
    demand_unit,
    figure,
    full_reason,
    short_reason,
)
from models.processes import describe as describe_processes

MAX_TABLE_ROWS = 200


def artifact_key(kind: str, scope: str | None) -> str:
    """A stable artifact key: ``<kind>-<game-type>`` in lowercase letters, digits, dashes."""
    raw = f"{kind}-{scope or 'all'}".lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")


def as_record(obj: Any) -> dict[str, Any]:
    """A dataclass, pydantic model, mapping or plain object as a dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if hasattr(obj, "model_dump"):
        return dict(obj.model_dump())
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return round(value, 3)
    return str(value)


def render_forecast_table(forecast: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per series: region, metric, model, the peak (rounded, in the metric's unit) and
    when, its band. The game type and the hours covered are the same for every row: they are in
    the artifact's description (:func:`forecast_description`), not repeated."""
    if forecast is None or forecast.height == 0:
        return []
    made = [pl.col("created_at").max().alias("made")] if "created_at" in forecast.columns else []
    peaks = (
        forecast.sort("ts")
        .group_by("game_type", "region", "metric", maintain_order=True)
        .agg(
            pl.col("ts").sort_by("yhat").last().alias("peak_at"),
            pl.col("yhat").max().alias("peak"),
            pl.col("yhat_lower").sort_by("yhat").last().alias("lower"),
            pl.col("yhat_upper").sort_by("yhat").last().alias("upper"),
            pl.col("model").last().alias("model"),
            *made,
        )
        .sort("game_type", "region", "metric")
        .head(MAX_TABLE_ROWS)
    )
    several = peaks.get_column("game_type").n_unique() > 1
    rows = []
    for r in peaks.iter_rows(named=True):
        row: dict[str, Any] = {"game type": r["game_type"]} if several else {}
        row.update(
            {
                "region": r["region"],
                "metric": r["metric"],
                "model": r["model"],
                "peak": figure(r["peak"], r["metric"]),
                "peak at (UTC)": f"{r['peak_at']:%a %d %b %H:%M}",
                "band (low - high)": f"{figure(r['lower'])} - {figure(r['upper'])}",
            }
        )
        if r.get("made") is not None:  # stored forecasts are made on their own schedule
            row["made (UTC)"] = f"{r['made']:%a %d %b %H:%M}"
        rows.append(row)
    return rows


def forecast_description(forecast: pl.DataFrame | None, scope: str | None) -> str:
    """What every row of the forecast table shares: the game type and the hours covered."""
    if forecast is None or forecast.height == 0:
        return f"Forecast peaks per series ({scope or 'all'}): no forecast in this run"
    ts = forecast.get_column("ts")
    lo: Any = ts.min()
    hi: Any = ts.max()
    models = ", ".join(sorted(set(forecast.get_column("model").to_list())))
    return (
        f"Forecast peaks per series, **{scope or 'all game types'}**, "
        f"{lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC; models: {models}"
    )


def _processes(r: Mapping[str, Any]) -> str | None:
    rec = (r.get("inputs") or {}).get("processes")
    if not rec:
        return None
    learned = (rec.get("learned") or {}).get("processes_per_instance")
    return describe_processes(rec.get("processes_per_instance"), rec.get("source"), learned)


def applied_text(r: Mapping[str, Any]) -> str:
    """Whether a decision changed the fleet, and to what: "yes: 17", "no: forecast-only"."""
    if r.get("applied"):
        return f"yes: {r.get('applied_desired')}"
    if r.get("mode") == "forecast_only":
        return "no: forecast-only"
    if r.get("current") is not None and r.get("current") == r.get("target"):
        return "no: at target"
    return "no" + (f": {r['outcome']}" if r.get("outcome") else "")


def render_plan_table(decisions: Sequence[Any]) -> list[dict[str, Any]]:
    """Readable at 1440 px: fleet, current -> target, applied, the short reason (what decided,
    with units and the forecaster), then figures with units. The full reason of each fleet is in
    the run summary (:func:`render_reasons`), where it wraps instead of running off the table."""
    rows = []
    for d in decisions:
        r = as_record(d)
        rows.append(
            {
                "fleet": r.get("fleet"),
                "current -> target": change(r.get("current"), r.get("target")),
                "applied": applied_text(r),
                "status": r.get("status"),
                "why": short_reason(r.get("reason")) or r.get("outcome"),
                "demand (with margin)": figure(r.get("demand_forecast"), demand_unit(r)),
                "processes per instance": _processes(r),
                "unserved": figure(r.get("unserved_instances"), "instances")
                if r.get("unserved_instances")
                else None,
            }
        )
    return rows


def render_reasons(decisions: Sequence[Any]) -> str:
    """Each fleet's full reason as a bullet (wraps on any page); the reason names the forecaster
    that decided."""
    if not decisions:
        return ""
    lines = ["### Why, in full"]
    for d in decisions:
        r = as_record(d)
        head = f"**{r.get('fleet')}** ({change(r.get('current'), r.get('target'))})"
        lines.append(f"- {head}: {full_reason(r.get('reason'))}")
    return "\n".join(lines) + "\n"


def render_breaches(decisions: Sequence[Any]) -> str:
    """Soft budgets exceeded because a person's capacity override holds ("" when none)."""
    found = breaches([as_record(d) for d in decisions])
    if not found:
        return ""
    rows = [
        {"budget": name, "total": total, "overrides holding": ", ".join(fleets)}
        for name, (total, fleets) in found.items()
    ]
    return (
        "## Budgets exceeded\nA soft budget does not cut a person's capacity override; the "
        "breach is shown here until the override ends (`fleetcast budget set --hard` cuts it).\n\n"
        + _md_table(rows)
    )


def render_replay_table(replays: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Backfill replays: per fleet, the policy against the reactive reference, in hours short,
    unserved and idle demand (metric-hours) and capacity changes."""
    rows = []
    for rep in replays:
        plans = {p["plan"]: p for p in rep["table"]}
        for name in ("policy", "reactive"):
            p = plans.get(name)
            if p is None:
                continue
            rows.append(
                {
                    "fleet": rep["fleet"],
                    "plan": name,
                    "hours": p["hours"],
                    "hours short": p["hours_short"],
                    "unserved": figure(p["unserved"], f"{rep['metric']}-h"),
                    "idle": figure(p["idle"], f"{rep['metric']}-h"),
                    "changes": p["changes"],
                    "plan file": Path(str(rep["out"])).name if name == "policy" else None,
                }
            )
    return rows


def why_not_scaled(d: Any) -> str | None:
    """Why a decision did not change the fleet (None when it did)."""
    r = as_record(d)
    if r.get("applied"):
        return None
    if r.get("mode") == "forecast_only":
        why = "forecast-only mode: recorded, not applied"
    elif r.get("current") is not None and r.get("current") == r.get("target"):
        why = "already at target"
    else:
        why = "not applied"
    detail = r.get("outcome") or r.get("reason")
    return f"{why} ({detail})" if detail else why


@dataclass
class RunSummary:
    """What a run did, for the markdown summary. Every part is optional."""

    flow: str
    scope: str
    ingest: list[Any] = field(default_factory=list)  # BatchResult-like records
    training: str | None = None
    forecast_rows: int | None = None
    # (series forecast by this run, series in scope with a stored forecast) and the refresh
    # period, when the run forecasts only the series due (models/refresh.py)
    forecast_series: tuple[int, int] | None = None
    forecast_refresh_hours: int | None = None
    decisions: list[Any] = field(default_factory=list)
    margins: dict[str, float] = field(default_factory=dict)  # fleet -> safety margin
    overrides: list[Any] = field(default_factory=list)
    accuracy: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    replays: list[dict[str, Any]] = field(default_factory=list)  # fleet, metric, out, table
    approvals: list[Any] = field(default_factory=list)  # PendingChange-like: waiting for a person


def series_count(frame: pl.DataFrame | None) -> int:
    """Distinct series (game type, region, metric) in a forecast frame."""
    if frame is None or frame.height == 0:
        return 0
    return frame.select("game_type", "region", "metric").n_unique()


def forecast_sentence(s: RunSummary) -> str:
    """What the run forecast: rows written and, on the hourly cycle, how many series were due."""
    rows = f"{s.forecast_rows} forecast row(s) written"
    if s.forecast_series is None:
        return rows + "."
    made, shown = s.forecast_series
    kept = max(shown - made, 0)
    text = f"{made} series forecast ({rows})"
    if kept:
        text += (
            f"; the other {kept} keep their newest forecast, each made within the last "
            f"{s.forecast_refresh_hours} h (forecasts on their own schedule: "
            "`FLEETCAST_FORECAST_REFRESH_HOURS`)"
        )
    return text + ". The forecast table shows the newest forecast of every series."


def _md_table(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    if not rows:
        return "_none_\n"
    cols = list(rows[0])

    def esc(v: Any) -> str:
        return "-" if v is None else str(_cell(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(esc(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _ingest_sentence(recs: list[dict[str, Any]]) -> str:
    """Plainly: loaded, duplicates (skipped), rejected whole, unreadable; rows stored and
    quarantined."""
    count = {k: sum(1 for r in recs if r.get("status") == k) for k in STATUSES}
    parts = [f"{len(recs)} file(s): {count['loaded']} loaded"]
    if count["duplicate"]:
        parts.append(f"{count['duplicate']} duplicate (already ingested, skipped)")
    parts.append(f"{count['rejected']} rejected whole")
    if count["failed"]:
        parts.append(f"{count['failed']} unreadable (retried next run)")
    stored = sum(int(r.get("rows_stored") or 0) for r in recs)
    quarantined = sum(int(r.get("rows_quarantined") or 0) for r in recs)
    return (
        ", ".join(parts)
        + f". Rows: {stored:,} stored, {quarantined:,} quarantined (see the quarantine table)."
    )


def render_approvals(changes: Sequence[Any]) -> str:
    """Changes waiting for a person: fleet, current -> proposed, why, until when, who waits."""
    if not changes:
        return "## Waiting for approval\nNothing.\n"
    rows = []
    for c in changes:
        r = as_record(c)
        rows.append(
            {
                "fleet": r.get("fleet"),
                "change": r.get("change_id"),
                "current -> proposed": f"{r.get('current')} -> {r.get('proposed')}",
                "meanwhile": r.get("held"),
                "status": r.get("status"),
                "expires": r.get("expires_at"),
                "reason": r.get("reason"),
                "asked by": r.get("asked_by"),
                "waiting": r.get("waiting"),
            }
        )
    return (
        "## Waiting for approval\n`fleetcast approve|reject --fleet F --note ...` or the "
        "run's approval form.\n\n" + _md_table(rows)
    )


def render_summary(s: RunSummary) -> str:
    out = [f"# fleetcast {s.flow}: {s.scope}\n"]
    if s.ingest:
        recs = [as_record(b) for b in s.ingest]
        keys = ("file", "kind", "status", "rows_in", "rows_stored", "rows_quarantined", "message")
        rows = [{k: r.get(k) for k in keys} for r in recs]
        for row in rows:
            if row["file"] is not None:
                row["file"] = Path(str(row["file"])).name
            if row["status"] == "duplicate":  # the batch it repeats is in the ledger
                row["message"] = "same bytes already ingested: skipped"
        out.append("## Validation\n" + _ingest_sentence(recs) + "\n\n" + _md_table(rows))
    else:
        out.append("## Validation\nNo new file ingested in this run.\n")
    if s.training:
        out.append(f"## Training\n{s.training}\n")
    if s.forecast_rows is not None:
        out.append(f"## Forecast\n{forecast_sentence(s)}\n")
    if s.accuracy is not None and s.accuracy.height:
        acc = s.accuracy.head(20)
        out.append("## Accuracy\n" + _md_table(acc.iter_rows(named=True)))
    else:
        out.append("## Accuracy\nNot scored yet (needs actuals after a forecast).\n")
    if s.decisions:
        rows = []
        for d in s.decisions:
            r = as_record(d)
            rows.append(
                {
                    "fleet": r.get("fleet"),
                    "margin": f"{s.margins[r['fleet']]:.0%}"
                    if r.get("fleet") in s.margins
                    else None,
                    "demand (with margin)": figure(r.get("demand_forecast"), demand_unit(r)),
                    "current -> target": change(r.get("current"), r.get("target")),
                    "status": r.get("status"),
                    "unserved": r.get("unserved_instances"),
                    "applied": applied_text(r),
                    "not scaled because": why_not_scaled(d),
                }
            )
        out.append("## Capacity\n" + _md_table(rows) + "\n" + render_reasons(s.decisions))
        out.append(render_breaches(s.decisions))
    if s.overrides:
        rows = [
            {k: as_record(o).get(k) for k in ("fleet", "kind", "value", "expires_at", "reason")}
            for o in s.overrides
        ]
        out.append("## Overrides in force\n" + _md_table(rows))
    else:
        out.append("## Overrides in force\nNone.\n")
    if s.replays:
        out.append(
            "## Replayed decisions\nPolicy against the reactive reference over the range "
            "(unserved and idle in metric-hours).\n\n"
            + _md_table(
                {k: v for k, v in row.items() if k != "plan file"}
                for row in render_replay_table(s.replays)
            )
        )
    out.append(render_approvals(s.approvals))
    if s.notes:
        out.append("## Notes\n" + "".join(f"- {n}\n" for n in s.notes))
    return "\n".join(out)


MAX_PLOTS = 6


def plots_markdown(images: Sequence[tuple[str, bytes]], note: str = "") -> str:
    """PNG images inline (base64 data URIs) in markdown: the Prefect UI renders them on the
    run's Artifacts tab, where a ``file://`` link would not open from an http page."""
    parts = [note + "\n"] if note else []
    for title, png in images:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"### {title}\n\n![{title}](data:image/png;base64,{b64})\n")
    return "\n".join(parts) if parts else "_no plot_"


def hold_last_step(capacity: pl.DataFrame, until: Any) -> pl.DataFrame:
    """Capacity in effect (ts, capacity) for a live run's plot: the recorded decisions (this
    run's is the last), the last one held to ``until`` (the next cycle) so it draws as a step."""
    capacity = capacity.select("ts", pl.col("capacity").cast(pl.Float64))
    if capacity.height == 0:
        return capacity
    last = pl.DataFrame({"ts": [until], "capacity": [capacity["capacity"][-1]]})
    return pl.concat([capacity, last.cast({"ts": capacity.schema["ts"]})])


def _series(frame: pl.DataFrame, key: Mapping[str, Any]) -> pl.DataFrame:
    return frame.filter(
        (pl.col("game_type") == key["game_type"]) & (pl.col("region") == key["region"])
        & (pl.col("metric") == key["metric"])
    )  # fmt: skip


SHORT_HISTORY = timedelta(hours=6)


def history_note(capacity: pl.DataFrame) -> str | None:
    """What a plot says when the fleet's recorded capacity is too short to read as a line: on a
    fleet's first runs its capacity history starts here, rather than a dash without a word."""
    if capacity.height == 0:
        return "no capacity recorded for this fleet yet"
    first: Any = capacity["ts"].min()
    last: Any = capacity["ts"].max()
    if last - first >= SHORT_HISTORY:
        return None
    n = capacity.height
    return (
        f"capacity history starts {first:%Y-%m-%d %H:%M} UTC: {n} decision"
        + ("" if n == 1 else "s")
        + " so far (marked)"
    )


def capacity_plot(
    con: duckdb.DuckDBPyConnection,
    d: Mapping[str, Any],
    metric: str,
    forecast: pl.DataFrame | None,
    out: Path,
) -> tuple[str, bytes]:
    """One fleet's capacity in effect (players, as each decision sized them) against the last
    three days of demand and the forecast ahead."""
    key = {"game_type": d["game_type"], "region": d["region"], "metric": metric}
    since = d["decided_at"] - timedelta(days=3)
    actual = con.sql(db.sql("plots_actuals"), params={**key, "since": since}).pl()
    capacity = con.sql(
        db.sql("plots_capacity_history"), params={"fleet": d["fleet"], "since": since}
    ).pl()
    # held until the next hourly cycle decides again, not to the forecast's end: a line held
    # for two days would look like a shortage the next runs will prevent
    note = history_note(capacity)
    capacity = hold_last_step(capacity, d["decided_at"] + timedelta(hours=1))
    target = d["target"] if d.get("applied_desired") is None else d["applied_desired"]
    current = "?" if d["current"] is None else d["current"]
    title = f"{d['fleet']}: capacity vs {metric} ({current} -> {target} instances)"
    path = out / f"{d['fleet']}-capacity.png"
    ahead = None if forecast is None else _series(forecast, key)
    until = d["decided_at"] + timedelta(hours=1)
    last = None if ahead is None or ahead.height == 0 else ahead["ts"].max()
    if isinstance(last, datetime):  # the forecast's end (naive UTC, as stored)
        until = max(until, last.astimezone(UTC).replace(tzinfo=None) if last.tzinfo else last)
    events = event_spans(con, d["game_type"], d["region"], since, until)
    plot_capacity_vs_demand(actual, capacity, title, path, forecast=ahead, events=events, note=note)
    return title, path.read_bytes()


def forecast_plots(
    con: duckdb.DuckDBPyConnection, forecast: pl.DataFrame, out: Path
) -> list[tuple[str, bytes]]:
    """Each series of the capacity metric (players, else all): its forecast against the three
    days of actuals before it."""
    if "players" in set(forecast.get_column("metric")):
        forecast = forecast.filter(pl.col("metric") == "players")
    keys = forecast.select("game_type", "region", "metric").unique().sort(pl.all())
    images = []
    for key in keys.head(MAX_PLOTS).iter_rows(named=True):
        one = _series(forecast, key)
        since: Any = one["ts"].min()  # a datetime (the ts column)
        since -= timedelta(days=3)
        actual = con.sql(db.sql("plots_actuals"), params={**key, "since": since}).pl()
        title = f"{key['game_type']} {key['region']}: {key['metric']}, last 3 days and forecast"
        path = out / f"{key['game_type']}-{key['region']}-{key['metric']}.png"
        plot_forecast_vs_actual(actual, one, title, path)
        images.append((title, path.read_bytes()))
    return images
