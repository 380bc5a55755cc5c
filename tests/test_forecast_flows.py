"""The train and forecast flows end to end in Prefect's ephemeral mode (one harness, small data)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db


def test_train_then_forecast_flows(settings: Settings, prefect_harness: None, tmp_path) -> None:
    from flows.forecast import ForecastParams, forecast
    from flows.train import TrainParams, train

    ts = pd.date_range(datetime(1970, 1, 1), periods=24 * 3, freq="h")
    y = 100 + 50 * np.sin(2 * np.pi * ts.hour.to_numpy() / 24)
    frame = pl.DataFrame({"ts": ts.to_numpy(), "value": y})
    with db.session(settings.db_path) as con:
        con.register("frame", frame)
        con.execute(
            "insert into metrics select ts, 'casual_puzzle', 'global', 'players', value, 't' "
            "from frame"
        ).fetchall()
    db_path = str(settings.db_path)
    assert train(TrainParams(db=db_path, game_type="casual_puzzle", metric="players")) == 1
    out = tmp_path / "f.csv"
    rows = forecast(ForecastParams(db=db_path, horizon_hours=12, out=str(out)))
    assert rows == 12
    assert out.read_text().splitlines()[1].startswith("casual_puzzle,global,players,1970-01-04T00")
    # each flow's long step is a progress artifact on its run's page, finished. The backend is
    # shared by the session's tests and reads are paged (200), so read this test's runs only.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters as f
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # run logs reach the API in background batches: send them now
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=f.FlowRunFilter(
                name=f.FlowRunFilterName(any_=["train-casual_puzzle", "forecast-all-12h"])
            )
        )
        ids = [r.id for r in runs]
        assert len(ids) >= 2, [r.name for r in runs]
        arts = client.read_artifacts(
            artifact_filter=f.ArtifactFilter(flow_run_id=f.ArtifactFilterFlowRunId(any_=ids))
        )
        logs = client.read_logs(log_filter=f.LogFilter(flow_run_id=f.LogFilterFlowRunId(any_=ids)))
    shown = {a.description: a.data for a in arts if a.type == "progress"}
    assert shown.get("training series") == 100.0, shown
    assert shown.get("forecasting series") == 100.0, shown
    # and as run log lines (the terminal of a flow run in the foreground, the run's logs)
    lines = [log.message for log in logs]
    assert "training series: 0 of 1" in lines and "forecasting series: 0 of 1" in lines, lines
    assert any(m.startswith("training series: 1 of 1 (") for m in lines), lines
