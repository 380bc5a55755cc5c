"""Shared fixtures: a real DuckDB file per test, one local moto server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcast.config import Settings
from fleetcast.resources.local_aws import MotoServer, start_moto

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Dummy credentials for the local moto server only; no test ever reaches AWS.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 - moto's dummy value
os.environ.pop("AWS_PROFILE", None)


# The files that take minutes (real servers, the demo), longest first: started first, so that
# `make test`'s parallel workers (pytest-xdist, one file per worker at a time) do not end with
# one worker still running them while the others idle.
SLOW_FILES = (
    "test_try_it_locally.py",
    "test_prefect_server.py",
    "test_demo.py",
    "test_flows.py",
    "test_decision_path.py",
    "test_dask.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each file's tests in the order they are written, however their ids were given; the
    slow files first.

    mutmut passes a mutant's tests as a set (a random order); test_ingest_pinned.py puts the
    test that catches the most mutants first, so with ``-x`` most mutants stop after it. The
    other files keep the order they came in.
    """
    files: dict[Path, int] = {}
    for item in items:
        files.setdefault(item.path, len(files))

    def rank(path: Path) -> tuple[int, int]:
        name = path.name
        return (SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES), files[path])

    items.sort(key=lambda item: (rank(item.path), item.reportinfo()[1] or 0))


@pytest.fixture(scope="session", autouse=True)
def _prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect_home")
    os.environ["PREFECT_HOME"] = str(home)
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    landing = tmp_path / "landing"
    landing.mkdir()
    return Settings(
        db_path=tmp_path / "fleetcast.duckdb",
        landing_dir=landing,
        work_dir=tmp_path / "work",
    )


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    # FLEETCAST_TEST_MOTO_URL: a moto server started by the caller (mutation testing runs the
    # tests once per mutant and starts one server for all of them); reset before each test.
    url = os.environ.get("FLEETCAST_TEST_MOTO_URL")
    if url:
        yield MotoServer(url=url, process=None)  # type: ignore[arg-type]
        return
    server = start_moto(log=tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    """A moto server emptied before the test."""
    moto_session.reset()
    return moto_session


@pytest.fixture
def aws_settings(settings: Settings, moto: MotoServer) -> Settings:
    from dataclasses import replace

    return replace(settings, aws_endpoint_url=moto.url)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One ephemeral Prefect backend for the whole session (slow to start: ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
