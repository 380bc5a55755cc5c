"""Quiet third-party chatter once, in one place."""

from __future__ import annotations

import logging
import os
import warnings


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
