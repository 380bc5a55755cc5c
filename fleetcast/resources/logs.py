"""Quiet third-party chatter once, in one place; copy run logs to a file."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# the loggers of Prefect's flow and task run loggers (``get_run_logger``)
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def quiet_libraries() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's ephemeral server (the demo, a flow run without a server) takes 15-25 s to start
    # on a quiet 2-core machine and over 30 s on a loaded one: Prefect's default gives up first.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # cmdstanpy's "Chain [1] start processing" ignores setLevel; disabling works.
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").disabled = True
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="great_expectations")


@contextmanager
def run_logs_to(path: Path) -> Iterator[Path]:
    """Copy the flow and task run log lines of the block (progress included) to ``path``,
    written anew, one line each, as they come."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
