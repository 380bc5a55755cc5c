"""Report plots and the self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fleetcast.interface.report import (
    ReportSection,
    plot_capacity_vs_demand,
    plot_forecast_vs_actual,
    write_html_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = datetime(2026, 11, 20)


def _hours(n: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]


def _demand(n: int = 72) -> pl.DataFrame:
    h = np.arange(n)
    return pl.DataFrame({"ts": _hours(n), "value": 1000 + 600 * np.sin(2 * np.pi * h / 24)})


def _forecast(start: datetime, n: int = 24) -> pl.DataFrame:
    h = np.arange(n)
    yhat = 1000 + 550 * np.sin(2 * np.pi * (h + 48) / 24)
    return pl.DataFrame(
        {"ts": _hours(n, start), "yhat": yhat, "yhat_lower": yhat * 0.9, "yhat_upper": yhat * 1.1}
    )


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_forecast_vs_actual_writes_a_png(tmp_path: Path) -> None:
    actual = _demand(72)
    forecast = _forecast(T0 + timedelta(hours=48))
    out = plot_forecast_vs_actual(actual, forecast, "players: battle_royale na-east",
                                  tmp_path / "plots" / "fva.png")  # fmt: skip
    assert out == tmp_path / "plots" / "fva.png"
    assert _is_png(out)


def test_plots_accept_time_zone_aware_and_empty_frames(tmp_path: Path) -> None:
    actual = _demand(48).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    empty = pl.DataFrame(
        schema={
            "ts": pl.Datetime,
            "yhat": pl.Float64,
            "yhat_lower": pl.Float64,
            "yhat_upper": pl.Float64,
        }  # fmt: skip
    )
    assert _is_png(plot_forecast_vs_actual(actual, empty, "no forecast yet", tmp_path / "a.png"))
    cap = pl.DataFrame({"ts": _hours(2), "capacity": [1200.0, 1500.0]})
    assert _is_png(plot_capacity_vs_demand(actual, cap, "tz aware", tmp_path / "b.png"))


def test_capacity_vs_demand_writes_a_png(tmp_path: Path) -> None:
    demand = _demand(72)
    capacity = pl.DataFrame({"ts": _hours(72)[::6], "capacity": [1500.0, 1400.0] * 6})
    out = plot_capacity_vs_demand(demand, capacity, "capacity vs demand", tmp_path / "cap.png")
    assert _is_png(out)


def test_capacity_vs_demand_shades_the_event_windows_in_range(tmp_path: Path) -> None:
    demand = _demand(72)
    capacity = pl.DataFrame({"ts": _hours(72)[::6], "capacity": [1500.0, 1400.0] * 6})
    events = [
        ("tournament spring_cup", T0 + timedelta(hours=19), T0 + timedelta(hours=23)),
        ("holiday new_year", T0 - timedelta(days=2), T0 + timedelta(hours=5)),  # clipped
        ("promotion later", T0 + timedelta(days=9), T0 + timedelta(days=10)),  # out of range
    ]
    out = plot_capacity_vs_demand(
        demand, capacity, "with events", tmp_path / "ev.png", events=events
    )
    assert _is_png(out)
    plain = plot_capacity_vs_demand(demand, capacity, "with events", tmp_path / "plain.png")
    assert out.read_bytes() != plain.read_bytes()


def test_event_bands_never_widen_the_plotted_range() -> None:
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    from fleetcast.resources.plots import _shade_events

    ax = Figure().add_subplot()
    ax.plot(np.array(_hours(48), dtype="datetime64[us]"), np.arange(48.0))
    before = ax.get_xlim()
    _shade_events(
        ax,
        [
            ("tournament a", T0 + timedelta(hours=40), T0 + timedelta(days=5)),
            ("promotion b", T0 + timedelta(days=9), T0 + timedelta(days=10)),
        ],
    )
    assert ax.get_xlim() == before
    assert [t.get_text().strip() for t in ax.texts] == ["tournament a"]
    assert ax.texts[0].get_ha() == "right"  # near the right edge: right aligned, not cut
    assert before[1] == pytest.approx(float(mdates.date2num(T0 + timedelta(hours=47))), abs=1)


def test_a_frame_without_the_columns_is_refused_with_the_fix(tmp_path: Path) -> None:
    bad = pl.DataFrame({"ds": _hours(3), "y": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"lacks columns \['ts', 'value'\]"):
        plot_forecast_vs_actual(bad, _forecast(T0), "x", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_html_report_is_self_contained_with_a_table_per_fleet(tmp_path: Path) -> None:
    fva = plot_forecast_vs_actual(_demand(), _forecast(T0 + timedelta(hours=48)), "f",
                                  tmp_path / "fva.png")  # fmt: skip
    cap = plot_capacity_vs_demand(
        _demand(), pl.DataFrame({"ts": _hours(1), "capacity": [1500.0]}), "c", tmp_path / "c.png"
    )
    sections = [
        ReportSection(
            title="battle_royale-na-east",
            summary={
                "forecast peak": 61_234.5,
                "capacity before": 120,
                "capacity after": 168,
                "MASE": 0.81234,
            },  # fmt: skip
            images=[fva, cap],
            notes="override <b>active</b> until 18:00",
            table=pl.DataFrame({"ts": _hours(3), "yhat": [1.0, 2.0, 3.0]}),
        ),
        ReportSection(
            title="casual_puzzle-eu-west",
            summary={"forecast peak": 3_100.0, "capacity before": 9, "capacity after": 8},
        ),
    ]
    out = write_html_report(sections, tmp_path / "r" / "report.html",
                            generated_at=datetime(2026, 11, 28, 4, tzinfo=UTC))  # fmt: skip
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # self-contained: no external references of any kind
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert base64.b64decode(images[0]) == fva.read_bytes()
    # one summary table per section, plus an overview table naming every fleet
    assert page.count('<table class="kv">') == 2
    assert page.count('<a href="#s') == 2
    assert "61,234" in page and "0.812" in page and "2026-11-28 04:00 UTC" in page
    # text is escaped, never markup
    assert "<b>active</b>" not in page and "&lt;b&gt;active&lt;/b&gt;" in page


def test_html_report_with_no_sections_still_writes_a_page(tmp_path: Path) -> None:
    out = write_html_report([], tmp_path / "empty.html", title="nothing to show")
    assert "<h1>nothing to show</h1>" in out.read_text()


def test_overview_puts_a_long_reason_on_its_own_row(tmp_path: Path) -> None:
    reason = "2 -> 104 (+102): forecast needs 103 (players) for 05:31 (lead 45 min, margin 10%)"
    sections = [
        ReportSection(title="f1", summary={"capacity after": 104, "why": reason}),
        ReportSection(title="f2", summary={"capacity after": 9, "why": "hold"}),
    ]
    page = write_html_report(sections, tmp_path / "r.html").read_text()
    overview = page[page.index('<table class="overview">') : page.index("</table>")]
    header = overview[: overview.index("</thead>")]
    assert "capacity after" in header and "why" not in header  # not a narrow column
    assert overview.count('<tr class="details"><td colspan="2"><b>why</b>: ') == 2
    assert html.escape(reason) in overview


def test_a_label_without_a_value_gets_no_row(tmp_path: Path) -> None:
    """None is "not known yet": no row in the section's table (its note says why) and an empty
    overview cell; NaN is a value that could not be computed, shown as n/a."""
    sections = [
        ReportSection(
            title="f1",
            summary={"published_by": "combination", "why": None, "realised_mase": float("nan")},
            notes="No capacity decision for this fleet yet.",
        ),
        ReportSection(title="f2", summary={"why": None}),
    ]
    page = write_html_report(sections, tmp_path / "r.html").read_text()
    first = page[page.index('<section id="s0">') : page.index('<section id="s1">')]
    assert "<th>published_by</th><td>combination</td>" in first
    assert "<th>realised_mase</th><td>n/a</td>" in first
    assert "<th>why</th>" not in page
    assert "<p>No capacity decision for this fleet yet.</p>" in first
    second = page[page.index('<section id="s1">') :]
    assert '<table class="kv">' not in second  # nothing known: no empty table
