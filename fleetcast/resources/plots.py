"""Plots as PNG files: forecast vs actual, capacity vs demand. Pure file writers: no DuckDB, no
network, no Prefect. Shared by the HTML report (``fleetcast.interface.report``) and the flows'
plots artifact (``tasks.artifacts``).

matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so they are
safe in threads and on machines without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

ACTUAL_COLOR = "#222222"
FORECAST_COLOR = "#1f77b4"
CAPACITY_COLOR = "#2ca02c"
SHORT_COLOR = "#d62728"
EVENT_COLOR = "#9467bd"
EVENT_LABEL_ROWS = 3  # event labels stagger over this many lines at the top, so neighbours
# do not overlap

# one event to shade: (label, e.g. "tournament spring_cup"; start; end), naive UTC
EventSpan = tuple[str, datetime, datetime]


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} frame lacks columns {missing}; it has {frame.columns} "
            f"(expected {list(columns)})"
        )


def _times(frame: pl.DataFrame) -> np.ndarray:
    """The ``ts`` column as numpy datetime64 (tz-aware columns are shown in UTC)."""
    ts = frame.get_column("ts")
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
        ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return ts.to_numpy()


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame.get_column(column).cast(pl.Float64).to_numpy()


def _new_figure(title: str):  # noqa: ANN202 - matplotlib types
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _shade_events(ax, events: Sequence[EventSpan]) -> None:  # noqa: ANN001
    """Each event window over the plotted range as a light band, its label at the top (left
    aligned at its start; right aligned at its end near the right edge, so it is not cut)."""
    import matplotlib.dates as mdates

    lo, hi = ax.get_xlim()
    width = hi - lo
    shown = 0
    for label, start, end in sorted(events, key=lambda e: e[1]):
        s, e = float(mdates.date2num(start)), float(mdates.date2num(end))
        if e <= lo or s >= hi:
            continue
        s, e = max(s, lo), min(e, hi)
        ax.axvspan(s, e, color=EVENT_COLOR, alpha=0.15, linewidth=0,
                   label="event" if shown == 0 else None)  # fmt: skip
        right = width > 0 and (s - lo) / width > 0.75
        ax.text(
            e if right else s,
            0.98 - 0.06 * (shown % EVENT_LABEL_ROWS),
            f" {label} ",
            transform=ax.get_xaxis_transform(),
            ha="right" if right else "left",
            va="top",
            fontsize="x-small",
            color="#4b2c6b",
            clip_on=True,
        )
        shown += 1
    ax.set_xlim(lo, hi)  # the bands never widen the plotted range
    if shown:  # headroom: the data stay below the labels
        bottom, top = ax.get_ylim()
        rows = min(shown, EVENT_LABEL_ROWS)
        ax.set_ylim(bottom, bottom + (top - bottom) / (1 - 0.06 * rows - 0.04))


def _finish(  # noqa: ANN202
    fig,  # noqa: ANN001 - matplotlib types
    ax,  # noqa: ANN001
    path: Path,
    legend_outside: bool = False,
    note: str | None = None,
) -> Path:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    # a note under the time axis: clear of the legend, the event labels and the data
    ax.set_xlabel("time (UTC)" + (f"\n{note}" if note else ""))
    if legend_outside:  # right of the plot: clear of the event labels and the data
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.legend(loc="upper left", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lstrip(".") or "png")
    return path


def plot_forecast_vs_actual(
    actual: pl.DataFrame, forecast: pl.DataFrame, title: str, path: Path
) -> Path:
    """Actual values as a line, the forecast with its interval as a band. Returns ``path``."""
    _require(actual, ("ts", "value"), "actual")
    _require(forecast, ("ts", "yhat", "yhat_lower", "yhat_upper"), "forecast")
    actual = actual.sort("ts")
    forecast = forecast.sort("ts")
    fig, ax = _new_figure(title)
    if forecast.height:
        t = _times(forecast)
        ax.fill_between(
            t,
            _values(forecast, "yhat_lower"),
            _values(forecast, "yhat_upper"),
            color=FORECAST_COLOR,
            alpha=0.2,
            linewidth=0,
            label="forecast interval",
        )
        ax.plot(t, _values(forecast, "yhat"), color=FORECAST_COLOR, lw=1.5, label="forecast")
    if actual.height:
        ax.plot(_times(actual), _values(actual, "value"), color=ACTUAL_COLOR, lw=1.0,
                label="actual")  # fmt: skip
    if actual.height and forecast.height:
        ax.axvline(_times(forecast)[0], color="#888888", ls="--", lw=0.8)
    ax.set_ylabel("value")
    return _finish(fig, ax, path)


def plot_capacity_vs_demand(
    demand: pl.DataFrame,
    capacity: pl.DataFrame,
    title: str,
    path: Path,
    forecast: pl.DataFrame | None = None,
    events: Sequence[EventSpan] | None = None,
    note: str | None = None,
) -> Path:
    """Demand as a line, capacity in effect as a step line; hours short shaded red. ``note``:
    a line written on the plot (a first run says its capacity history starts here). With
    ``forecast`` (ts, yhat[, yhat_upper]) the demand ahead is drawn dashed, its upper bound
    as a band, so a live run shows whether capacity is ahead of what comes. With ``events``
    ((label, start, end), naive UTC) each window over the plotted range is shaded and
    labelled at the top (the legend then goes right of the plot)."""
    _require(demand, ("ts", "value"), "demand")
    _require(capacity, ("ts", "capacity"), "capacity")
    demand = demand.sort("ts")
    capacity = capacity.sort("ts")
    fig, ax = _new_figure(title)
    if forecast is not None and forecast.height:
        _require(forecast, ("ts", "yhat"), "forecast")
        forecast = forecast.sort("ts")
        tf = _times(forecast)
        if "yhat_upper" in forecast.columns:
            ax.fill_between(tf, _values(forecast, "yhat"), _values(forecast, "yhat_upper"),
                            color=FORECAST_COLOR, alpha=0.15, linewidth=0,
                            label="forecast upper bound")  # fmt: skip
        ax.plot(tf, _values(forecast, "yhat"), color=FORECAST_COLOR, lw=1.2, ls="--",
                label="forecast demand")  # fmt: skip
    if capacity.height:
        ax.step(_times(capacity), _values(capacity, "capacity"), where="post",
                color=CAPACITY_COLOR, lw=1.5, label="capacity")  # fmt: skip
        if note:  # a short history (a fleet's first runs): each decision marked
            ax.plot(_times(capacity)[:-1], _values(capacity, "capacity")[:-1], "o",
                    color=CAPACITY_COLOR, ms=5)  # fmt: skip
    if demand.height:
        td, vd = _times(demand), _values(demand, "value")
        ax.plot(td, vd, color=ACTUAL_COLOR, lw=1.0, label="demand")
        if capacity.height:
            # capacity in effect at each demand time (last step at or before it)
            tc, vc = _times(capacity), _values(capacity, "capacity")
            idx = np.searchsorted(tc, td, side="right") - 1
            cap_at = np.where(idx >= 0, vc[np.clip(idx, 0, None)], np.nan)
            short = vd > cap_at
            if short.any():
                ax.fill_between(td, cap_at, vd, where=short, color=SHORT_COLOR, alpha=0.35,
                                linewidth=0, label="short", interpolate=False)  # fmt: skip
    ax.set_ylabel("players")
    if events:
        _shade_events(ax, events)
        return _finish(fig, ax, path, legend_outside=True, note=note)
    return _finish(fig, ax, path, note=note)
