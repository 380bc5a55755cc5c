"""Plan and apply capacity: fleets + latest forecasts + observed demand + overrides + the groups'
current state -> the policy's decisions -> the capacity backend -> one `allocations` row each.

Plain functions (no Prefect): ``tasks/plan.py`` and ``tasks/apply.py`` wrap them, and
``fleetcast scale`` calls :func:`allocate`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fleetcast.config import Settings, job_runner
from fleetcast.resources import db
from fleetcast.resources.aws import (
    ApplyResult,
    CapacityBackend,
    GroupNotAllowed,
    GroupState,
    apply_decision,
    is_allowed,
)
from fleetcast.stages import approval
from fleetcast.stages.approval_rules import load_rules
from fleetcast.stages.budgets import budget_scopes, run_rule
from fleetcast.stages.decide import DecideJob, FleetJob, decide_batch
from fleetcast.stages.fleets import load_fleets
from fleetcast.stages.overrides import list_overrides
from fleetcast.stages.plan_inputs import read_plan_inputs
from fleetcast.stages.processes import plan_processes, record_setting_changes, sized_spec
from fleetcast.stages.records import record_decisions
from models.approval import Proposal
from models.clock import utcnow
from models.decision import FleetState
from models.policy import Budget, Decision
from models.precedence import settle
from models.processes import ProcessFit

# Fleets per decision job: a fleet fed the nowcast's whole window (about 47 days) costs about
# 27 ms of CPU, a batch about 1.3 s. On a Dask cluster the batches spread over its workers.
DECIDE_BATCH = 50
# This machine's workers for the decisions: None = every core from DECIDE_PARALLEL_FLEETS
# fleets on (below that, every batch in this process: a spawned process costs about 3 s to
# start). benchmarks/decision_cycle.py --plan-only, 1,000 fleets, on the idle 2-core machine:
# 13.2 s in two processes against 22.6 s in one; on the machine shared at load 4-6 two were
# slower (43.9 s against 36.5 s): docs/performance.md "Decision cycle at studio scale".
DECIDE_WORKERS: int | None = None
DECIDE_PARALLEL_FLEETS = 200


def new_run_id(now: datetime) -> str:
    return f"scale-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Plan:
    """Decisions of one run, with the group states they were made from (read before write)."""

    run_id: str
    now: datetime
    decisions: tuple[Decision, ...]
    states: Mapping[str, GroupState]  # by fleet; absent when the group could not be read
    busy: Mapping[str, frozenset[str]]  # extra busy instance ids by group, from the caller
    # changes that need approval (held in ``decisions``), recorded by apply_and_record first
    proposals: tuple[Proposal, ...] = ()
    asked_by: str = ""


# ---------------------------------------------------------------------------------------------
# Plan (reads only)


def plan(
    settings: Settings,
    *,
    forecast_only: bool = False,
    game_type: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    backend: CapacityBackend,
    busy: Mapping[str, Collection[str]] | None = None,
    budget: Budget | None = None,
    forecast_errors: Mapping[str, str] | None = None,
    asked_by: str = "fleetcast scale",
) -> Plan:
    """Decide every fleet's capacity. Reads DuckDB and the groups; changes nothing.

    ``busy``: extra busy instance ids per group (sessions in progress reported by the caller),
    on top of instances tagged ``fleetcast:busy=true``. ``forecast_errors``: a reason per fleet
    or game type the forecast cannot be trusted (failed validation, unloadable model).
    Each fleet is decided through :func:`models.precedence.decide_one`, then the run's fleets
    are settled together by :func:`models.precedence.settle` (budgets, then each fleet's
    approval rule, which holds changes that need a person: ``Plan.proposals``; ``asked_by`` says
    what asked: a flow run, ``fleetcast scale``).
    """
    now = now or utcnow()
    run_id = run_id or new_run_id(now)
    busy_extra = {k: frozenset(v) for k, v in (busy or {}).items()}
    errors = dict(forecast_errors or {})
    observed_age = timedelta(minutes=settings.observed_max_age_minutes)
    max_age = timedelta(hours=settings.freshness_hours)  # of stored forecasts and ingest
    decisions: list[Decision] = []
    states: dict[str, GroupState] = {}
    with (
        db.session(settings.db_path) as con,  # a writer: applies pending migrations
        ThreadPoolExecutor(1, thread_name_prefix="describe") as aws,
    ):
        # Reads: a handful of queries for all the fleets (stages/plan_inputs.py), and the groups
        # in one batch read, sent first and answered while the database is read.
        fleets = load_fleets(con, game_type)
        described = aws.submit(_describe_all, backend, [f.asg_name for f in fleets])
        overrides = list_overrides(con, now)
        rules, pending = load_rules(con), approval.pending_by_fleet(con, now)
        fits = plan_processes(
            con,
            fleets,
            now=now,
            overrides=overrides,
            window_hours=settings.process_window_hours,
            quantile=settings.process_quantile,
            headroom=settings.process_headroom,
        )
        # processes per instance from telemetry (step 1 of models/precedence.py)
        sized = [sized_spec(replace(f, mode="forecast_only") if forecast_only else f,
                            fits[f.fleet]) for f in fleets]  # fmt: skip
        inputs = read_plan_inputs(
            con,
            sized,
            now,
            observed_max_age=observed_age,
            ingest_window=max_age,
        )
        known = described.result()
        jobs: list[FleetJob] = []
        for spec in sized:
            state: GroupState | None = known.get(spec.asg_name)
            group_error: str | None = None
            try:
                state = state or backend.describe(spec.asg_name)
                states[spec.fleet] = state
            except Exception as exc:  # unreadable group: decide fail-static, apply nothing
                group_error = f"could not read group {spec.asg_name}: {exc}"
            busy_ids: set[str] = set()
            if state is not None:
                live = {
                    i.instance_id for i in state.instances if i.lifecycle_state != "Terminating"
                }
                busy_ids = (set(state.busy_ids) | set(busy_extra.get(spec.asg_name, ()))) & live
            fleet_state = FleetState(
                current=state.desired if state is not None else None,
                current_max=state.max_size if state is not None else None,
                busy=len(busy_ids),
                overrides=overrides,
                history=inputs[spec.fleet].history,
            )
            error = group_error or errors.get(spec.fleet) or errors.get(spec.game_type)
            jobs.append((spec, fleet_state, inputs[spec.fleet], error))
        # Decisions from that plain data (no query per fleet), in batches wherever the job
        # runner runs them (this machine's cores, or the Dask cluster when one is configured).
        decided = _decide_all(settings, (now, observed_age, max_age), jobs)
        for (spec, _, _, _), decision in zip(jobs, decided, strict=True):
            fit = fits[spec.fleet]
            decision = replace(
                decision,
                inputs={**decision.inputs, "processes": fit.as_record()},
                reason=decision.reason + _processes_note(fit),
            )
            state = states.get(spec.fleet)
            if state is not None and spec.mode == "scale":
                if not is_allowed(state, settings.allowed_groups, settings.allowed_tag):
                    decision = replace(
                        decision, reason=decision.reason + "; group is not on the allow-list"
                    )
            decisions.append(decision)
        # The fleets of the run together, in the one order of models/precedence.py: budgets
        # (stored ones over their whole scope, then the per-run one), approval, busy floor.
        scopes, counted = budget_scopes(
            con,
            backend,
            decisions,
            configured_modes={f.fleet: f.mode for f in fleets},
            now=now,
            extra=run_rule(budget if budget is not None else _budget_from_settings(settings)),
            standing_max_age=max_age,
            known_states=known,
        )
        decisions, proposals = settle(
            decisions,
            budgets=scopes,
            counted=counted,
            rules=rules,
            pending=pending,
            now=now,
            new_id=lambda: uuid.uuid4().hex[:12],
        )
    asked = f"{run_id} ({asked_by})"
    return Plan(run_id, now, tuple(decisions), states, busy_extra, tuple(proposals), asked)


def decide_workers(fleets: int) -> int | None:
    """This machine's workers for ``fleets`` decisions: ``DECIDE_WORKERS``, or (None) every
    core from ``DECIDE_PARALLEL_FLEETS`` fleets on and this process below."""
    if DECIDE_WORKERS is None and fleets < DECIDE_PARALLEL_FLEETS:
        return 1
    return DECIDE_WORKERS


def _decide_all(
    settings: Settings, clock: tuple[datetime, timedelta, timedelta], fleets: Sequence[FleetJob]
) -> list[Decision]:
    """Each fleet's decision, in order: batches of ``DECIDE_BATCH`` fleets through the job
    runner (:func:`fleetcast.config.job_runner`): on this machine with
    :func:`decide_workers` workers, or on the Dask cluster when an address is configured (the
    same pure function on plain data; the decisions are the same wherever they are made).
    ``clock``: now, the observed demand's and the stored forecasts' maximum ages (as
    :data:`DecideJob` has them)."""
    if not fleets:
        return []
    batches: list[DecideJob] = [
        (*clock, fleets[i : i + DECIDE_BATCH]) for i in range(0, len(fleets), DECIDE_BATCH)
    ]
    done = job_runner(settings, decide_workers(len(fleets))).run(
        decide_batch,
        batches,
        slow=True,
        cost=lambda job: sum(len(inputs.ts) for _, _, inputs, _ in job[3]),
    )
    return [d for batch in done for d in batch]


def _processes_note(fit: ProcessFit) -> str:
    """The decision's word on a learned processes per instance that was held or bounded."""
    if not fit.bounded:
        return ""
    learned = (fit.learned or {}).get("processes_per_instance")
    head = "held" if fit.source == "held" else "bounded"
    return (
        f"; processes per instance {fit.processes_per_instance} ({head}; learned {learned}): "
        f"{fit.bounded}" + ("; waits for approval (fleetcast approve)" if fit.approval else "")
    )


