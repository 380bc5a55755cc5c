"""The model registry on its own (fleetcast/resources/registry.py): storing a series' candidates,
versions and pruning, the champion chain, the hash and HMAC checks, panel models and the model
key. Literal models in a fresh DuckDB file, no training: fast, so mutation testing of the
registry can run them for every mutant."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources import registry as reg
from fleetcast.resources.registry import (
    ModelIntegrityError,
    SeriesKey,
    champion_sets,
    check_mac,
    list_models,
    load_model,
    load_panel,
    model_hash,
    model_key,
    model_mac,
    prune_panels,
    store_panel,
    store_training,
)
from models.names import InvalidName
from models.prophet_model import dumps
from models.selection import CandidateResult, SeriesTraining

KEY = b"k" * 32
AT = datetime(2026, 1, 5, 12)
SERIES = SeriesKey("br", "eu", "players")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = db.connect(tmp_path / "r.duckdb")
    yield c
    c.close()


def cand(name: str, model: dict | None, mase: float, error: str | None = None) -> CandidateResult:
    return CandidateResult(name, model, mase, mase * 10, 0.9, 2, error, cv_coverage_q90=mase + 0.3)


def training(*, champion: str = "snaive24", notes: list[str] | None = None) -> SeriesTraining:
    """A champion, a fallback, a candidate that failed and one scored by a panel model."""
    return SeriesTraining(
        candidates={
            "snaive24": cand("snaive24", {"kind": "snaive24", "season": 24}, 0.5),
            "snaive168": cand("snaive168", {"kind": "snaive168", "season": 168}, 0.7),
            "prophet": cand("prophet", None, float("inf"), "no convergence"),
            "global_gbm": cand("global_gbm", None, 0.6),
        },
        champion=champion,
        chain=[champion, "snaive168"] if champion != "snaive168" else ["snaive168"],
        train_start=pd.Timestamp("2026-01-01"),
        train_end=pd.Timestamp("2026-01-05"),
        n_obs=96,
        notes=notes or [],
    )


def rows(con: duckdb.DuckDBPyConnection, region: str | None = None) -> dict[tuple[str, int], dict]:
    """(kind, version) -> the stored row (of one region when given)."""
    frame = con.sql(
        "select * from models where $region is null or region = $region",
        params={"region": region},
    ).pl()
    return {(r["kind"], r["version"]): r for r in frame.to_dicts()}


def test_series_key_names_are_checked_and_labelled() -> None:
    assert SERIES.label() == "br/eu/players"
    assert SERIES.params() == {"game_type": "br", "region": "eu", "metric": "players"}
    for bad in (("Br", "eu", "players"), ("br", "e u", "players"), ("br", "eu", "")):
        with pytest.raises(InvalidName):
            SeriesKey(*bad)
    for field, value in (("game type", "Br"), ("region", "e u"), ("metric", "m/x")):
        args = {"game type": "br", "region": "eu", "metric": "players", field: value}
        with pytest.raises(InvalidName, match=f"invalid {field} {value!r}"):
            SeriesKey(args["game type"], args["region"], args["metric"])


def test_hash_and_mac_are_sha256_and_hmac_sha256_of_the_utf8_text() -> None:
    text = '{"kind":"snaive24","note":"été"}'
    assert model_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert model_mac(KEY, text) == hmac.new(KEY, text.encode("utf-8"), "sha256").hexdigest()
    assert model_mac(b"j" * 32, text) != model_mac(KEY, text)


def test_check_mac_refuses_a_missing_or_wrong_mac_with_the_fix() -> None:
    text = '{"kind":"x"}'
    check_mac(KEY, text, model_mac(KEY, text), "model m1")  # verifies: no error
    retrain = "Retrain the series (`fleetcast train`) to replace it"
    for mac in (None, ""):
        with pytest.raises(ModelIntegrityError) as info:
            check_mac(KEY, text, mac, "model m1")
        assert str(info.value) == (
            "model m1 refused: it carries no HMAC (stored before models were authenticated, or "
            f"its HMAC was removed). {retrain}"
        )
    with pytest.raises(ModelIntegrityError) as info:
        check_mac(KEY, text, model_mac(b"j" * 32, text), "model m1")
    assert str(info.value) == (
        "model m1 refused: its HMAC does not verify with this installation's model key; it was "
        f"changed after training (or trained with another key). {retrain}"
    )


def test_load_model_checks_the_hash_then_the_mac() -> None:
    text = dumps({"kind": "snaive24", "season": 24})
    sha = model_hash(text)
    assert load_model(text, sha) == {"kind": "snaive24", "season": 24}  # no key: hash only
    assert load_model(text, sha, "m1", key=KEY, mac=model_mac(KEY, text))["season"] == 24
    with pytest.raises(ModelIntegrityError) as info:
        load_model(text.replace("24", "25"), sha, "m1", key=KEY, mac=model_mac(KEY, text))
    actual = model_hash(text.replace("24", "25"))
    assert str(info.value) == (
        f"model m1 refused: sha256 of its JSON is {actual[:12]}..., the registry recorded "
        f"{sha[:12]}...; it was changed after training. Retrain the series (`fleetcast train`) "
        "to replace it"
    )
    with pytest.raises(ModelIntegrityError, match="^model \\? refused: sha256"):
        load_model(text, "0" * 64)
    with pytest.raises(ModelIntegrityError, match="^model m1 refused: it carries no HMAC"):
        load_model(text, sha, "m1", key=KEY)


def test_store_training_one_row_per_candidate(con: duckdb.DuckDBPyConnection) -> None:
    t = training(notes=["short history", "prophet failed"])
    ids = store_training(con, SERIES, t, train_run="run-1", trained_at=AT, mac_key=KEY)
    stored = rows(con)
    assert set(stored) == {(k, 1) for k in t.candidates}
    assert {k: stored[(k, 1)]["model_id"] for k in t.candidates} == ids
    assert len(set(ids.values())) == 4 and all(len(i) == 32 for i in ids.values())
    bodies = {k: json.loads(stored[(k, 1)]["model_json"]) for k in t.candidates}
    assert bodies == {
        "snaive24": {"kind": "snaive24", "season": 24},
        "snaive168": {"kind": "snaive168", "season": 168},
        "prophet": {"kind": "prophet", "failed": "no convergence"},
        "global_gbm": {"kind": "global_gbm", "external": True},
    }
    for (kind, _), r in stored.items():
        assert (r["game_type"], r["region"], r["metric"]) == ("br", "eu", "players")
        assert r["model_json"] == dumps(bodies[kind])
        assert r["sha256"] == model_hash(r["model_json"])
        assert r["hmac"] == model_mac(KEY, r["model_json"])
        assert (r["trained_at"], r["train_run"], r["n_obs"]) == (AT, "run-1", 96)
        assert (r["train_start"], r["train_end"]) == (datetime(2026, 1, 1), datetime(2026, 1, 5))
        assert r["is_champion"] == (kind == "snaive24")
        assert json.loads(r["params"]) == {
            "chain": ["snaive24", "snaive168"],
            "cv_origins": 2,
            "usable": kind in ("snaive24", "snaive168"),
        }
    assert [stored[(k, 1)]["score"] for k in t.candidates] == [0.5, 0.7, None, 0.6]
    assert stored[("prophet", 1)]["cv_smape"] is None  # inf is stored as null
    assert stored[("snaive168", 1)]["cv_smape"] == pytest.approx(7.0)
    assert stored[("snaive168", 1)]["cv_coverage"] == pytest.approx(0.9)
    assert stored[("snaive168", 1)]["cv_coverage_q90"] == pytest.approx(1.0)
    assert stored[("prophet", 1)]["cv_coverage_q90"] is None  # inf is stored as null
    assert {k: stored[(k, 1)]["note"] for k in t.candidates} == {
        "snaive24": "short history; prophet failed",  # the champion carries the notes
        "snaive168": None,
        "prophet": "failed: no convergence",
        "global_gbm": None,
    }


def test_long_notes_are_cut_to_500_characters(con: duckdb.DuckDBPyConnection) -> None:
    t = training(notes=["n" * 300, "m" * 300])
    t.candidates["prophet"].error = "e" * 600
    store_training(con, SERIES, t, train_run="run-1", trained_at=AT, mac_key=KEY)
    stored = rows(con)
    assert stored[("prophet", 1)]["note"] == ("failed: " + "e" * 600)[:500]
    assert stored[("snaive24", 1)]["note"] == ("n" * 300 + "; " + "m" * 300)[:500]


def test_new_versions_move_the_champion_and_old_ones_are_pruned(
    con: duckdb.DuckDBPyConnection,
) -> None:
    other = SeriesKey("br", "us", "players")
    store_training(con, other, training(), train_run="other", trained_at=AT, mac_key=KEY)
    for run in range(1, 6):
        champion = "snaive168" if run == 5 else "snaive24"
        store_training(con, SERIES, training(champion=champion), train_run=f"run-{run}",
                       trained_at=AT, mac_key=KEY)  # fmt: skip
    stored = rows(con, "eu")
    # three versions kept per kind (KEEP_VERSIONS), the latest champion only
    assert sorted(v for k, v in stored if k == "snaive168") == [3, 4, 5]
    assert sorted(v for k, v in stored if k == "prophet") == [3, 4, 5]
    assert [kv for kv, r in stored.items() if r["is_champion"]] == [("snaive168", 5)]
    # the other series is untouched: its champion and its version 1
    assert [(k, v) for (k, v), r in rows(con, "us").items() if r["is_champion"]] == [
        ("snaive24", 1)
    ]
    # keep=1: only the newest version of each kind (the champion is never pruned)
    store_training(con, SERIES, training(), train_run="run-6", trained_at=AT, mac_key=KEY, keep=1)
    assert sorted(rows(con, "eu")) == sorted((k, 6) for k in training().candidates)


def test_champion_sets_load_the_champion_run_and_refuse_tampered_models(
    con: duckdb.DuckDBPyConnection,
) -> None:
    ids = store_training(con, SERIES, training(), train_run="run-1", trained_at=AT, mac_key=KEY)
    other = SeriesKey("fps", "eu", "cpu_cores")
    store_training(con, other, training(champion="snaive168"), train_run="run-2", trained_at=AT,
                   mac_key=KEY)  # fmt: skip
    sets = champion_sets(con, mac_key=KEY)
    assert list(sets) == [SERIES, other]
    cs = sets[SERIES]
    assert cs.key == SERIES and cs.chain == ["snaive24", "snaive168"]
    # the failed and the panel-scored candidates have no model to load here
    assert cs.models == {"snaive24": {"kind": "snaive24", "season": 24},
                         "snaive168": {"kind": "snaive168", "season": 168}}  # fmt: skip
    assert cs.model_ids == {k: ids[k] for k in ("snaive24", "snaive168")}
    assert cs.refused == {}
    assert sets[other].chain == ["snaive168"]
    assert list(champion_sets(con, "fps", mac_key=KEY)) == [other]
    assert list(champion_sets(con, metric="players", mac_key=KEY)) == [SERIES]
    assert champion_sets(con, "br", "cpu_cores", mac_key=KEY) == {}
    # another key: every model refused, nothing loaded
    refused = champion_sets(con, "br", mac_key=b"j" * 32)[SERIES]
    assert refused.models == {} and refused.model_ids == {}
    assert refused.refused == {
        k: f"HMAC not verified (model {i} changed after training)" for k, i in ids.items()
    }
    # a rewritten model (hash not recomputed): sha256 mismatch, the fallback still loads
    con.execute(
        "update models set model_json = replace(model_json, '24', '25') where model_id = ?",
        [ids["snaive24"]],
    )
    cs = champion_sets(con, "br", mac_key=KEY)[SERIES]
    assert cs.refused == {
        "snaive24": f"sha256 mismatch (model {ids['snaive24']} changed after training)"
    }
    assert list(cs.models) == ["snaive168"] and list(cs.model_ids) == ["snaive168"]


def test_champion_without_a_stored_chain_is_its_own_chain(con: duckdb.DuckDBPyConnection) -> None:
    store_training(con, SERIES, training(), train_run="run-1", trained_at=AT, mac_key=KEY)
    con.execute("update models set params = null where is_champion")
    assert champion_sets(con, mac_key=KEY)[SERIES].chain == ["snaive24"]
    con.execute("update models set params = '{}' where is_champion")
    assert champion_sets(con, mac_key=KEY)[SERIES].chain == ["snaive24"]


def test_list_models_latest_or_all_versions(con: duckdb.DuckDBPyConnection) -> None:
    for run in ("run-1", "run-2"):
        store_training(con, SERIES, training(), train_run=run, trained_at=AT, mac_key=KEY)
    other = SeriesKey("fps", "eu", "cpu_cores")
    store_training(con, other, training(), train_run="run-3", trained_at=AT, mac_key=KEY)
    latest = list_models(con)
    assert latest.height == 8 and set(latest["version"]) == {1, 2}
    assert set(list_models(con, "br")["version"]) == {2}
    assert list_models(con, "br", all_versions=True).height == 8
    assert set(list_models(con, metric="cpu_cores")["game_type"]) == {"fps"}
    first = list_models(con, "br").row(0, named=True)
    assert (first["kind"], first["is_champion"]) == ("snaive24", True)


def test_panel_models_are_stored_hashed_signed_and_checked(con: duckdb.DuckDBPyConnection) -> None:
    text = json.dumps({"booster": "tree 1"})
    pid, sha = store_panel(con, kind="global_gbm", metric="players", model_json=text, n_series=3,
                           horizon=24, params={"lr": 0.1}, train_run="run-1", trained_at=AT,
                           mac_key=KEY, note="3 series")  # fmt: skip
    assert sha == model_hash(text) and len(pid) == 32
    [row] = con.sql("select * from panel_models").pl().to_dicts()
    assert row == {**row, "panel_id": pid, "kind": "global_gbm", "metric": "players",
                   "trained_at": AT, "train_run": "run-1", "n_series": 3, "horizon": 24,
                   "params": '{"lr": 0.1}', "model_json": text, "sha256": sha,
                   "note": "3 series", "hmac": model_mac(KEY, text)}  # fmt: skip
    assert load_panel(con, pid, sha, mac_key=KEY) == text
    with pytest.raises(InvalidName, match="^invalid metric 'Players': use"):
        store_panel(con, kind="global_gbm", metric="Players", model_json=text, n_series=3,
                    horizon=24, params={}, train_run="r", trained_at=AT, mac_key=KEY)  # fmt: skip

    def refusal(panel_id: str, expected: str, key: bytes = KEY) -> str:
        with pytest.raises(ModelIntegrityError) as info:
            load_panel(con, panel_id, expected, mac_key=key)
        return str(info.value)

    assert refusal("nope", sha) == (
        "panel model nope is missing from the registry: retrain (`fleetcast train`)"
    )
    assert refusal(pid, "f" * 64) == (
        f"panel model {pid} refused: its recorded sha256 {sha[:12]}... differs from the "
        f"ffffffffffff... the series was trained with; retrain the series"
    )
    assert refusal(pid, sha, b"j" * 32).startswith(f"panel model {pid} refused: its HMAC does")
    con.execute("update panel_models set model_json = ?", [text.replace("1", "2")])
    actual = model_hash(text.replace("1", "2"))
    assert refusal(pid, sha) == (
        f"panel model {pid} refused: sha256 of its JSON is {actual[:12]}..., the registry "
        f"recorded {sha[:12]}...; it was changed after training. Retrain (`fleetcast train`) "
        "to replace it"
    )
    con.execute("update panel_models set model_json = ?, hmac = null", [text])
    assert refusal(pid, sha).startswith(f"panel model {pid} refused: it carries no HMAC")


def test_prune_panels_drops_only_panels_no_series_points_at(
    con: duckdb.DuckDBPyConnection,
) -> None:
    kw = dict(kind="global_gbm", metric="players", n_series=1, horizon=24, params={},
              train_run="r", trained_at=AT, mac_key=KEY)  # fmt: skip
    used, used_sha = store_panel(con, model_json='{"a": 1}', **kw)  # type: ignore[arg-type]
    store_panel(con, model_json='{"a": 2}', **kw)  # type: ignore[arg-type]
    t = training()
    t.candidates["global_gbm"].model = {"kind": "global_gbm", "panel_id": used,
                                        "panel_sha256": used_sha}  # fmt: skip
    store_training(con, SERIES, t, train_run="run-1", trained_at=AT, mac_key=KEY)
    prune_panels(con)
    assert con.sql("select panel_id from panel_models").fetchall() == [(used,)]


def test_model_key_from_settings_or_a_private_key_file(tmp_path: Path) -> None:
    env = Settings(work_dir=tmp_path / "a", model_key="from-the-environment-é")
    assert model_key(env) == "from-the-environment-é".encode()
    assert not env.model_key_path.exists()  # no file made when the key is given
    local = Settings(work_dir=tmp_path / "b" / "deep")  # the folder is made on first use
    key = model_key(local)
    assert len(key) == 64 and bytes.fromhex(key.decode())  # 32 random bytes, hex
    assert stat.S_IMODE(local.model_key_path.stat().st_mode) == 0o600
    assert model_key(local) == key  # generated once
    assert model_key(Settings(work_dir=tmp_path / "c")) != key


def test_model_key_file_made_by_another_process_first_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Settings(work_dir=tmp_path)
    theirs = "t" * 64
    real_open = os.open

    def racing_open(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # the other process wins
        os.write(fd, theirs.encode())
        os.close(fd)
        return real_open(path, flags, mode)

    monkeypatch.setattr(reg.os, "open", racing_open)
    assert model_key(local) == theirs.encode()


def test_model_key_file_open_to_others_or_too_short_is_refused(tmp_path: Path) -> None:
    local = Settings(work_dir=tmp_path)
    path = local.model_key_path
    path.write_text("x" * 31 + "\n")
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(PermissionError) as info:
            model_key(local)
        assert str(info.value) == (
            f"model key file {path} has mode {mode:o}: others may read or change it. "
            f"`chmod 600 {path}` (or set FLEETCAST_MODEL_KEY)"
        )
    path.chmod(0o600)
    with pytest.raises(ValueError) as too_short:
        model_key(local)
    assert str(too_short.value) == (
        f"model key file {path} is too short: delete it to generate a new one"
    )
    path.write_text("  " + "x" * 32 + "\n")  # 32 characters once stripped: enough
    assert model_key(local) == b"x" * 32
    assert model_key(replace(local, model_key="")) == b"x" * 32  # an empty key means none


def test_a_failed_candidate_stored_first_hides_no_model_after_it(
    con: duckdb.DuckDBPyConnection,
) -> None:
    t = training()
    t.candidates = {
        "prophet": cand("prophet", None, float("inf")),  # failed without an error text
        "global_gbm": cand("global_gbm", None, 0.6),
        **{k: v for k, v in t.candidates.items() if k.startswith("snaive")},
    }
    ids = store_training(con, SERIES, t, train_run="run-1", trained_at=AT, mac_key=KEY)
    stored = rows(con)
    assert json.loads(stored[("prophet", 1)]["model_json"]) == {
        "kind": "prophet",
        "failed": "no model",
    }
    assert stored[("prophet", 1)]["note"] is None  # no error text: no note either
    cs = champion_sets(con, mac_key=KEY)[SERIES]
    assert list(cs.models) == ["snaive24", "snaive168"]
    assert cs.model_ids == {k: ids[k] for k in ("snaive24", "snaive168")}
