"""The panel stage: one global LightGBM per metric, scored per series at the CV cutoffs (no
look-ahead), stored once as JSON + sha256, predicted from at forecast time, refused when
tampered (the chain falls back, recorded), and the small-panel path with all local candidates."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers_data import store_metrics

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import (
    ModelIntegrityError,
    SeriesKey,
    load_panel,
    model_hash,
    model_key,
    store_panel,
)
from fleetcast.stages.serving import forecast_all
from fleetcast.stages.training import (
    LARGE_PANEL,
    PANEL,
    _fit_panel,
    _panel_forecast_from,
    _plan_candidates,
    train_all,
)
from models import global_gbm
from models.selection import (
    CHEAP_CANDIDATES,
    COMBINATION,
    PANEL_KEEP_MARGIN,
    PANEL_MIN_SERIES,
    CVConfig,
    panel_candidate,
)

START = datetime(1970, 1, 1)
SMALL = global_gbm.GBMConfig(num_rounds=40, max_cutoffs=30, num_leaves=15)
HOURS = 16 * 24


def series(seed: int, hours: int = HOURS, level: float = 500.0) -> pd.DataFrame:
    """Shared daily shape, own level, noisy enough that the same hour yesterday is a poor guess."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours, freq="h")
    shape = np.exp(0.7 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 14) / 24))
    y = level * (1 + seed / 4) * shape * np.exp(rng.normal(0, 0.15, hours))
    return pd.DataFrame({"ds": ts, "y": y})


def insert(settings: Settings, n_series: int, metric: str = "players") -> list[SeriesKey]:
    frames, keys = [], []
    for i in range(n_series):
        h = series(i)
        keys.append(SeriesKey(f"g{i}", "global", metric))
        frames.append(
            pl.DataFrame(
                {
                    "ts": h["ds"].to_numpy(),
                    "game_type": f"g{i}",
                    "region": "global",
                    "metric": metric,
                    "value": h["y"].to_numpy(),
                    "batch_id": "test",
                }
            )
        )
    frame = pl.concat(frames)
    store_metrics(settings, frame)
    return keys


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def test_gbm_text_round_trip_and_registry_hash(settings: Settings) -> None:
    arrays = {f"s{i}": series(i)["y"].to_numpy() for i in range(4)}
    fitted = global_gbm.fit(arrays, 24, n_jobs=1, config=SMALL)
    text = global_gbm.dumps(fitted)
    assert "pickle" not in text and json.loads(text)["booster"].startswith("tree")
    back = global_gbm.loads(text)
    grid = {k: (START, v) for k, v in arrays.items()}
    a, b = global_gbm.predict(fitted, grid), global_gbm.predict(back, grid)
    assert a.equals(b)
    assert global_gbm.dumps(back) == text  # deterministic text: its hash identifies the model
    with db.session(settings.db_path) as con, db.transaction(con):
        pid, sha = store_panel(
            con, kind=PANEL, metric="players", model_json=text, n_series=4, horizon=24,
            params={}, train_run="r", trained_at=START, mac_key=model_key(settings),
        )  # fmt: skip
    assert sha == model_hash(text)
    with db.session(settings.db_path) as con:
        key = model_key(settings)
        assert load_panel(con, pid, sha, mac_key=key) == text
        with pytest.raises(ModelIntegrityError, match="expected|differs"):
            load_panel(con, pid, "0" * 64, mac_key=key)
        con.execute(
            "update panel_models set model_json = replace(model_json, '\"horizon\": 24', "
            "'\"horizon\": 23') where panel_id = ?",
            [pid],
        ).fetchall()
        with pytest.raises(ModelIntegrityError, match="changed after training"):
            load_panel(con, pid, sha, mac_key=key)


