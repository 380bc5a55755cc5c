"""What the Prefect UI shows: artifacts with stable keys per game type.

- ``forecast-<game-type>``: table, the forecast peak of every series (and its model);
- ``capacity-plan-<game-type>``: table, every fleet's decision (current, target, applied, why);
- ``run-summary-<game-type>``: markdown, validation outcome, training, accuracy, margin applied,
  overrides in force, and why a fleet was not scaled;
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

from fleetcast.stages.orchestration import is_transient

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


def render_forecast_table(forecast: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per series: first and last hour, the peak and when, its band, the model."""
    if forecast is None or forecast.height == 0:
        return []
    peaks = (
        forecast.sort("ts")
        .group_by("game_type", "region", "metric", maintain_order=True)
        .agg(
            pl.col("ts").min().alias("from"),
            pl.col("ts").max().alias("to"),
            pl.col("ts").sort_by("yhat").last().alias("peak_at"),
            pl.col("yhat").max().alias("peak_yhat"),
            pl.col("yhat_lower").sort_by("yhat").last().alias("peak_lower"),
            pl.col("yhat_upper").sort_by("yhat").last().alias("peak_upper"),
            pl.col("model").last().alias("model"),
        )
        .sort("game_type", "region", "metric")
        .head(MAX_TABLE_ROWS)
    )
    return [{k: _cell(v) for k, v in r.items()} for r in peaks.iter_rows(named=True)]


def render_plan_table(decisions: Sequence[Any]) -> list[dict[str, Any]]:
    rows = []
    for d in decisions:
        r = as_record(d)
        rows.append(
            {
                "fleet": r.get("fleet"),
                "region": r.get("region"),
                "group": r.get("asg_name"),
                "mode": r.get("mode"),
                "current": r.get("current"),
                "target": r.get("target"),
                "applied": r.get("applied_desired") if r.get("applied") else None,
                "processes/instance": r.get("processes_per_instance"),
                "demand": _cell(r.get("demand_forecast")),
                "status": r.get("status"),
                "unserved": r.get("unserved_instances"),
                "reason": r.get("reason"),
                "outcome": r.get("outcome") or None,
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
        rejected = sum(1 for r in rows if r["status"] == "rejected")
        quarantined = sum(int(r["rows_quarantined"] or 0) for r in rows)
        out.append(
            f"## Validation\n{len(rows)} file(s), {rejected} rejected, "
            f"{quarantined} row(s) quarantined.\n\n" + _md_table(rows)
        )
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
                    "demand (with margin)": r.get("demand_forecast"),
                    "current": r.get("current"),
                    "target": r.get("target"),
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
        description=f"Forecast peaks per series ({scope or 'all'})",
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


@task(name="publish-run-summary", **_publish)
def publish_summary(summary: RunSummary) -> str:
    key = artifact_key("run-summary", summary.scope)
    create_markdown_artifact(
        render_summary(summary), key=key, description=f"fleetcast {summary.flow} run summary"
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