def _budget_from_settings(settings: Settings) -> Budget:
    return Budget(
        max_instances=settings.budget_instances,
        max_cost_per_hour=settings.budget_cost_per_hour,
        hard=settings.budget_hard,
    )


# ---------------------------------------------------------------------------------------------
# Apply and record


def _describe_all(backend: CapacityBackend, names: Sequence[str]) -> dict[str, GroupState]:
    """All groups read in one batch; {} when the batch read fails, so that each group is then
    read on its own and a failure is recorded on its fleet alone."""
    if not names:
        return {}
    try:
        return backend.describe_many(names)
    except Exception:
        return {}


def _apply_one(
    settings: Settings,
    backend: CapacityBackend,
    plan_: Plan,
    d: Decision,
    fresh_states: Mapping[str, GroupState],
) -> tuple[Decision, ApplyResult | None, GroupState | None]:
    """One fleet's apply: the group as read just before, the fewest calls, the outcome."""
    state = plan_.states.get(d.fleet)
    if state is None:
        return replace(d, outcome="not applied: the group could not be read"), None, None
    try:
        fresh = state
        if d.mode == "scale":
            fresh = fresh_states.get(d.asg_name) or backend.describe(d.asg_name)
        result = apply_decision(
            backend,
            d,
            fresh,
            allowed_groups=settings.allowed_groups,
            allowed_tag=settings.allowed_tag,
            busy_ids=plan_.busy.get(d.asg_name, frozenset()),
        )
    except GroupNotAllowed as exc:
        return replace(d, outcome=f"refused: {exc}"), None, state
    except Exception as exc:  # recorded with the outcome; the run goes on
        return replace(d, outcome=f"error: {type(exc).__name__}: {exc}"), None, state
    d = replace(
        d, applied=result.applied, applied_desired=result.applied_desired, outcome=result.outcome
    )
    return d, result, fresh