def test_panel_cv_has_no_look_ahead() -> None:
    """Changing every series after its first CV cutoff changes neither the trees the CV hours
    are scored with nor the forecast made at that cutoff (the served model is retrained with
    those hours, ``GBMConfig.refit``, and does read them); a cutoff inside the training data is
    refused."""
    cv = CVConfig(horizon=24, n_origins=2)
    keys = [SeriesKey(f"g{i}", "global", "players") for i in range(4)]
    hist = {k: series(i) for i, k in enumerate(keys)}
    changed = {
        k: h.assign(y=np.r_[h["y"].to_numpy()[:-48], np.full(48, 9e4)]) for k, h in hist.items()
    }
    a = _fit_panel("players", hist, cv, local="none", threads=1, config=SMALL)
    b = _fit_panel("players", changed, cv, local="none", threads=1, config=SMALL)
    assert a.model_json is not None and b.model_json is not None
    assert json.loads(a.model_json)["booster"] != json.loads(b.model_json)["booster"]  # served
    for key in keys:  # the point forecast at the first cut, what CV MASE scores there
        first_a, first_b = a.scores[key].result.cv_points, b.scores[key].result.cv_points
        np.testing.assert_array_equal(first_a[HOURS - 48], first_b[HOURS - 48])
    fa = _panel_forecast_from(global_gbm.loads(a.model_json), keys[0].label())
    assert all(np.isfinite(s.result.cv_mase) for s in a.scores.values())
    assert a.scores[keys[0]].result.cv_mase != b.scores[keys[0]].result.cv_mase  # actuals differ
    late = panel_candidate(PANEL, {}, hist[keys[0]], fa, config=cv, earliest_cutoff=HOURS - 24)  # type: ignore[arg-type]
    assert not np.isfinite(late.cv_mase) and "look-ahead" in (late.error or "")


def test_the_panel_candidate_keeps_its_calibration_models_earlier_forecasts() -> None:
    """For the served combination's calibration, the panel candidate carries out-of-sample
    forecasts at earlier origins: the calibration model's, which trained before all of them (so
    changing the held-out hours changes none), beside its two scored cuts."""
    cv = CVConfig(horizon=24, n_origins=2)
    keys = [SeriesKey(f"g{i}", "global", "players") for i in range(4)]
    n = 20 * 24  # long enough for all 4 calibration origins
    hist = {k: series(i, n) for i, k in enumerate(keys)}
    changed = {
        k: h.assign(y=np.r_[h["y"].to_numpy()[:-48], np.full(48, 9e4)]) for k, h in hist.items()
    }
    a = _fit_panel("players", hist, cv, local="none", threads=1, config=SMALL)
    b = _fit_panel("players", changed, cv, local="none", threads=1, config=SMALL)
    for key in keys:
        pa, pb = a.scores[key].result.cv_points, b.scores[key].result.cv_points
        # 4 calibration origins a day apart ending 48 h before the held-out hours, then the
        # two scored cuts inside them
        assert sorted(pa) == [n - 168, n - 144, n - 120, n - 96,
                              n - 48, n - 24]  # fmt: skip
        for cut in (n - 168, n - 144, n - 120, n - 96):
            assert len(pa[cut]) == 24
            np.testing.assert_array_equal(pa[cut], pb[cut])


