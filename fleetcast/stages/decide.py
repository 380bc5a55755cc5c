"""The live side of the one decision path (:mod:`models.decision`): a fleet's decision at
``now`` from its data read in bulk (:mod:`fleetcast.stages.plan_inputs`). ``fleetcast scale``
(via :func:`fleetcast.stages.allocate.plan`) calls :func:`decide_from` through
:func:`decide_batch`, a job of plain data that runs here, in a spawned process or on a Dask
worker; ``fleetcast backtest`` feeds the same pure function from a replay; ``fleetcast events``
reads one fleet's fed forecaster (:func:`forecaster_at`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import numpy as np

from fleetcast.stages.plan_inputs import (
    FleetInputs,
    feed_since,
    offsets_for,
    read_one_series,
    read_series_events,
)
from models.decision import (
    DecisionData,
    DecisionForecaster,
    FleetState,
    decide_fleet,
    decision_config,
    feed,
    observed_demand,
)
from models.nowcast import NowcastConfig
from models.policy import Decision, FleetSpec


def forecaster_at(
    con: duckdb.DuckDBPyConnection,
    spec: FleetSpec,
    now: datetime,
    config: NowcastConfig | None = None,
    *,
    events_until: datetime | None = None,
) -> tuple[DecisionForecaster | None, list[datetime], np.ndarray]:
    """The decision forecaster fed the fleet's demand series up to ``now`` (None: no data),
    sized at the fleet's service level unless ``config`` says otherwise.

    ``events_until`` (a projection further ahead, ``fleetcast events``): the events up to then
    are fed too, every stored one taken as known at the newest hour fed (the decision uses an
    event only from when it is known; a projection asks what it will expect of it). The
    forecaster's state is the same for events ahead of the newest hour (they touch no hour it
    has seen); one in progress but not known yet is learned from the newest hour only."""
    cfg = config or decision_config(spec)
    offsets = offsets_for(spec, now)
    since = feed_since(spec, now, cfg)
    ts, values = read_one_series(con, spec.game_type, spec.region, spec.demand_metric, since, now)
    if not ts:
        return None, ts, values
    until = now + timedelta(hours=max(offsets) + 1)
    if events_until is None:
        events = read_series_events(con, spec.game_type, spec.region, since, until, now)
    else:
        newest = ts[-1]
        events = [
            e if e.announced is None or e.announced <= newest else replace(e, announced=newest)
            for e in read_series_events(
                con, spec.game_type, spec.region, since, max(until, events_until)
            )
        ]
    return feed(ts, values.tolist(), offsets, cfg, events), ts, values


def decide_from(
    spec: FleetSpec,
    now: datetime,
    state: FleetState,
    inputs: FleetInputs,
    *,
    observed_max_age: timedelta,
    forecast_error: str | None = None,
    max_forecast_age: timedelta = timedelta(hours=6),
) -> Decision:
    """One fleet's decision at ``now`` from its data read in bulk (no database; ``state``
    carries ``inputs.history``, see :func:`fleetcast.stages.allocate.plan`): the decision
    forecaster fed its demand series, the stored forecasts, the newest observations per metric
    (the demand metric's replaced by the newest hourly value, as the replay sees it). The newest
    rows of the series having failed ingest validation is a ``forecast_error`` (fail-static:
    capacity is kept, the reason says why); the replay of history has no such check."""
    forecaster = None
    values = inputs.values.tolist()
    if inputs.ts:
        forecaster = feed(inputs.ts, values, inputs.offsets, inputs.config, inputs.events)
    forecast_error = forecast_error or inputs.ingest_error
    obs = {k: v for k, v in inputs.observed.items() if k != spec.demand_metric}
    if inputs.ts:
        demand = observed_demand(inputs.ts, values, now, observed_max_age)
        if demand is not None and math.isfinite(demand):
            obs[spec.demand_metric] = demand
    data = DecisionData(forecaster=forecaster, stored=inputs.stored, observed=obs)
    return decide_fleet(
        spec,
        now,
        data,
        state,
        forecast_error=forecast_error,
        max_forecast_age=max_forecast_age,
    )


# One fleet of a decision job: its spec (sized), its state, its inputs, the reason its forecast
# or group cannot be trusted (None: it can).
FleetJob = tuple[FleetSpec, FleetState, FleetInputs, str | None]
# A decision job: now, the observed demand's maximum age, the stored forecasts' maximum age, and
# the fleets, plain data only (no path, no connection): it runs wherever the job runner says.
DecideJob = tuple[datetime, timedelta, timedelta, Sequence[FleetJob]]


def decide_batch(job: DecideJob) -> list[Decision]:
    """:func:`decide_from` on each fleet of a job, in order (module level, so that a spawned
    process or a Dask worker can run it)."""
    now, observed_max_age, max_forecast_age, fleets = job
    return [
        decide_from(
            spec,
            now,
            state,
            inputs,
            observed_max_age=observed_max_age,
            forecast_error=error,
            max_forecast_age=max_forecast_age,
        )
        for spec, state, inputs, error in fleets
    ]
