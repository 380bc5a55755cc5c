"""M4 scoring on hand-computed numbers."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from models.m4_scoring import mase, mase_scale, score_frame, smape


def test_smape_hand_computed() -> None:
    # 200*10/210 = 9.5238..., 200*20/380 = 10.5263...; mean = 10.02506...
    assert smape([100, 200], [110, 180]) == pytest.approx(10.025062656641, rel=1e-9)
    assert smape([0, 5], [0, 5]) == 0.0  # 0/0 counts as no error
    assert smape([1.0], [0.0]) == pytest.approx(200.0)


def test_mase_hand_computed() -> None:
    # season 1: in-sample diffs 1,1,1 -> scale 1; errors 1,2 -> 1.5
    assert mase([5, 6], [4, 8], [1, 2, 3, 4], season=1) == pytest.approx(1.5)
    # season 2: diffs |4-1|=3, |8-2|=6 -> scale 4.5; mean error 1.5 -> 1/3
    assert mase_scale([1, 2, 4, 8], season=2) == pytest.approx(4.5)
    assert mase([5, 6], [4, 8], [1, 2, 4, 8], season=2) == pytest.approx(1 / 3)


def test_mase_needs_enough_history() -> None:
    with pytest.raises(ValueError, match="more than 24"):
        mase([1.0], [1.0], list(range(24)), season=24)


def _long(uid: str, values: list[float], start: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": uid,
            "ds": [start + timedelta(hours=i) for i in range(len(values))],
            "y": [float(v) for v in values],
        }
    )


def test_score_frame_averages_over_series_and_counts_coverage() -> None:
    t0 = datetime(1970, 1, 1)
    history = pl.concat([_long("a", [1, 2, 3, 4], t0), _long("b", [1, 2, 4, 8], t0)])
    t1 = t0 + timedelta(hours=4)
    actuals = pl.concat([_long("a", [5, 6], t1), _long("b", [5, 6], t1)])
    fc = actuals.rename({"y": "yhat"}).with_columns(
        pl.Series("yhat", [4.0, 8.0, 4.0, 8.0]),
        pl.Series("q90", [5.0, 5.0, 6.0, 6.0]),  # covers 5<=5 yes, 6<=5 no, 5<=6, 6<=6 -> 3/4
    )
    per_series, summary = score_frame(
        fc, actuals, history, season=2, interval_columns=[("q90", None, "q90")]
    )
    # a: scale (|3-1|+|4-2|)/2 = 2 -> 1.5/2 = 0.75; b: 1/3
    assert per_series.sort("unique_id")["mase"].to_list() == pytest.approx([0.75, 1 / 3])
    assert summary["mase"] == pytest.approx((0.75 + 1 / 3) / 2)
    expected_smape = (200 * 1 / 9 + 200 * 2 / 14) / 2
    assert summary["smape"] == pytest.approx(expected_smape)
    assert summary["coverage_q90"] == pytest.approx(0.75)


def test_score_frame_refuses_missing_forecasts() -> None:
    t0 = datetime(1970, 1, 1)
    history = _long("a", [1, 2, 3, 4], t0)
    actuals = _long("a", [5, 6], t0 + timedelta(hours=4))
    fc = actuals.head(1).rename({"y": "yhat"})
    with pytest.raises(ValueError, match="have no forecast"):
        score_frame(fc, actuals, history, season=1)


def test_the_validation_windows_are_cut_from_the_training_file_without_the_test_file(
    tmp_path: Path,
) -> None:
    """``load_m4(validation=True)`` holds out each training series' last 48 h and never opens the
    test file (absent here); without it, the test file is what it reads."""
    from benchmarks.m4_hourly import HORIZON, load_m4

    rows = ['"V1","V2","V3"'] + [
        ",".join([f'"H{i}"', *(f'"{v}"' for v in range(i, i + 60 + 10 * i))]) for i in (1, 2)
    ]
    (tmp_path / "m4_hourly_train.csv").write_text("\n".join(rows) + "\n")
    history, held = load_m4(tmp_path, validation=True)
    for i, uid in ((1, "H1"), (2, "H2")):
        y = history.filter(pl.col("unique_id") == uid).sort("ds")["y"].to_list()
        h = held.filter(pl.col("unique_id") == uid).sort("ds")["y"].to_list()
        full = list(range(i, i + 60 + 10 * i))
        assert y == full[:-HORIZON] and h == full[-HORIZON:]
    with pytest.raises(FileNotFoundError):
        load_m4(tmp_path)
