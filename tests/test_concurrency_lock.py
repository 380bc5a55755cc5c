"""The run lock: one run writes a DuckDB file at a time; a second waits or gives up cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from fleetcast.config import Settings
from fleetcast.resources.locking import RunLockTimeout, lock_path, run_lock

# A separate process (as a second worker or CLI run would be): take the run lock, then write
# `n` rows into the DuckDB file one connection at a time (a run opens the file many times),
# sleeping in between so another run would interleave without the lock.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fleetcast.resources import db
    from fleetcast.config import Settings
    from fleetcast.resources.locking import RunLockTimeout, run_lock

    path, tag, n, wait = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    settings = Settings(db_path=path)
    try:
        with run_lock(settings, wait_seconds=wait, label=tag):
            print("locked", time.time(), flush=True)
            for i in range(n):
                with db.session(path) as con:
                    con.execute(
                        "create table if not exists log (tag varchar, i integer, t double)"
                    )
                    con.execute("insert into log values (?, ?, ?)", [tag, i, time.time()])
                time.sleep(0.3)
            print("done", time.time(), flush=True)
    except RunLockTimeout as exc:
        print("gave up:", exc, flush=True)
        sys.exit(3)
    """
)


def _writer(db_path: Path, tag: str, n: int, wait: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), tag, str(n), str(wait)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _rows(db_path: Path) -> list[tuple[str, int, float]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.sql("select tag, i, t from log order by t").fetchall()
    finally:
        con.close()


def _wait_locked(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("locked"), line + proc.stderr.read()  # type: ignore[union-attr]


def test_second_run_waits_for_the_first_and_nothing_interleaves(tmp_path: Path) -> None:
    db_path = tmp_path / "fleetcast.duckdb"
    first = _writer(db_path, "a", 6, 5)
    _wait_locked(first)
    second = _writer(db_path, "b", 6, 60)
    out_a, err_a = first.communicate(timeout=60)
    out_b, err_b = second.communicate(timeout=60)
    assert first.returncode == 0, err_a
    assert second.returncode == 0, err_b
    rows = _rows(db_path)
    tags = [t for t, _, _ in rows]
    assert tags == ["a"] * 6 + ["b"] * 6  # b ran entirely after a: no interleaving
    assert sorted(i for t, i, _ in rows if t == "b") == list(range(6))  # nothing lost


def test_second_run_gives_up_cleanly_and_changes_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "fleetcast.duckdb"
    first = _writer(db_path, "a", 8, 5)
    _wait_locked(first)
    second = _writer(db_path, "b", 3, 0.5)
    out_b, err_b = second.communicate(timeout=30)
    first.communicate(timeout=60)
    assert second.returncode == 3, err_b
    assert "gave up" in out_b and "another fleetcast run is writing" in out_b
    assert "Traceback" not in err_b
    assert [t for t, _, _ in _rows(db_path)] == ["a"] * 8


def test_lock_is_reentrant_within_a_run_and_released_after(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "x.duckdb")
    with run_lock(settings, wait_seconds=1):
        with run_lock(settings, wait_seconds=0):  # a subflow of the same run goes straight in
            pass
        assert "pid" in lock_path(settings.db_path).read_text()
    with run_lock(settings, wait_seconds=0):  # released: the next run gets it at once
        pass


def test_lock_in_another_thread_is_not_shared(tmp_path: Path) -> None:
    import threading

    settings = Settings(db_path=tmp_path / "x.duckdb")
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with run_lock(settings, wait_seconds=0.3):
                pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with run_lock(settings, wait_seconds=1):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], RunLockTimeout)


def test_killed_run_releases_the_lock(tmp_path: Path) -> None:
    db_path = tmp_path / "fleetcast.duckdb"
    first = _writer(db_path, "a", 50, 5)
    _wait_locked(first)
    first.kill()
    first.wait(timeout=10)
    start = time.monotonic()
    with run_lock(Settings(db_path=db_path), wait_seconds=5):
        pass
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("wait", [0.0, 0.2])
def test_timeout_message_names_the_file(tmp_path: Path, wait: float) -> None:
    settings = Settings(db_path=tmp_path / "x.duckdb")
    first = _writer(settings.db_path, "a", 4, 5)
    _wait_locked(first)
    with pytest.raises(RunLockTimeout, match="x.duckdb"):
        with run_lock(settings, wait_seconds=wait):
            pass
    first.communicate(timeout=30)


def test_a_read_waits_for_a_writing_connection_of_this_process(tmp_path: Path) -> None:
    """Two flow runs in threads of one process: a read-only open while the other run's
    read-write connection is open waits for it (DuckDB refuses the mixed configuration),
    instead of failing the run; a wait that runs out is the usual clear error."""
    import threading

    from fleetcast.resources import db

    path = tmp_path / "f.duckdb"
    writer = db.connect(path)
    with pytest.raises(db.DatabaseBusy, match="in use by another fleetcast run"):
        db.connect(path, read_only=True, wait_seconds=0.3)
    threading.Timer(0.5, writer.close).start()
    with db.session(path, read_only=True, wait_seconds=10) as con:
        assert con.sql("select count(*) from schema_migrations").fetchall()[0][0] > 0