def apply_concurrency(settings: Settings) -> int:
    """Fleets applied at once (``settings.aws_concurrency``, default 8): each fleet's calls are
    independent, and botocore's standard retries absorb throttling."""
    return max(1, settings.aws_concurrency)


def apply_and_record(
    settings: Settings, plan_: Plan, *, backend: CapacityBackend
) -> list[Decision]:
    """Apply each decision (scale mode only), then record it with the outcome of the call.

    The scale-mode groups are read again in one batch just before (read before write), then the
    fleets are applied concurrently (``apply_concurrency``); the records are written in plan
    order, in this thread. One fleet's failure (refused group, AWS error) is recorded and does
    not stop the others. Changes that need approval are recorded as pending first.
    """
    with db.session(settings.db_path) as con:  # before any AWS call and before anyone is asked
        approval.expire_due(con, plan_.now)
        approval.record_proposals(con, plan_.proposals, plan_.asked_by or plan_.run_id, plan_.now)
        record_setting_changes(con, plan_.decisions, plan_.now)
    decisions = plan_.decisions
    scale = [d.asg_name for d in decisions if d.mode == "scale" and d.fleet in plan_.states]
    fresh = _describe_all(backend, scale)
    workers = min(apply_concurrency(settings), max(1, len(decisions)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
        done = list(pool.map(lambda d: _apply_one(settings, backend, plan_, d, fresh), decisions))
    with db.session(settings.db_path) as con:
        record_decisions(con, plan_.run_id, done)
    return [d for d, _, _ in done]


def allocate(
    settings: Settings,
    *,
    forecast_only: bool = False,
    game_type: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    backend: CapacityBackend,
    busy: Mapping[str, Collection[str]] | None = None,
    budget: Budget | None = None,
    forecast_errors: Mapping[str, str] | None = None,
    asked_by: str = "fleetcast scale",
) -> list[Decision]:
    """Plan every fleet (or one game type's), apply in scale mode, record in `allocations`."""
    p = plan(
        settings,
        forecast_only=forecast_only,
        game_type=game_type,
        run_id=run_id,
        now=now,
        backend=backend,
        busy=busy,
        budget=budget,
        forecast_errors=forecast_errors,
        asked_by=asked_by,
    )
    return apply_and_record(settings, p, backend=backend)


def decisions_table(decisions: Sequence[Decision]) -> str:
    """A plain-text table: fleet, mode, current, target, applied, status, reason."""
    header = ("fleet", "mode", "current", "target", "applied", "status", "reason")
    rows = [
        (
            d.fleet,
            d.mode,
            "?" if d.current is None else str(d.current),
            str(d.target),
            str(d.applied_desired) if d.applied_desired is not None else "-",
            d.status,
            d.reason + (f" | {d.outcome}" if d.outcome else ""),
        )
        for d in decisions
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        )
    return "\n".join(lines)
