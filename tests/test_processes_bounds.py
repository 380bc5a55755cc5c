"""Bounds on what telemetry may teach (issue 25): one bad telemetry batch must not empty a fleet.

The pure rule on literal values (held, band, daily rise, approval), then the scenario a new user
tried with the product's own commands against moto: the sample, a forecast-only cycle, then
one landing file with the resource metrics divided by 1000 (an exporter that switched units),
and the cycle again; and a learned value beyond its band asked about, approved, then used."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.interface.demo import fleet_summary, write_fleet_report
from fleetcast.resources.local_aws import provision_groups
from fleetcast.stages.fleets import read_fleet_file
from models.processes import (
    Accepted,
    ProcessFit,
    ProcessNeeds,
    Reference,
    bound_fit,
    implausible,
)

CAPS = {"cpu": 16.0, "memory": 32.0, "net": 1000.0}
T0 = datetime(2026, 6, 1, 12)


def _fit(ppi: int, cpu: float, players_per_process: float = 80.0) -> ProcessFit:
    needs = ProcessNeeds({"cpu": cpu, "memory": 0.8}, players_per_process, 24, 0.95)
    return ProcessFit(ppi, ppi * players_per_process, "telemetry", "cpu", {"cpu": ppi}, 0.2, needs)


def _last(ppi: int, cpu: float, *, low: int | None = None, hours_ago: int = 1) -> Accepted:
    return Accepted(
        processes_per_instance=ppi,
        players_per_instance=ppi * 80.0,
        needs={"cpu": cpu, "memory": 0.8},
        players_per_process=80.0,
        at=T0 - timedelta(hours=hours_ago),
        low_processes=low if low is not None else ppi,
        low_players=(low if low is not None else ppi) * 80.0,
    )


REF = Reference(processes_per_instance=4, players_per_instance=320.0)


def test_a_thousandfold_drop_in_a_need_is_held_with_the_metric_and_the_jump() -> None:
    bad = _fit(3000, 0.0032)
    why = implausible(bad.needs, CAPS, _last(4, 3.2))  # type: ignore[arg-type]
    assert why is not None and "cpu_cores" in why and "1,000x lower" in why
    got = bound_fit(bad, REF, _last(4, 3.2), CAPS)
    assert (got.source, got.processes_per_instance, got.players_per_instance) == ("held", 4, 320)
    assert got.learned == {"processes_per_instance": 3000, "players_per_instance": 240000.0}
    assert "cpu_cores" in got.bounded and "keeps 4" in got.bounded
    # the held fit keeps the accepted needs, so the next cycle compares against them again
    assert got.needs is not None and got.needs.needs["cpu"] == 3.2
    # 9x is not a jump (a real change can be large); 10x is
    assert implausible(_fit(4, 3.2 * 9).needs, CAPS, _last(4, 3.2)) is None  # type: ignore[arg-type]
    assert implausible(_fit(4, 3.2 * 10).needs, CAPS, _last(4, 3.2)) is not None  # type: ignore[arg-type]


def test_a_process_needing_almost_nothing_is_held_without_any_history() -> None:
    tiny = _fit(50000, 0.0002)  # 0.0002 of 16 cores, memory 0.8 of 32: tightest 2.5%
    assert implausible(tiny.needs, CAPS, None) is None  # type: ignore[arg-type]
    tinier = ProcessFit(
        90000, None, "telemetry", "cpu", {}, 0.2,
        ProcessNeeds({"cpu": 0.0002, "memory": 0.0001}, None, 24, 0.95),
    )  # fmt: skip
    why = implausible(tinier.needs, CAPS, None)  # type: ignore[arg-type]
    assert why is not None and "cpu_cores" in why and "tightest" in why
    got = bound_fit(tinier, REF, None, CAPS)
    assert (got.source, got.processes_per_instance) == ("held", 4)


def test_the_band_sizes_on_the_nearer_bound_and_asks_a_person() -> None:
    high = bound_fit(_fit(40, 0.32), REF, None, CAPS)  # 10x the configured 4
    assert (high.source, high.processes_per_instance, high.approval) == ("bounded", 8, True)
    assert "outside 2-8" in high.bounded
    low = bound_fit(_fit(1, 12.8), REF, None, CAPS)  # a quarter: more instances, still bounded
    assert (low.processes_per_instance, low.approval) == (2, True)
    inside = bound_fit(_fit(6, 2.1), REF, None, CAPS)
    assert (inside.source, inside.processes_per_instance, inside.bounded) == ("telemetry", 6, "")
    # players per instance are bounded with the processes: 6 x 80 within 2x of 6 x 80
    assert inside.players_per_instance == pytest.approx(480)
    heavy_players = bound_fit(_fit(4, 3.2, players_per_process=400.0), REF, None, CAPS)
    assert heavy_players.approval and heavy_players.players_per_instance == pytest.approx(640)
    # said in the unit both are configured and learned in: 400 players per process against 80
    assert "learned 400 players per process is outside 40-160 (0.5x-2x the " in (
        heavy_players.bounded
    )
    assert heavy_players.bounded.endswith(" 80)")


def test_processes_rise_at_most_the_daily_factor_and_fall_at_once() -> None:
    # accepted 4 all day; telemetry says 8 (within the band): at most 6 today
    up = bound_fit(_fit(8, 1.6), REF, _last(4, 3.2), CAPS)
    assert (up.processes_per_instance, up.approval) == (6, False)
    assert "1.5x a day" in up.bounded
    # the lowest accepted in the last 24 h counts, not the newest: no creeping up by the hour
    creep = bound_fit(_fit(8, 1.6), REF, _last(6, 2.1, low=4), CAPS)
    assert creep.processes_per_instance == 6
    # a heavier match (CPU +30%) lowers processes at once: more instances, the safe way
    down = bound_fit(_fit(3, 4.2), REF, _last(4, 3.2), CAPS)
    assert (down.source, down.processes_per_instance) == ("telemetry", 3)


# --------------------------------------------------------------------------- against moto


def _targets(out: str) -> dict[str, int]:
    """fleet -> target from ``fleetcast scale`` output lines ("a -> b (...)")."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z0-9_-]+)\s.*?\s(\d+|-) -> (\d+) ", line)
        if m:
            got[m.group(1)] = int(m.group(3))
    return got


