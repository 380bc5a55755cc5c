from pathlib import Path

import pytest

from fleetcast.resources import db
from models.names import InvalidName, check_name


@pytest.mark.parametrize("name", ["battle_royale", "eu-west-1", "a", "x9"])
def test_valid_names_pass(name: str) -> None:
    assert check_name("game type", name) == name


@pytest.mark.parametrize(
    "name", ["", "Battle", "a b", "x'; drop table metrics; --", "../etc", "a" * 65, None, 3]
)
def test_invalid_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidName, match="lowercase"):
        check_name("game type", name)


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "f.duckdb"
    con = db.connect(path)
    tables = {r[0] for r in con.sql("show tables").fetchall()}
    assert {"metrics", "forecasts", "allocations", "quarantine", "ingest_batches"} <= tables
    assert db.migrate(con) == []  # second time: nothing to apply
    con.close()


def test_transaction_rolls_back(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "f.duckdb")
    with pytest.raises(RuntimeError):
        with db.transaction(con):
            con.execute("insert into metrics values ('2024-01-01', 'g', 'r', 'players', 1, 'b')")
            raise RuntimeError("boom")
    assert con.sql("select count(*) from metrics").fetchall() == [(0,)]
    con.close()


def test_every_help_page_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetcast --help` and each command's --help: a "%" in a help text (argparse formats
    them with %) once made the top-level page crash."""
    from fleetcast.interface.cli import COMMANDS, main

    for argv in (["--help"], *([name, "--help"] for name in COMMANDS)):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0, argv
        assert "usage: fleetcast" in capsys.readouterr().out, argv