def test_panel_champion_by_cv_stored_once_and_tamper_falls_back(settings: Settings) -> None:
    keys = insert(settings, 6)
    results = train_all(settings, candidates=[PANEL, "snaive24"], workers=1, panel_config=SMALL)
    assert {r.status for r in results} == {"trained"}
    with db.session(settings.db_path) as con:
        rows = con.sql(
            "select game_type, kind, score, is_champion, model_json, note from models"
        ).fetchall()
        panels = con.sql("select panel_id, n_series, sha256 from panel_models").fetchall()
    assert len(panels) == 1 and panels[0][1] == 6  # one panel model shared by the six series
    gbm_rows = [r for r in rows if r[1] == PANEL]
    assert {json.loads(r[4])["panel_id"] for r in gbm_rows} == {panels[0][0]}
    champions = {}
    for key in keys:  # served: the panel alone unless snaive24 is 20% better, else both combined
        mine = {r[1]: r for r in rows if r[0] == key.game_type}
        combo = mine.pop(COMBINATION, None)
        kept = mine[PANEL][2] * (1 - PANEL_KEEP_MARGIN) <= mine["snaive24"][2]
        champ = PANEL if kept else COMBINATION
        assert [k for k, r in mine.items() if r[3]] == ([PANEL] if kept else [])
        if kept:
            assert combo is None and f"champion {PANEL}" in mine[PANEL][5]
        else:
            by_cv = sorted(mine, key=lambda k: mine[k][2])
            assert combo[3] and json.loads(combo[4])["members"] == by_cv
            assert "champion combination" in combo[5] and "panel stage" in combo[5]
        champions[key.game_type] = champ
    assert PANEL in champions.values(), "the shared-shape panel should be kept somewhere"

    fc = forecast_all(settings, 24)
    used = dict(fc.group_by("game_type").agg(pl.col("model").first()).iter_rows())
    assert used == champions  # the panel predicted from the stored model, alone or as a member

    with db.session(settings.db_path) as con:
        con.execute(
            "update panel_models set model_json = replace(model_json, 'tree', 'Tree')"
        ).fetchall()
    fc = forecast_all(settings, 24)
    per = {g: (m, n) for g, m, n in fc.group_by("game_type").agg(
        pl.col("model").first(), pl.col("note").first()).iter_rows()}  # fmt: skip
    for g in used:  # without the panel model (alone, or the combination's other member): snaive24
        model, note = per[g]
        assert model == "snaive24" and "global_gbm refused" in note and "fell back" in note
    assert fc["yhat"].is_finite().all()


def test_small_panel_keeps_all_local_candidates_and_large_is_cheap(settings: Settings) -> None:
    assert _plan_candidates(None, LARGE_PANEL + 1, True)[1] == list(CHEAP_CANDIDATES)
    assert _plan_candidates(None, 3, True)[:2] == (False, None)  # too small for a panel model
    assert _plan_candidates(None, PANEL_MIN_SERIES, True)[:2] == (True, None)
    assert _plan_candidates([PANEL, "mstl"], 3, True)[:2] == (True, ["mstl"])  # asked for
    assert _plan_candidates(["mstl"], 500, True)[:2] == (False, ["mstl"])
    insert(settings, 2)
    results = train_all(
        settings, candidates=[PANEL, "snaive24", "mstl"], workers=1, panel_config=SMALL
    )
    assert len(results) == 2 and all(r.status == "trained" for r in results)
    with db.session(settings.db_path) as con:
        kinds = {k for (k,) in con.sql("select distinct kind from models").fetchall()}
    assert {PANEL, "snaive24", "mstl", "ensemble"} - kinds <= {"ensemble"}
    fc = forecast_all(settings, 48)
    assert fc.height == 2 * 48 and fc["yhat_q90"].is_finite().all()
    assert (fc["yhat_q90"] >= fc["yhat"]).all() and (fc["yhat_upper"] >= fc["yhat"]).all()


def test_cli_train_candidates_and_forecast(settings: Settings, tmp_path, capsys) -> None:
    insert(settings, 3, metric="sessions")
    base = ["--db", str(settings.db_path)]
    assert main([*base, "train", "--candidates", "snaive24,nope"]) == 1
    assert "unknown candidates ['nope']" in capsys.readouterr().err
    assert main([*base, "train", "--candidates", "global_gbm,snaive24", "--workers", "1"]) == 0
    listing = capsys.readouterr().out
    assert "panel stage: global_gbm trained across 3 of 3 series" in listing
    out = tmp_path / "f.csv"
    assert main([*base, "forecast", "--horizon", "48", "--out", str(out)]) == 0
    frame = pl.read_csv(out)
    assert frame.height == 3 * 48 and set(frame["model"]) <= {PANEL, "snaive24", COMBINATION}
