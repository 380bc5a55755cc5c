"""Champion-selection rules priced on the protocol's validation windows.

    .venv/bin/python benchmarks/m4_product.py DATA/m4-hourly --validation --workdir DIR
    .venv/bin/python benchmarks/selection_rules.py --m4 DATA/m4-hourly --workdir DIR
    (or: steam_heldout.py DATA/steam-dev --validation --workdir DIR; then --steam DATA/steam-dev)

After a ``--validation`` run of a product benchmark (the product trained on the training part
without its last 48 h), every stored candidate of every series forecasts those 48 h on its own
(the served path, ``forecast_series`` with a one-model chain), and each rule below picks or
combines candidates from what ``train`` recorded (CV MASE per candidate). Prints the mean MASE
and sMAPE of each rule over the series. The test part is never read: the rule chosen here is
frozen before the test part is scored once (docs/forecasting.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4_hourly import load_m4, validation_split  # noqa: E402
from benchmarks.steam_heldout import FILE, HORIZON, split  # noqa: E402
from fleetcast.config import Settings  # noqa: E402
from fleetcast.resources import db  # noqa: E402
from fleetcast.resources.registry import champion_sets, model_key  # noqa: E402
from fleetcast.stages.histories import load_events, load_histories  # noqa: E402
from fleetcast.stages.serving import _forecast_one, _panel_forecasts  # noqa: E402
from models.accuracy import mase, mase_scale, smape  # noqa: E402
from models.selection import COMBINATION  # noqa: E402

Cands = dict[str, tuple[float, np.ndarray]]  # name -> (CV MASE, validation forecast)


def validation_actuals(args: argparse.Namespace) -> pl.DataFrame:
    """``unique_id`` (the stored game type), ``ds, y`` of the validation hours."""
    if args.m4:
        history, _ = load_m4(args.m4)
        _, held = validation_split(history)
        return held.with_columns(pl.col("unique_id").str.to_lowercase())
    raw = pl.read_csv(args.steam / FILE, try_parse_dates=True).with_columns(
        pl.col("ts").cast(pl.Datetime("us"))
    )
    _, held = split(raw, skip=HORIZON)
    return held


def candidate_forecasts(work: Path) -> dict[str, tuple[np.ndarray, np.ndarray, Cands, str]]:
    """game type -> (forecast hours, in-sample y, candidates, champion) from a run's database."""
    db_path = next(work.glob("*.duckdb"))
    settings = Settings.from_env(db_path=db_path, work_dir=work / "work")
    mac = model_key(settings)
    with db.session(settings.db_path) as con:
        sets = champion_sets(con, mac_key=mac)
        histories = load_histories(con)
        events = load_events(con)
        panel = _panel_forecasts(con, sets, histories, HORIZON, mac)  # type: ignore[arg-type]
        scores = {
            key: dict(
                con.execute(db.sql("model_scores"), {"ids": list(cs.model_ids.values())}).fetchall()
            )
            for key, cs in sets.items()
        }
    out = {}
    for key, cs in sets.items():
        hist = histories[key]
        cands: Cands = {}
        hours = None
        for name in cs.chain:
            score = scores[key].get(name)
            if score is None or not math.isfinite(score):
                continue
            res = _forecast_one(replace(cs, chain=[name]), hist, events, HORIZON, panel.get(key))
            if isinstance(res, Exception) or res.model != name:
                continue
            cands[name] = (float(score), res.frame["yhat"].to_numpy(dtype=float))
            hours = res.frame["ds"].to_numpy()
        if cands:
            out[key.game_type] = (hours, hist["y"].to_numpy(dtype=float), cands, cs.chain[0])
    return out


def _by_cv(c: Cands) -> list[str]:
    """The candidates by CV MASE, a stored combination left out (``always combination`` is it)."""
    return sorted((n for n in c if n != COMBINATION), key=lambda n: c[n][0])


def champion(c: Cands, chosen: str) -> np.ndarray:
    """The lowest CV MASE alone: the champion rule before the combination."""
    return c[_by_cv(c)[0]][1]


def always(name: str) -> Callable[[Cands, str], np.ndarray]:
    return lambda c, chosen: c[name][1] if name in c else champion(c, chosen)  # (or the lowest)


def top_mean(k: int) -> Callable[[Cands, str], np.ndarray]:
    return lambda c, chosen: np.mean([c[n][1] for n in _by_cv(c)[:k]], axis=0)


def top_median(k: int) -> Callable[[Cands, str], np.ndarray]:
    return lambda c, chosen: np.median([c[n][1] for n in _by_cv(c)[:k]], axis=0)


def panel_unless(
    margin: float, then: Callable[[Cands, str], np.ndarray] | None = None
) -> Callable[[Cands, str], np.ndarray]:
    """The panel model unless a local candidate's CV MASE is lower by more than ``margin``; then
    ``then`` (default: that candidate alone)."""

    def rule(c: Cands, chosen: str) -> np.ndarray:
        if "global_gbm" not in c:
            return champion(c, chosen)
        best = _by_cv(c)[0]
        if c[best][0] >= (1 - margin) * c["global_gbm"][0]:
            return c["global_gbm"][1]
        return c[best][1] if then is None else then(c, chosen)

    return rule


def inverse_cv(k: int) -> Callable[[Cands, str], np.ndarray]:
    def rule(c: Cands, chosen: str) -> np.ndarray:
        names = _by_cv(c)[:k]
        w = np.array([1.0 / max(c[n][0], 1e-9) for n in names])
        return np.sum([wi * c[n][1] for wi, n in zip(w / w.sum(), names, strict=True)], axis=0)

    return rule