def _sample(tmp_path: Path, url: str, days: int = 10) -> tuple[list[str], Path]:
    landing = tmp_path / "landing"
    db = tmp_path / "fc.duckdb"
    base = ["--db", str(db), "--aws-endpoint", url]
    assert main(["sample", "--days", str(days), "--out", str(landing), *base]) == 0
    assert main(["fleets", "import", str(landing / "fleets.csv"), *base]) == 0
    (landing / "fleets.csv").rename(tmp_path / "fleets.csv")
    assert main(["ingest", "--landing", str(landing), *base]) in (0, 3)
    fleets = read_fleet_file(tmp_path / "fleets.csv")
    provision_groups(url, "us-east-1", [(f.asg_name, f.min_size, f.max_size, 2) for f in fleets])
    return base, landing


def _decisions(db: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(db, read_only=True) as con:
        return con.sql(
            "select fleet, game_type, target_desired, reason from allocations "
            "where decided_at = (select max(decided_at) from allocations a where a.fleet = "
            "allocations.fleet) order by fleet"
        ).fetchall()


def test_a_batch_in_the_wrong_units_empties_no_fleet(
    aws_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = aws_settings.aws_endpoint_url or ""
    base, landing = _sample(tmp_path, url)
    db = base[1]
    assert main(["scale", "--forecast-only", *base]) == 0
    before = {f: t for f, _, t, _ in _decisions(db)}
    assert len(before) == 12
    # the exporter switches units: every resource metric of every hour again, divided by 1000
    with duckdb.connect(db, read_only=True) as con:
        con.sql(
            "select ts, game_type, region, metric, value / 1000 as value from metrics where "
            "metric in ('cpu_cores', 'memory_gb', 'net_in_mbps', 'net_out_mbps')"
        ).pl().write_csv(landing / "bad_units.csv")
    assert main(["ingest", "--landing", str(landing), str(landing / "bad_units.csv"), *base]) == 0
    capsys.readouterr()
    assert main(["scale", "--forecast-only", *base]) == 0
    after = _decisions(db)
    for fleet, _, target, _ in after:
        assert target >= before[fleet] / 2, (fleet, before[fleet], target)
    # one held reason per game type, naming the metric and the jump
    held = {
        g for _, g, _, reason in after if "telemetry held" in reason and "1,000x lower" in reason
    }
    assert held == {"battle_royale", "casual_puzzle", "ranked_arena", "tournament_series"}
    assert main(["status", "--wide", *base]) == 0  # every column, the full reason
    assert "held" in capsys.readouterr().out


def test_a_learned_value_beyond_its_band_waits_for_a_person_then_is_used(
    aws_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample's casual_puzzle learns far more processes per instance than its configured 8
    (a light match): it sizes on 16 (2x) and asks; approved, the learned value is the centre."""
    url = aws_settings.aws_endpoint_url or ""
    base, _ = _sample(tmp_path, url, days=8)
    db = base[1]
    settings = replace(aws_settings, db_path=Path(db), work_dir=tmp_path / "work")
    # before any decision: the report says so and what makes one, with no empty rows
    fleets = fleet_summary(settings).filter(pl.col("game_type") == "casual_puzzle")
    page = write_fleet_report(settings, fleets, 1).read_text()
    assert page.count("No capacity decision for this fleet yet: `fleetcast scale`") == 3
    assert page.count("No stored players forecast to plot") == 3
    assert "<th>why</th>" not in page and "<th>target</th>" not in page
    assert "<th>game_type</th><td>casual_puzzle</td>" in page  # what is known is shown
    assert main(["scale", "--forecast-only", "--game-type", "casual_puzzle", *base]) == 0
    with duckdb.connect(db, read_only=True) as con:
        asked = con.sql(
            "select fleet, learned, used, reference from setting_changes where status = 'pending'"
        ).fetchall()
        ppi = dict(con.sql("select fleet, processes_per_instance from allocations").fetchall())
    assert {a[0] for a in asked} == {"casual_puzzle-na-east", "casual_puzzle-na-west",
                                     "casual_puzzle-eu-west"}  # fmt: skip
    assert all(learned > 16 and used == 16 and ref == 8 for _, learned, used, ref in asked)
    assert set(ppi.values()) == {16}
    # the report lists what waits, as `fleetcast status` does, before the fleets
    fleets = fleet_summary(settings).filter(pl.col("game_type") == "casual_puzzle")
    page = write_fleet_report(settings, fleets, 1).read_text()
    assert "No capacity decision for this fleet yet" not in page and "<th>why</th>" in page
    section = page.split("<h2>Learned settings waiting for approval</h2>")[1].split("<h2>")[0]
    assert all(f"casual_puzzle-{r}" in section for r in ("na-east", "na-west", "eu-west"))
    assert "sized on meanwhile" in section and "<td>16</td>" in section
    # the next cycle asks nothing new (the same learned value is still waiting)
    assert main(["scale", "--forecast-only", "--game-type", "casual_puzzle", *base]) == 0
    with duckdb.connect(db, read_only=True) as con:
        assert con.sql("select count(*) from setting_changes").fetchall() == [(3,)]
    capsys.readouterr()
    assert main(["approve", "--fleet", "casual_puzzle-na-east", "--note", "light game", *base]) == 0
    assert "approved" in capsys.readouterr().out
    assert main(["scale", "--forecast-only", "--game-type", "casual_puzzle", *base]) == 0
    with duckdb.connect(db, read_only=True) as con:
        now_ppi = dict(
            con.sql(
                "select fleet, arg_max(processes_per_instance, decided_at) from allocations "
                "group by fleet"
            ).fetchall()
        )
        learned = dict(
            con.sql(
                "select fleet, learned from setting_changes where status = 'approved'"
            ).fetchall()
        )
    # approved: the band is centred on the learned value, which rises from 16 at most 1.5x a day
    assert now_ppi["casual_puzzle-na-east"] == 24 and learned["casual_puzzle-na-east"] > 24
    assert now_ppi["casual_puzzle-na-west"] == 16  # not approved: still the bound
    page = write_fleet_report(settings, fleets, 1).read_text()
    section = page.split("<h2>Learned settings waiting for approval</h2>")[1].split("<h2>")[0]
    assert "casual_puzzle-na-east" not in section and "casual_puzzle-na-west" in section
    assert main(["approve", "--fleet", "casual_puzzle-na-east", *base]) == 2  # nothing waits


def test_a_window_that_straddles_a_unit_switch_is_held() -> None:
    """The exporter switched units two hours before the end of the window: the high quantile
    of the mixed window is a plausible-looking value (no 10x jump against the accepted one),
    but its hours spread by 1000x: held, naming the metric."""
    import polars as pl
    from test_processes import frame

    from models.processes import fit_processes, process_needs

    mixed = frame(12, T0).with_columns(
        pl.when(
            (pl.col("ts") <= T0 - timedelta(hours=2))
            & pl.col("metric").is_in(["cpu_cores", "memory_gb", "net_in_mbps", "net_out_mbps"])
        )
        .then(pl.col("value") / 1000)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    needs = process_needs(mixed)
    assert needs is not None and needs.spread["cpu"] >= 999
    fit = fit_processes(CAPS, needs)
    assert fit is not None
    why = implausible(needs, CAPS, _last(4, 3.2))
    assert why is not None and "cpu_cores per session varies 1,000x within the window" in why
    got = bound_fit(fit, REF, _last(4, 3.2), CAPS)
    assert (got.source, got.processes_per_instance) == ("held", 4)
    # a steady window spreads by far less
    steady = process_needs(frame(12, T0))
    assert steady is not None and max(steady.spread.values()) < 1.01
