"""What the Prefect UI shows: artifacts with stable keys per game type.

- ``forecast-<game-type>``: table, the forecast peak of every series (and its model);
- ``capacity-plan-<game-type>``: table, every fleet's decision (current, target, applied, why);
- ``run-summary-<game-type>``: markdown, validation outcome, training, accuracy, margin applied,
  overrides in force, and why a fleet was not scaled;
- ``plots-<game-type>``: markdown with PNGs inline, capacity vs demand per fleet and the
  forecasts; ``backfill-plots-<game-type>``: each replay's capacity vs demand;
- ``data-docs-<game-type>`` / ``report-<game-type>``: links to GX Data Docs and report plots.

Artifact keys allow lowercase letters, digits and dashes only: ``battle_royale`` becomes
``battle-royale`` (and ``all`` stands for every game type). The ``render_*`` helpers are plain
functions (tested without Prefect); the tasks only publish what they render.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from fleetcast.stages.ingest import STATUSES
from fleetcast.stages.orchestration import is_transient
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


# --------------------------------------------------------------------------- render (plain)


def _round(value: Any) -> Any:
    """A figure an operator reads: whole numbers from 100 up, 3 significant digits below."""
    if not isinstance(value, float) or value != value:  # NaN stays as it is
        return value
    if abs(value) >= 100:
        return round(value)
    return float(f"{value:.3g}")


def _figure(value: Any, unit: str | None = None) -> str | None:
    if value is None:
        return None
    shown = _round(float(value))
    text = f"{shown:,}" if isinstance(shown, int) else f"{shown:g}"
    return f"{text} {unit}" if unit else text


def render_forecast_table(forecast: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per series: region, metric, model, the peak (rounded, in the metric's unit) and
    when, its band. The game type and the hours covered are the same for every row: they are in
    the artifact's description (:func:`forecast_description`), not repeated."""
    if forecast is None or forecast.height == 0:
        return []
    peaks = (
        forecast.sort("ts")
        .group_by("game_type", "region", "metric", maintain_order=True)
        .agg(
            pl.col("ts").sort_by("yhat").last().alias("peak_at"),
            pl.col("yhat").max().alias("peak"),
            pl.col("yhat_lower").sort_by("yhat").last().alias("lower"),
            pl.col("yhat_upper").sort_by("yhat").last().alias("upper"),
            pl.col("model").last().alias("model"),
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
                "peak": _figure(r["peak"], r["metric"]),
                "peak at (UTC)": f"{r['peak_at']:%a %d %b %H:%M}",
                "band (low - high)": f"{_figure(r['lower'])} - {_figure(r['upper'])}",
            }
        )
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


def short_reason(reason: str | None, limit: int = 60) -> str | None:
    """The first clause of a decision's reason, without the ``cur -> target (+n):`` prefix or
    the trailing ``(lead .., margin ..)`` detail (both are in the full reason)."""
    if not reason:
        return reason
    head, sep, rest = reason.partition(": ")
    text = rest if sep and re.match(r"^\S+ -> \d+", head) else reason
    first = re.sub(r" \(lead [^)]*\)$", "", text.split("; ")[0])
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."


def _change(current: Any, target: Any) -> str:
    if current is None:
        return f"? -> {target}"
    delta = int(target) - int(current)
    return f"{current} -> {target}" + (f" ({delta:+d})" if delta else " (no change)")


def _unit(record: Mapping[str, Any]) -> str | None:
    """The unit of ``demand_forecast``: the players resource's required demand (the fleet's
    demand metric, players unless configured otherwise)."""
    inputs = record.get("inputs") or {}
    models = inputs.get("forecast_models") or {}
    if len(models) == 1:
        return str(next(iter(models)))
    return "players" if "required_players" in inputs or "players" in models else None


def _processes(r: Mapping[str, Any]) -> str | None:
    rec = (r.get("inputs") or {}).get("processes")
    if not rec:
        return None
    learned = (rec.get("learned") or {}).get("processes_per_instance")
    return describe_processes(rec.get("processes_per_instance"), rec.get("source"), learned)


