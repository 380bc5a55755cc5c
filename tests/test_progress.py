"""Progress bars: shown on a terminal (a real pseudo-terminal), silent in a pipe."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from fleetcast.interface.sample import generate
from fleetcast.resources.progress import progress_bar, tracker

FLEETCAST = str(Path(sys.executable).with_name("fleetcast"))


def test_tracker_is_the_identity_without_a_bar() -> None:
    bump = tracker(3, "x")
    assert [bump(i) for i in range(3)] == [0, 1, 2]
    with progress_bar(enabled=False):
        assert tracker(1, "y")("v") == "v"


def _run(args: list[str], cwd: Path, *, tty: bool) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
    env.update(COLUMNS="120", TERM="xterm")
    if not tty:
        done = subprocess.run([FLEETCAST, *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        return done.returncode, done.stderr
    leader, follower = os.openpty()
    proc = subprocess.Popen([FLEETCAST, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=follower)  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_train_and_forecast_show_a_bar_on_a_terminal_only(tmp_path: Path) -> None:
    generate(tmp_path / "landing", days=3, seed=5)
    (tmp_path / "landing" / "fleets.csv").unlink()
    assert _run(["ingest", "--no-docs"], tmp_path, tty=False)[0] == 0
    train = ["train", "--no-panel", "--candidates", "snaive24", "--game-type", "casual_puzzle",
             "--workers", "1"]  # fmt: skip
    code, shown = _run(train, tmp_path, tty=True)
    assert code == 0, shown[-2000:]
    assert "training series" in shown and "/" in shown  # "training series ━━━ 12/12"
    code, quiet = _run(train, tmp_path, tty=False)
    assert code == 0 and "training series" not in quiet and "\x1b[" not in quiet
    code, shown = _run(["forecast", "--horizon", "6", "--game-type", "casual_puzzle"],
                       tmp_path, tty=True)  # fmt: skip
    assert code == 0 and "forecasting series" in shown, shown[-2000:]


def test_backtest_sweep_shows_a_bar_on_a_terminal_only(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    generate(tmp_path / "landing", days=4, seed=5, end=end)
    (tmp_path / "landing" / "fleets.csv").unlink()
    assert _run(["ingest", "--no-docs"], tmp_path, tty=False)[0] == 0
    sweep = ["backtest", "--game-type", "casual_puzzle", "--region", "eu-west", "--lead", "1",
             "--start", (end - timedelta(days=1)).isoformat(), "--unit-capacity", "400",
             "--sweep", "--out", "plan.csv"]  # fmt: skip
    code, shown = _run(sweep, tmp_path, tty=True)
    assert code == 0, shown[-2000:]
    assert "sweeping the policy's knob" in shown and "pricing the protective rules" in shown
    code, quiet = _run(sweep, tmp_path, tty=False)
    assert code == 0 and "sweeping" not in quiet and "\x1b[" not in quiet


def test_run_logs_are_copied_to_a_file_while_the_block_runs(tmp_path: Path) -> None:
    """``make demo``'s log: the flow and task run log lines of the block, and nothing after."""
    import logging

    from fleetcast.resources.logs import run_logs_to

    path = tmp_path / "work" / "demo.log"
    with run_logs_to(path):
        logging.getLogger("prefect.task_runs").warning("training series: 0 of 3")
        logging.getLogger("prefect.flow_runs").warning("flow started")
    logging.getLogger("prefect.task_runs").warning("after the block")
    text = path.read_text()
    assert "training series: 0 of 3" in text and "flow started" in text
    assert "after the block" not in text
