"""The composition root: every setting typed, read from the environment, overridable per run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fleetcast.config import ENV, SettingError, Settings
from fleetcast.interface.cli import build_parser, settings_from_args
from fleetcast.stages.orchestration import settings_for
from flows.params import ForecastAndScaleParams


def test_every_setting_has_one_environment_variable() -> None:
    names = {f for f in Settings.__dataclass_fields__}
    assert set(ENV) <= names
    assert len({var for var, _ in ENV.values()}) == len(ENV)
    assert not hasattr(Settings(), "extra")


def test_environment_values_are_typed() -> None:
    s = Settings.from_mapping(
        {
            "FLEETCAST_AWS_CONCURRENCY": "3",
            "FLEETCAST_OBSERVED_MAX_AGE_MINUTES": "45",
            "FLEETCAST_BUDGET_COST_PER_HOUR": "12.5",
            "FLEETCAST_ALLOWED_GROUPS": "a, b,,",
            "FLEETCAST_DB": "x.duckdb",
        }
    )
    assert (s.aws_concurrency, s.observed_max_age_minutes) == (3, 45)
    assert s.budget_cost_per_hour == 12.5 and s.budget_instances is None
    assert s.allowed_groups == ("a", "b") and s.db_path == Path("x.duckdb")
    assert Settings.from_mapping({}) == Settings()


@pytest.mark.parametrize(
    ("var", "raw"),
    [("FLEETCAST_AWS_CONCURRENCY", "0"), ("FLEETCAST_AWS_READ_TIMEOUT", "soon")],
)
def test_a_bad_environment_value_names_the_variable(var: str, raw: str) -> None:
    with pytest.raises(SettingError, match=var):
        Settings.from_mapping({var: raw})


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_mapping({"FLEETCAST_AWS_CONCURRENCY": "3"}, aws_concurrency=5)
    assert s.aws_concurrency == 5
    with pytest.raises(TypeError, match="unknown settings"):
        Settings.from_mapping({}, not_a_setting=1)


def test_cli_and_flow_parameters_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETCAST_AWS_CONCURRENCY", raising=False)
    args = build_parser().parse_args(
        ["scale", "--aws-concurrency", "2", "--budget-instances", "40", "--budget-cost", "9"]
    )
    s = settings_from_args(args)
    assert (s.aws_concurrency, s.budget_instances, s.budget_cost_per_hour) == (2, 40, 9.0)
    assert settings_from_args(argparse.Namespace()).aws_concurrency == 8
    run = settings_for(ForecastAndScaleParams(aws_concurrency=4, observed_max_age_minutes=30))
    assert (run.aws_concurrency, run.observed_max_age_minutes) == (4, 30)
    assert run.db_path.is_absolute()