def within(ratio: float, k: int, power: float = 1.0) -> Callable[[Cands, str], np.ndarray]:
    """The best ``k`` by CV whose CV MASE is within ``ratio`` of the best, weighted by
    1 / CV MASE ** ``power``."""

    def rule(c: Cands, chosen: str) -> np.ndarray:
        names = _by_cv(c)[:k]
        names = [n for n in names if c[n][0] <= (1 + ratio) * c[names[0]][0]]
        w = np.array([1.0 / max(c[n][0], 1e-9) ** power for n in names])
        return np.sum([wi * c[n][1] for wi, n in zip(w / w.sum(), names, strict=True)], axis=0)

    return rule


NAIVES = ("snaive24", "snaive168")


def models_only(ratio: float, k: int, margin: float) -> Callable[[Cands, str], np.ndarray]:
    """``within(ratio, k)`` over the candidates that are not seasonal naives; with fewer than
    two of those qualifying, ``panel_unless(margin)``."""
    comb, alone = within(ratio, k), panel_unless(margin)

    def rule(c: Cands, chosen: str) -> np.ndarray:
        models = {n: v for n, v in c.items() if n not in NAIVES}
        names = _by_cv(models)[:k]
        if len([n for n in names if models[n][0] <= (1 + ratio) * models[names[0]][0]]) >= 2:
            return comb(models, chosen)
        return alone(c, chosen)

    return rule


PANEL = "global_gbm"


def without_panel(rule: Callable[[Cands, str], np.ndarray]) -> Callable[[Cands, str], np.ndarray]:
    """``rule`` over the local candidates only: what ``train --no-panel`` serves."""
    return lambda c, chosen: rule({n: v for n, v in c.items() if n != PANEL} or c, chosen)


def by_panel_size(
    n_series: int,
    threshold: int,
    large: Callable[[Cands, str], np.ndarray],
    small: Callable[[Cands, str], np.ndarray],
) -> Callable[[Cands, str], np.ndarray]:
    """``large`` for a panel of at least ``threshold`` series (the run's), else ``small``."""
    return large if n_series >= threshold else small


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--m4", type=Path, help="the M4 hourly folder (after m4_product --validation)")
    src.add_argument("--steam", type=Path, help="steam-dev (after steam_heldout --validation)")
    ap.add_argument("--workdir", type=Path, required=True, help="the --validation run's folder")
    ap.add_argument("--out", type=Path, default=None, help="the table as CSV")
    args = ap.parse_args(argv)

    actuals = validation_actuals(args)
    fc = candidate_forecasts(args.workdir)
    names = sorted({n for _, _, c, _ in fc.values() for n in c})
    rules: dict[str, Callable[[Cands, str], np.ndarray]] = {"lowest CV alone": champion}
    rules |= {f"always {n}": always(n) for n in names}
    rules |= {f"mean of best {k}": top_mean(k) for k in (2, 3)}
    rules |= {f"median of best {k}": top_median(k) for k in (3, 5)}
    rules |= {f"inverse-CV weights, best {k}": inverse_cv(k) for k in (2, 3)}
    rules |= {f"global unless {m:.0%} better": panel_unless(m) for m in (0.1, 0.2, 0.3, 0.5)}
    rules |= {f"inverse-CV, best 3 within {r:.0%}": within(r, 3) for r in (0.1, 0.25, 0.5, 1.0)}
    rules |= {f"inverse-CV^2, best 3 within {r:.0%}": within(r, 3, 2) for r in (0.25, 0.5)}
    rules |= {"inverse-CV^2, best 3": within(1e9, 3, 2), "inverse-CV^4, best 3": within(1e9, 3, 4)}
    rules |= {
        f"models only within 100%, else global unless {m:.0%}": models_only(1.0, 3, m)
        for m in (0.2, 0.3)
    }
    rules |= {
        f"global unless {m:.0%} better, else combination": panel_unless(m, within(1.0, 3))
        for m in (0.2, 0.3)
    }
    current = panel_unless(0.2, within(1.0, 3))
    n = len(fc)
    rules |= {
        "the combination, global a member like any other": within(1.0, 3),
        "no panel: the combination of local candidates": without_panel(within(1.0, 3)),
        "global unless 0% better, else combination": panel_unless(0.0, within(1.0, 3)),
        "no panel: the combination of local non-naive candidates": without_panel(
            models_only(1.0, 3, 0.2)
        ),
    }
    for t in (10, 20, 30, 50, 100):
        rules[f"panel >= {t}: global unless 20%, else combination; smaller: combination"] = (
            by_panel_size(n, t, current, within(1.0, 3))
        )
        rules[f"panel >= {t}: global unless 20%, else combination; smaller: no panel"] = (
            by_panel_size(n, t, current, without_panel(within(1.0, 3)))
        )
    act = {str(g): part for (g,), part in actuals.group_by("unique_id")}
    rows = []
    for label, rule in rules.items():
        m, s = [], []
        for game, (hours, insample, cands, chosen) in fc.items():
            a = act.get(game)
            if a is None:
                continue
            frame = pl.DataFrame({"ds": hours, "f": rule(cands, chosen)}).with_columns(
                pl.col("ds").cast(pl.Datetime("us"))
            )
            both = a.join(frame, on="ds")
            y, f = both["y"].to_numpy(), both["f"].to_numpy()
            m.append(mase(y, f, mase_scale(insample, 24)))
            s.append(smape(y, f))
        rows.append({"rule": label, "series": len(m), "mase": np.nanmean(m),
                     "median_mase": np.nanmedian(m), "smape": np.nanmean(s)})  # fmt: skip
    with pl.Config(tbl_rows=80, tbl_hide_dataframe_shape=True, fmt_str_lengths=80):
        print(pl.DataFrame(rows).with_columns(pl.col(pl.Float64).round(3)))
    if args.out:
        pl.DataFrame(rows).write_csv(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