def render_plan_table(decisions: Sequence[Any]) -> list[dict[str, Any]]:
    """Readable at 1440 px: fleet, current -> target, applied, a short reason first; units and
    rounded numbers; the full reason last."""
    rows = []
    for d in decisions:
        r = as_record(d)
        if r.get("applied"):
            applied = f"yes: {r.get('applied_desired')}"
        elif r.get("mode") == "forecast_only":
            applied = "no: forecast-only"
        elif r.get("current") is not None and r.get("current") == r.get("target"):
            applied = "no: at target"
        else:
            applied = "no" + (f": {r['outcome']}" if r.get("outcome") else "")
        rows.append(
            {
                "fleet": r.get("fleet"),
                "current -> target": _change(r.get("current"), r.get("target")),
                "applied": applied,
                "why": short_reason(r.get("reason")),
                "demand (with margin)": _figure(r.get("demand_forecast"), _unit(r)),
                "processes per instance": _processes(r),
                "mode": r.get("mode"),
                "status": r.get("status"),
                "unserved": _figure(r.get("unserved_instances"), "instances")
                if r.get("unserved_instances")
                else None,
                "group": r.get("asg_name"),
                "full reason": r.get("reason"),
            }
        )
    return rows


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
                    "unserved": _figure(p["unserved"], f"{rep['metric']}-h"),
                    "idle": _figure(p["idle"], f"{rep['metric']}-h"),
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
    decisions: list[Any] = field(default_factory=list)
    margins: dict[str, float] = field(default_factory=dict)  # fleet -> safety margin
    overrides: list[Any] = field(default_factory=list)
    accuracy: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    replays: list[dict[str, Any]] = field(default_factory=list)  # fleet, metric, out, table
    approvals: list[Any] = field(default_factory=list)  # PendingChange-like: waiting for a person


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
        out.append(f"## Forecast\n{s.forecast_rows} forecast row(s) written.\n")
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
                    "demand (with margin)": _figure(r.get("demand_forecast"), _unit(r)),
                    "current -> target": _change(r.get("current"), r.get("target")),
                    "status": r.get("status"),
                    "unserved": r.get("unserved_instances"),
                    "not scaled because": why_not_scaled(d),
                }
            )
        out.append("## Capacity\n" + _md_table(rows))
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


# --------------------------------------------------------------------------- tasks (publish)

# Publishing talks to the Prefect API: safe to repeat, retried on transient errors only.
# Never cached: publishing is a side effect.
_publish: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
    "cache_policy": NO_CACHE,
}


@task(name="publish-forecast-table", **_publish)
def publish_forecast(scope: str | None, forecast: pl.DataFrame | None) -> str:
    key = artifact_key("forecast", scope)
    rows = render_forecast_table(forecast)
    create_table_artifact(
        rows or [{"note": "no forecast in this run"}],
        key=key,
        description=forecast_description(forecast, scope),
    )
    return key


@task(name="publish-capacity-plan", **_publish)
def publish_capacity_plan(scope: str | None, decisions: Sequence[Any]) -> str:
    key = artifact_key("capacity-plan", scope)
    rows = render_plan_table(decisions)
    create_table_artifact(
        rows or [{"note": "no fleet for this game type"}],
        key=key,
        description=f"Capacity decisions per fleet ({scope or 'all'})",
    )
    return key


def publish_summary(summary: RunSummary) -> str:
    """The run summary as the flow run's own artifact: called from the flow (not a task), so
    it shows on the flow run's Artifacts tab, not only under a task run."""
    key = artifact_key("run-summary", summary.scope)
    create_markdown_artifact(
        render_summary(summary), key=key, description=f"fleetcast {summary.flow} run summary"
    )
    return key


@task(name="publish-replays", **_publish)
def publish_replays(scope: str | None, replays: Sequence[Mapping[str, Any]]) -> str:
    key = artifact_key("backfill-replay", scope)
    create_table_artifact(
        render_replay_table(replays) or [{"note": "no decisions replayed"}],
        key=key,
        description="Backfill: replayed capacity decisions per fleet, policy vs reactive "
        "(unserved and idle in metric-hours; recorded, never applied)",
    )
    return key


MAX_PLOTS = 6


def plots_markdown(images: Sequence[tuple[str, bytes]], note: str = "") -> str:
    """PNG images inline (base64 data URIs) in markdown: the Prefect UI renders them on the
    run's Artifacts tab, where a ``file://`` link would not open from an http page."""
    import base64

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


def _capacity_plot(
    con: Any, d: Mapping[str, Any], metric: str, forecast: pl.DataFrame | None, out: Path
) -> tuple[str, bytes]:
    """One fleet's capacity in effect (players, as each decision sized them) against the last
    three days of demand and the forecast ahead."""
    from datetime import UTC, datetime, timedelta

    from fleetcast.resources import db
    from fleetcast.resources.plots import plot_capacity_vs_demand
    from fleetcast.stages.events import event_spans

    key = {"game_type": d["game_type"], "region": d["region"], "metric": metric}
    since = d["decided_at"] - timedelta(days=3)
    actual = con.sql(db.sql("plots_actuals"), params={**key, "since": since}).pl()
    capacity = con.sql(
        db.sql("plots_capacity_history"), params={"fleet": d["fleet"], "since": since}
    ).pl()
    # held until the next hourly cycle decides again, not to the forecast's end: a line held
    # for two days would look like a shortage the next runs will prevent
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
    plot_capacity_vs_demand(actual, capacity, title, path, forecast=ahead, events=events)
    return title, path.read_bytes()


