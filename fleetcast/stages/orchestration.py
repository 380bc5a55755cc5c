"""What the flows need from the outside world, built in one place (no Prefect flow logic here).

- :func:`settings_for`: flow parameters + the worker's environment -> ``Settings`` (through the
  composition root ``Settings.from_env``).
- :func:`run_stage`: a stage run here, the one owner of the database; its per-series jobs go
  to the Dask cluster when ``FLEETCAST_DASK_ADDRESS`` names a scheduler
  (:func:`fleetcast.config.job_runner`).
- :func:`training_due`, :func:`landing_files_between`: small reads the flows decide on.
- :func:`is_transient`: the ``retry_condition_fn`` for tasks that are safe to repeat: retries
  I/O hiccups, never validation, permission or bad-name errors.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetcast.config import ENV, Settings
from fleetcast.resources import db
from models.names import check_name

DASK_ADDRESS_ENV = ENV["dask_address"][0]


# flow parameter -> setting, for the parameters a run may set (None = the worker's environment)
RUN_SETTINGS = {
    "db": "db_path",
    "landing": "landing_dir",
    "aws_endpoint": "aws_endpoint_url",
    "aws_credentials_block": "aws_credentials_block",
    "aws_concurrency": "aws_concurrency",
    "observed_max_age_minutes": "observed_max_age_minutes",
}


def settings_for(params: Any, **overrides: object) -> Settings:
    """Settings for a flow run: explicit parameters win, then the environment, then defaults.

    ``params`` is any object with some of the attributes in ``RUN_SETTINGS`` (the flows'
    pydantic parameter models); ``overrides`` are settings by name.
    """
    values: dict[str, object] = {}
    for param, name in RUN_SETTINGS.items():
        value = getattr(params, param, None)
        if value in (None, ""):
            continue
        values[name] = Path(str(value)) if name in ("db_path", "landing_dir") else value
    settings = Settings.from_env(**{**values, **overrides})
    # Absolute paths: a run may change folder (pull steps) and GX needs absolute paths.
    settings = replace(
        settings,
        db_path=settings.db_path.absolute(),
        landing_dir=settings.landing_dir.absolute(),
        work_dir=settings.work_dir.absolute(),
    )
    return settings


def _newest(settings: Settings, query: str, game_type: str | None) -> datetime | None:
    if game_type is not None:
        check_name("game type", game_type)
    if not settings.db_path.exists():
        return None
    with db.session(settings.db_path) as con:
        rows = con.sql(db.sql(query), params={"game_type": game_type}).fetchall()
    return rows[0][0] if rows and rows[0][0] is not None else None


def newest_model_at(settings: Settings, game_type: str | None) -> datetime | None:
    """When the newest model of a game type (or of any) was trained; None when there is none."""
    return _newest(settings, "flows_newest_model", game_type)


def training_due(
    settings: Settings, game_type: str | None, max_age: timedelta, now: datetime
) -> tuple[bool, str]:
    """Whether to train now, and why (for the run summary)."""
    newest = newest_model_at(settings, game_type)
    if newest is None:
        return True, "no model trained yet"
    age = now - newest
    hours = age.total_seconds() / 3600
    if age >= max_age:
        return (
            True,
            f"newest model is {hours:.1f} h old (limit {max_age.total_seconds() / 3600:g} h)",
        )
    return False, f"newest model is {hours:.1f} h old: not due yet"


_DATE_RE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def _date_in(path: Path) -> date | None:
    """The last YYYY-MM-DD / YYYYMMDD found in the path (file name first, then folders)."""
    for part in reversed(path.parts):
        for m in reversed(list(_DATE_RE.finditer(part))):
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                continue
    return None


def landing_files_between(
    settings: Settings, start: date | None = None, end: date | None = None
) -> list[Path]:
    """Files in the landing folder (recursively) that belong to days ``start``..``end``
    (either None = open-ended; both None = every file).

    A file belongs to the day written in its path (``landing/2026-11-03/players.csv`` or
    ``metrics_20261103.parquet``); a file without a date belongs to the UTC day it was last
    modified. Symlinks and hidden files are skipped (ingest refuses them anyway).
    """
    root = settings.landing_dir
    if not root.is_dir():
        return []
    chosen = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink() or not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        if start is None and end is None:
            chosen.append(path)
            continue
        day = _date_in(rel)
        if day is None:
            day = datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
        if (start is None or start <= day) and (end is None or day <= end):
            chosen.append(path)
    return chosen


_TRANSIENT_NAMES = {
    "DatabaseBusy",
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
}
_TRANSIENT_AWS_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded"}


def is_transient_error(exc: BaseException) -> bool:
    """I/O worth retrying (busy database, dropped connection, throttling), nothing else."""
    if isinstance(exc, (PermissionError, ValueError, TypeError, KeyError, LookupError)):
        return False  # validation, bad names, refused groups, missing things: retrying won't help
    if type(exc).__name__ in _TRANSIENT_NAMES:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "")
        return code in _TRANSIENT_AWS_CODES
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks: retry only transient I/O errors."""
    try:
        state.result()
    except Exception as exc:  # the task's exception
        return is_transient_error(exc)
    return False


def newest_forecast_at(settings: Settings, game_type: str | None) -> datetime | None:
    """When the newest forecast of a game type (or of any) was made; None when there is none."""
    return _newest(settings, "flows_newest_forecast", game_type)


def run_stage(settings: Settings, stage: Any, game_type: str | None, **kwargs: Any) -> Any:
    """Run a task for one game type (or all) here and return its result. This process reads
    and writes the database; with a Dask address configured the task's per-series jobs run on
    the cluster (plain data in, plain results out: :func:`fleetcast.config.job_runner`), and
    otherwise on this machine's cores."""
    return stage(settings, game_type=game_type, **kwargs)
