"""``fleetcast demo``: the main job end to end on embedded defaults.

Generates a month of seeded sample telemetry into the landing folder, imports the sample fleets,
starts a local moto server with one tagged Auto Scaling group per fleet, runs the ``pipeline``
flow (ingest -> validate -> train -> forecast -> plan -> apply) in Prefect's ephemeral mode,
then prints what happened per game type and writes an HTML report with plots.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fleetcast.config import Settings
from fleetcast.interface import sample
from fleetcast.interface.report import (
    ReportSection,
    plot_capacity_vs_demand,
    plot_forecast_vs_actual,
    write_html_report,
)
from fleetcast.resources import db
from fleetcast.resources.aws import make_client
from fleetcast.resources.local_aws import moto_server, provision_groups
from fleetcast.resources.logs import quiet_libraries, run_logs_to
from fleetcast.resources.pool import run_jobs
from fleetcast.stages.backtest import BacktestRequest, run_backtest
from fleetcast.stages.events import event_spans_over
from fleetcast.stages.fleets import import_fleets
from fleetcast.stages.status import read_pending, read_waiting_settings
from models.approval import PendingChange
from models.clock import lead_hours
from models.explain import full_reason, short_reason


@dataclass(frozen=True)
class DemoResult:
    summary: pl.DataFrame  # one row per game type
    fleets: pl.DataFrame  # one row per fleet
    report: Path
    seconds: float


def _desired(settings: Settings, names: list[str]) -> dict[str, int]:
    client = make_client(settings, "autoscaling")
    groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=names)
    return {
        g["AutoScalingGroupName"]: int(g["DesiredCapacity"]) for g in groups["AutoScalingGroups"]
    }


def prefect_server_in_background() -> threading.Thread:
    """Start Prefect's ephemeral server (15-25 s on a quiet 2-core machine: a uvicorn process
    that imports Prefect's server and opens its database) in a thread while the sample is written
    and moto starts; join the thread before the first flow call. Prefect's client then finds its
    one ``SubprocessASGIServer`` running (``start`` is safe to call again). With
    ``PREFECT_API_URL`` set (a real server, a test harness) there is nothing to start. A failure
    here is left to the flow call, which starts the server itself and says why it could not."""

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer
        from prefect.settings import PREFECT_API_URL

        if PREFECT_API_URL.value():
            return
        with contextlib.suppress(Exception):
            SubprocessASGIServer().start()

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread


# what the flow imports in this process (Great Expectations at ingest: about 3 s; the forecasting
# and plotting libraries as this process trains its share of the series and draws)
FLOW_IMPORTS = ("great_expectations", "prophet", "statsforecast.models", "matplotlib.figure")


def import_while(server: threading.Thread, names: tuple[str, ...] = FLOW_IMPORTS) -> None:
    """Import the flow's heavy libraries while Prefect's server starts in ``server`` (this thread
    would only wait for it): each import is paid here instead of inside the flow. Stops when the
    server is up, so the flow starts no later than it would have, by more than the import under
    way (which the flow would have paid)."""
    quiet_libraries()  # before they import: prophet logs an error at import without plotly
    for name in names:
        if not server.is_alive():
            return
        importlib.import_module(name)


def run_demo(
    settings: Settings, *, days: int = 30, seed: int = 7, replay_days: int = 7
) -> DemoResult:
    from flows.params import PipelineParams
    from flows.pipeline import pipeline

    started = time.perf_counter()
    prefect_ready = prefect_server_in_background()
    sample_dir = settings.landing_dir / "sample"
    manifest = sample.generate(sample_dir, days=days, seed=seed)
    # The fleets file describes infrastructure, not telemetry: keep it out of the landing folder.
    fleets_file = settings.work_dir / "fleets.csv"
    fleets_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(manifest.paths["fleets"][0]), fleets_file)
    specs = import_fleets(fleets_file, settings.db_path)
    print(
        f"sample: {days} days for {len(specs)} fleets in {sample_dir} "
        f"(next tournament {manifest.future_tournament.start:%Y-%m-%d %H:%M} UTC)"
    )

    with moto_server() as moto:
        aws = replace(settings, aws_endpoint_url=moto.url)
        provision_groups(
            moto.url,
            settings.aws_region,
            [(f.asg_name, f.min_size, f.max_size, f.min_size) for f in specs],
        )
        names = [f.asg_name for f in specs]
        before = _desired(aws, names)
        print(f"local AWS (moto) at {moto.url}: {len(names)} Auto Scaling groups")
        log = settings.work_dir / "demo.log"
        print(f"running the pipeline flow (Prefect, ephemeral mode; its log also in {log}) ...")
        import_while(prefect_ready)
        prefect_ready.join()  # the flow's client finds the server running
        with run_logs_to(log):
            pipeline(
                PipelineParams(
                    db=str(settings.db_path),
                    landing=str(settings.landing_dir),
                    aws_endpoint=moto.url,
                    retrain="always",
                )
            )
        after = _desired(aws, names)

    fleets, summary = _summarise(settings, before, after)
    report = write_fleet_report(settings, fleets, replay_days, name="demo.html")
    return DemoResult(summary, fleets, report, time.perf_counter() - started)


def _summarise(
    settings: Settings, before: dict[str, int], after: dict[str, int]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    fleets = fleet_summary(settings).with_columns(
        pl.col("asg_name").replace_strict(before, default=None).alias("capacity_before"),
        pl.col("asg_name").replace_strict(after, default=None).alias("capacity_after"),
    )
    summary = (
        fleets.group_by("game_type", maintain_order=True)
        .agg(
            pl.len().alias("fleets"),
            pl.col("forecast_peak").sum().round(0).alias("forecast_peak_players"),
            pl.col("capacity_before").sum(),
            pl.col("capacity_after").sum(),
            pl.col("champion_cv_mase").mean().round(3),
            pl.col("champion_cv_smape").mean().round(2),
            pl.col("realised_mase").mean().round(3),
        )
        .sort("game_type")
    )
    return fleets, summary


# what the demo shows of each fleet, on the terminal and in the report
FLEET_FIGURES = (
    "decided_by",
    "published_by",
    "champion_cv_mase",
    "realised_mase",
    "forecast_peak",
    "capacity_before",
    "capacity_after",
)


def fleet_summary(settings: Settings) -> pl.DataFrame:
    """Per fleet: the forecaster that decided its newest decision, the champion that serves the
    published forecast and its CV score, its realised (held-out) MASE where actuals arrived after
    a stored forecast, forecast peak, newest decision and its reason."""
    with db.session(settings.db_path, read_only=True) as con:
        return con.sql(db.sql("demo_fleet_summary")).pl()


def write_fleet_report(
    settings: Settings, fleets: pl.DataFrame, replay_days: int, *, name: str = "report.html"
) -> Path:
    """Plots per fleet (forecast vs actual; a replay of capacity vs demand over the last
    ``replay_days`` days) in one self-contained HTML page under the reports folder, the changes
    and the learned settings waiting for approval first."""
    sections = fleet_sections(settings, fleets, replay_days)
    names = set(fleets["fleet"].to_list())
    with db.session(settings.db_path, read_only=True) as con:
        waiting = read_pending(con, names)
        learned = read_waiting_settings(con, names)
    # first: a person has something to decide
    if learned:
        sections.insert(0, learned_settings_section(learned))
    if waiting:
        sections.insert(0, approval_section(waiting))
    return write_html_report(sections, settings.reports_dir / name, title="fleetcast report")


def fleet_sections(
    settings: Settings, fleets: pl.DataFrame, replay_days: int, *, workers: int | None = None
) -> list[ReportSection]:
    """Each fleet's report section, its plots written under the reports folder: drawn in
    processes on every core (``run_jobs``; mostly matplotlib, whose fonts are not thread-safe:
    in-process for a few fleets), the same as drawn one by one (``workers=1``)."""
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(settings.db_path, row, replay_days, out) for row in fleets.iter_rows(named=True)]
    return run_jobs(_fleet_section, jobs, workers, threads=False)


# the database, a row of ``fleet_summary``, the days replayed, the reports folder: plain,
# picklable data (what crosses to a worker process)
SectionJob = tuple[Path, dict[str, Any], int, Path]


def _fleet_section(job: SectionJob) -> ReportSection:
    """One fleet's report section: its figures, why, and two plots (module level, so that a
    worker process can run it; each opens the database read-only)."""
    db_path, row, replay_days, out = job
    images = []
    with db.session(db_path, read_only=True) as con:
        key = {"game_type": row["game_type"], "region": row["region"], "metric": "players"}
        actual = con.sql(db.sql("demo_actuals"), params=key).pl()
        forecast = con.sql(db.sql("demo_latest_forecast"), params=key).pl()
        if actual.height and forecast.height:
            images.append(
                plot_forecast_vs_actual(
                    actual.tail(24 * 7),
                    forecast,
                    f"{row['fleet']}: players, last week and the next 48 h",
                    out / f"{row['fleet']}-forecast.png",
                )
            )
        last = actual["ts"].max() if actual.height else None
        if last is not None:
            start: datetime = last - timedelta(days=replay_days) + timedelta(hours=1)
            replayed, _ = run_backtest(
                con,
                BacktestRequest(
                    game_type=row["game_type"],
                    region=row["region"],
                    metric="players",
                    start=start,
                    lead=lead_hours(row["lead_time_minutes"]),
                ),
            )
            frame = replayed.frame
            events = event_spans_over(con, row["game_type"], row["region"], frame["ts"])
            images.append(
                plot_capacity_vs_demand(
                    frame.select("ts", pl.col("demand").alias("value")),
                    frame.select("ts", "capacity"),
                    f"{row['fleet']}: replay of the last {replay_days} days",
                    out / f"{row['fleet']}-capacity.png",
                    events=events,
                )
            )
    why, in_full = short_reason(row.get("reason")), full_reason(row.get("reason"))
    missing = []
    if row.get("target") is None and row.get("reason") is None:
        missing.append(
            "No capacity decision for this fleet yet: `fleetcast scale` (or the pipeline flow) "
            "makes one."
        )
    if not actual.height:
        missing.append("No players actuals stored for this fleet: nothing to plot or replay.")
    elif not forecast.height:
        missing.append(
            "No stored players forecast to plot: `fleetcast forecast --horizon 48` makes one."
        )
    return ReportSection(
        title=row["fleet"],
        notes=" ".join(missing),
        summary={
            **{
                k: row.get(k) for k in ("game_type", "region", *FLEET_FIGURES, "target", "unserved")
            },
            # one renderer of a decision (models.explain): as in the UI and status
            "why": why,
            "reason in full": in_full if in_full and in_full != why else None,
        },
        images=images,
    )


def learned_settings_section(changes: list[dict[str, Any]]) -> ReportSection:
    """The learned settings waiting for approval (processes per instance beyond their band),
    as one report section: what ``fleetcast status`` lists under the same name."""
    table = pl.DataFrame(
        [
            {
                "fleet": c["fleet"],
                "setting": "processes per instance",
                "learned": f"{c['learned']:g}",
                "band around": f"{c['reference']:g}",
                "sized on meanwhile": f"{c['used']:g}",
                "asked (UTC)": f"{c['created_at']:%Y-%m-%d %H:%M}",
            }
            for c in changes
        ]
    )
    return ReportSection(
        title="Learned settings waiting for approval",
        summary={"settings": len(changes)},
        notes="A value learned from telemetry beyond its band around the configured one: the "
        "fleet is sized on the band's edge until a person answers with `fleetcast approve|reject "
        "--fleet F --note ...`.",
        table=table,
    )


def approval_section(changes: list[PendingChange]) -> ReportSection:
    """The changes waiting for approval, as one report section."""
    table = pl.DataFrame(
        [
            {
                "fleet": c.fleet,
                "change": c.change_id,
                "current -> proposed": f"{c.current} -> {c.proposed}",
                "meanwhile": c.held,
                "expires (UTC)": f"{c.expires_at:%Y-%m-%d %H:%M}",
                "reason": c.reason,
                "asked by": c.asked_by,
                "waiting": c.waiting or "-",
            }
            for c in changes
        ]
    )
    return ReportSection(
        title="Changes waiting for approval",
        summary={"changes": len(changes)},
        notes="Decide with `fleetcast approve|reject --fleet F --note ...` (or the run's form). "
        "Nothing is applied until approved; unanswered changes expire.",
        table=table,
    )
