"""The composition root: everything that differs between environments, built in one place.

It builds resources (``fleetcast.resources``) from the settings and imports no stage.

Every setting is a typed field below, read from the environment by :meth:`Settings.from_env`;
the CLI and the flow parameters override the ones it makes sense to set per run. The table of
settings (variable, default, meaning) is in ``docs/operations.md``, section "Settings".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from fleetcast.resources.aws import AwsBackend, CapacityBackend
from fleetcast.resources.dask_pool import DaskPool
from fleetcast.resources.pool import JobRunner, LocalPool
from fleetcast.resources.recorded import recorded_backend

DEFAULT_DB = "fleetcast.duckdb"
BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")  # a Prefect block document name


class SettingError(ValueError):
    """An environment variable that does not parse as its setting's type."""


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path(DEFAULT_DB)
    landing_dir: Path = Path("landing")
    work_dir: Path = Path(".fleetcast")  # reports, GX Data Docs, plots
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # only for a local stand-in such as a moto server
    # a Prefect AwsCredentials block (prefect-aws) to build the boto3 session from; None = the
    # standard credential chain (environment, profile, instance or task role)
    aws_credentials_block: str | None = None
    allowed_groups: tuple[str, ...] = ()  # ASG names fleetcast may touch; empty = fleets table
    allowed_tag: str = "fleetcast:managed"  # a group carrying this tag = "true" is allowed
    future_skew_minutes: int = 15
    freshness_hours: int = 6
    # the hourly cycle forecasts a series again every this many hours (models/refresh.py);
    # None: half the freshness limit (3 of 6), so that a failed run never leaves a stale forecast
    forecast_refresh_hours: int | None = None
    # AWS calls: fleets applied at once, botocore's standard-mode attempts and timeouts (seconds)
    aws_concurrency: int = 8
    aws_max_attempts: int = 5
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 15.0
    # observed demand older than this is not used as the reactive floor
    observed_max_age_minutes: int = 120
    # a shared budget over the fleets planned together (None = no limit)
    budget_instances: int | None = None
    budget_cost_per_hour: float | None = None
    # the per-run budget cuts a person's capacity override too (default: the override holds)
    budget_hard: bool = False
    # processes per instance learned from telemetry: the window, the quantile of per-process
    # needs, and the share of each instance resource kept free
    process_window_hours: int = 24
    process_quantile: float = 0.95
    process_headroom: float = 0.2
    # a Dask scheduler to spread per-game-type stages over (None = this worker's threads)
    dask_address: str | None = None
    # the secret the model registry's HMACs are keyed with (None: a key file under work_dir,
    # generated on first use); never printed
    model_key: str | None = field(default=None, repr=False)
    # a Prefect Secret block holding that secret (used when model_key is not set; a block that
    # cannot be loaded stops the run, it never falls back to the key file)
    model_key_block: str | None = None

    def __post_init__(self) -> None:
        r = self.forecast_refresh_hours
        if r is not None and r > 1 and r >= self.freshness_hours:
            raise SettingError(
                f"FLEETCAST_FORECAST_REFRESH_HOURS ({r}) must be below FLEETCAST_FRESHNESS_HOURS "
                f"({self.freshness_hours}), or 1: a stored forecast kept that long would be held "
                "as stale"
            )

    @property
    def refresh_hours(self) -> int:
        """How often the hourly cycle forecasts a series again: ``forecast_refresh_hours``, or
        half the freshness limit (at least 1: every hour)."""
        return self.forecast_refresh_hours or max(1, self.freshness_hours // 2)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then the environment (``ENV`` below), then non-None ``overrides``."""
        return cls.from_mapping(os.environ, **overrides)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], **overrides: object) -> Settings:
        """As :meth:`from_env`, from any mapping of environment variables."""
        values: dict[str, Any] = {}
        for name, (var, parse) in ENV.items():
            raw = env.get(var, "").strip()
            if name == "aws_region" and not raw:
                raw = env.get("AWS_DEFAULT_REGION", "").strip()
            if not raw:
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise SettingError(f"{var}={raw!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(cls(), **values)

    @property
    def docs_dir(self) -> Path:
        return (self.work_dir / "gx_docs").resolve()

    @property
    def model_key_path(self) -> Path:
        """The local default of ``model_key``: a key file generated on first use (mode 0600)."""
        return (self.work_dir / "model.key").resolve()

    @property
    def reports_dir(self) -> Path:
        return (self.work_dir / "reports").resolve()


def capacity_backend(
    settings: Settings, kind: Literal["aws", "recorded"] = "aws"
) -> CapacityBackend:
    """The capacity backend of one command or flow run, built once here and handed down to plan
    and apply: boto3 against AWS (a moto server when ``aws_endpoint_url`` is set), or the
    recorded backend (no AWS at all: groups start where the last recorded decisions left them).
    """
    if kind == "recorded":
        return recorded_backend(settings.db_path, settings.allowed_tag)
    if kind != "aws":
        raise ValueError(f"unknown capacity backend {kind!r}: use 'aws' or 'recorded'")
    return AwsBackend(settings)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def _fraction(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value < high:
            raise ValueError(f"must be a number in [{low:g}, {high:g})")
        return value

    return parse


def _block_name(raw: str) -> str:
    if not BLOCK_NAME.fullmatch(raw):
        raise ValueError("a Prefect block name is lowercase letters, digits and dashes")
    return raw


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in raw.split(",") if g.strip())


# setting -> (environment variable, parser); documented in docs/operations.md "Settings"
ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "db_path": ("FLEETCAST_DB", Path),
    "landing_dir": ("FLEETCAST_LANDING", Path),
    "work_dir": ("FLEETCAST_WORK_DIR", Path),
    "aws_region": ("AWS_REGION", str),
    "aws_endpoint_url": ("FLEETCAST_AWS_ENDPOINT", str),
    "aws_credentials_block": ("FLEETCAST_AWS_CREDENTIALS_BLOCK", _block_name),
    "allowed_groups": ("FLEETCAST_ALLOWED_GROUPS", _names),
    "future_skew_minutes": ("FLEETCAST_FUTURE_SKEW_MINUTES", _positive_int),
    "freshness_hours": ("FLEETCAST_FRESHNESS_HOURS", _positive_int),
    "forecast_refresh_hours": ("FLEETCAST_FORECAST_REFRESH_HOURS", _positive_int),
    "aws_concurrency": ("FLEETCAST_AWS_CONCURRENCY", _positive_int),
    "aws_max_attempts": ("FLEETCAST_AWS_MAX_ATTEMPTS", _positive_int),
    "aws_connect_timeout": ("FLEETCAST_AWS_CONNECT_TIMEOUT", _non_negative_float),
    "aws_read_timeout": ("FLEETCAST_AWS_READ_TIMEOUT", _non_negative_float),
    "observed_max_age_minutes": ("FLEETCAST_OBSERVED_MAX_AGE_MINUTES", _positive_int),
    "budget_instances": ("FLEETCAST_BUDGET_INSTANCES", _positive_int),
    "budget_cost_per_hour": ("FLEETCAST_BUDGET_COST_PER_HOUR", _non_negative_float),
    "budget_hard": ("FLEETCAST_BUDGET_HARD", _flag),
    "process_window_hours": ("FLEETCAST_PROCESS_WINDOW_HOURS", _positive_int),
    "process_quantile": ("FLEETCAST_PROCESS_QUANTILE", _fraction(0.5, 1.0)),
    "process_headroom": ("FLEETCAST_PROCESS_HEADROOM", _fraction(0.0, 1.0)),
    "dask_address": ("FLEETCAST_DASK_ADDRESS", str),
    "model_key": ("FLEETCAST_MODEL_KEY", str),
    "model_key_block": ("FLEETCAST_MODEL_KEY_BLOCK", _block_name),
}


def job_runner(settings: Settings, workers: int | None = None) -> JobRunner:
    """Where training's and forecasting's per-series jobs run: the Dask cluster whose scheduler
    is at ``settings.dask_address`` (``FLEETCAST_DASK_ADDRESS``), else this machine's pool with
    ``workers`` (None: its cores). The same jobs either way; this process reads and writes the
    database, the jobs only compute."""
    address = (settings.dask_address or "").strip()
    if address:
        return DaskPool(address)
    return LocalPool(workers)