def _forecast_plots(con: Any, forecast: pl.DataFrame, out: Path) -> list[tuple[str, bytes]]:
    """Each series of the capacity metric (players, else all): its forecast against the three
    days of actuals before it."""
    from datetime import timedelta

    from fleetcast.resources import db
    from fleetcast.resources.plots import plot_forecast_vs_actual

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


@task(name="publish-plots", **_publish)
def publish_plots(
    settings: Any,
    scope: str | None,
    forecast: pl.DataFrame | None,
    decisions: Sequence[Any] = (),
) -> str | None:
    """The run's plots as one markdown artifact with the images inline (``plots-<game-type>``):
    per fleet decided, capacity in effect against demand over the last three days and the
    forecast ahead; per series of the capacity metric, the forecast against actuals."""
    from fleetcast.resources import db

    if forecast is not None and forecast.height == 0:
        forecast = None
    if forecast is None and not decisions:
        return None
    out = Path(settings.reports_dir) / "runs" / artifact_key("plots", scope)
    images: list[tuple[str, bytes]] = []
    # Not read_only: this runs after the run lock is released, and DuckDB refuses a read-only
    # connection in a process that holds a read-write one to the same file (another run's).
    with db.session(settings.db_path) as con:
        fleets = {
            r["fleet"]: r
            for r in con.sql(db.sql("fleet_list"), params={"game_type": scope}).pl().to_dicts()
        }
        for d in [as_record(d) for d in decisions][:MAX_PLOTS]:
            if d["fleet"] in fleets:
                metric = fleets[d["fleet"]]["demand_metric"]
                images.append(_capacity_plot(con, d, metric, forecast, out))
        if forecast is not None:
            images += _forecast_plots(con, forecast, out)
    key_name = artifact_key("plots", scope)
    create_markdown_artifact(
        plots_markdown(
            images,
            "Capacity in effect (green steps: each recorded decision, this run's until the next "
            "hourly run) against demand (black) and the forecast ahead "
            "(blue, dashed; hours short in red); then each forecast (blue, with its interval) "
            f"against actuals. {len(images)} plot(s).",
        ),
        key=key_name,
        description=f"Plots of this run: capacity vs demand, forecasts ({scope or 'all'})",
    )
    return key_name


@task(name="publish-replay-plots", **_publish)
def publish_replay_plots(scope: str | None, replays: Sequence[Mapping[str, Any]]) -> str | None:
    """Each backfill replay's capacity-vs-demand plot inline (``backfill-plots-<game-type>``)."""
    plots = [(rep, Path(str(rep.get("plot")))) for rep in replays if rep.get("plot")]
    images = [
        (f"{rep['fleet']}: replayed capacity vs {rep['metric']}", path.read_bytes())
        for rep, path in plots
        if path.is_file()
    ][:MAX_PLOTS]
    if not images:
        return None
    key = artifact_key("backfill-plots", scope)
    create_markdown_artifact(
        plots_markdown(
            images,
            "Replayed capacity (green steps) against the demand that came (black); hours short "
            "in red. Recorded, never applied.",
        ),
        key=key,
        description=f"Backfill: replayed capacity vs demand per fleet ({scope or 'all'})",
    )
    return key


@task(name="publish-links", **_publish)
def publish_links(scope: str | None, docs_dir: Path, reports_dir: Path) -> list[str]:
    """Links to GX Data Docs and the report plots, where they exist."""
    keys = []
    docs = Path(docs_dir) / "index.html"
    if docs.exists():
        key = artifact_key("data-docs", scope)
        create_link_artifact(docs.resolve().as_uri(), link_text="GX Data Docs", key=key)
        keys.append(key)
    reports = Path(reports_dir)
    if reports.is_dir():
        pages = sorted(reports.rglob("*.html")) or sorted(reports.rglob("*.png"))
        if pages:
            key = artifact_key("report", scope)
            newest = max(pages, key=lambda p: p.stat().st_mtime)
            create_link_artifact(newest.resolve().as_uri(), link_text=newest.name, key=key)
            keys.append(key)
    return keys
