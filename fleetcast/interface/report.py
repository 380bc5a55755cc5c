"""Report plots and a self-contained HTML page. Pure file writers: no DuckDB, no network.

The plots live in ``fleetcast.resources.plots`` (the flows' plots artifact draws them too) and
are re-exported here.

- ``plot_forecast_vs_actual(actual[ts, value], forecast[ts, yhat, yhat_lower, yhat_upper], ...)``
- ``plot_capacity_vs_demand(demand[ts, value], capacity[ts, capacity], ...)``
- ``write_html_report(sections, path)``: one page, images embedded as base64, a summary table
  per section (fleet) and an overview table of all of them.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from fleetcast.resources.plots import (  # noqa: F401 - the report's plots, re-exported
    plot_capacity_vs_demand,
    plot_forecast_vs_actual,
)


@dataclass(frozen=True)
class ReportSection:
    """One block of the report, usually one fleet.

    ``summary``: label -> value, shown as a two-column table and in the overview table (a None
    value: no row, and an empty cell in the overview).
    ``images``: PNG (or SVG) files to embed. ``table``: an optional detail table.
    """

    title: str
    summary: Mapping[str, object] = field(default_factory=dict)
    images: Sequence[Path] = ()
    notes: str = ""
    table: pl.DataFrame | None = None


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _kv_table(summary: Mapping[str, object]) -> str:
    """Label and value rows; a label without a value (None) gets no row (the section's note
    says what is missing and why)."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
        if v is not None
    )
    return f'<table class="kv">{rows}</table>' if rows else ""


def _frame_table(frame: pl.DataFrame, max_rows: int = 200) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.head(max_rows).iter_rows()
    )
    more = (
        f'<p class="note">{frame.height - max_rows} more rows not shown</p>'
        if frame.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


OVERVIEW_CELL_CHARS = 40  # longer values (the reason) go on a details row of their own


def _overview(sections: Sequence[ReportSection]) -> str:
    """One row per section with its short figures; a long value such as the reason below it on a
    details row across the whole table, so each row stays one line tall."""
    keys: list[str] = []
    for s in sections:  # a key no section has a value for gets no column
        keys.extend(k for k in s.summary if k not in keys and s.summary[k] is not None)
    if not keys:
        return ""
    long_keys = [
        k for k in keys
        if any(len(_fmt(s.summary.get(k))) > OVERVIEW_CELL_CHARS for s in sections)
    ]  # fmt: skip
    short = [k for k in keys if k not in long_keys]
    # "champion_cv_mase" as "champion cv mase": a header wraps between words, not inside one
    head = "<th>section</th>" + "".join(
        f"<th>{html.escape(k.replace('_', ' '))}</th>" for k in short
    )
    rows = []
    for i, s in enumerate(sections):
        rows.append(
            f'<tr><td class="name"><a href="#s{i}">{html.escape(s.title)}</a></td>'
            + "".join(f"<td>{html.escape(_fmt(s.summary.get(k)))}</td>" for k in short)
            + "</tr>"
        )
        for k in long_keys:
            value = s.summary.get(k)
            if value is not None and _fmt(value):
                rows.append(
                    f'<tr class="details"><td colspan="{len(short) + 1}">'
                    f"<b>{html.escape(k)}</b>: {html.escape(_fmt(value))}</td></tr>"
                )
    return (
        f'<h2>Overview</h2><table class="overview"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _embed(image: Path) -> str:
    image = Path(image)
    data = image.read_bytes()
    mime = "image/svg+xml" if image.suffix.lower() == ".svg" else "image/png"
    b64 = base64.b64encode(data).decode("ascii")
    alt = html.escape(image.stem)
    return f'<figure><img alt="{alt}" src="data:{mime};base64,{b64}"></figure>'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1320px}
table{border-collapse:collapse;margin:.5em 0 1em;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:14px;
  overflow-wrap:break-word}
th{background:#f3f3f3} table.kv th{text-align:left} table.kv td{text-align:left}
img{max-width:100%} figure{margin:.5em 0} .note{color:#666;font-size:13px}
section{border-top:2px solid #ddd;margin-top:1.5em}
table.overview td.name{text-align:left}
table.overview tr.details td{text-align:left;color:#444;font-size:13px;
  border-top:none;padding-left:2em;background:#fafafa}
"""


def write_html_report(
    sections: Sequence[ReportSection],
    path: Path,
    *,
    title: str = "fleetcast report",
    generated_at: datetime | None = None,
) -> Path:
    """Write one self-contained HTML page (no external CSS, JS or images). Returns ``path``."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">generated {html.escape(when)}</p>',
        _overview(sections),
    ]
    for i, s in enumerate(sections):
        parts.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
        if s.notes:
            parts.append(f"<p>{html.escape(s.notes)}</p>")
        if s.summary:
            parts.append(_kv_table(s.summary))
        parts.extend(_embed(img) for img in s.images)
        if s.table is not None:
            parts.append(_frame_table(s.table))
        parts.append("</section>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
