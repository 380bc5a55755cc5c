"""Models in the registry are authenticated (HMAC keyed outside the database), not only hashed:
whoever rewrites a model and its sha256 in the database still cannot make it load."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers_data import store_metrics

from fleetcast.config import SettingError, Settings
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import ModelKeyError, champion_sets, model_key
from fleetcast.stages.serving import forecast_all
from fleetcast.stages.training import train_all

START = datetime(2026, 1, 5)


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def insert(settings: Settings, n_series: int, hours: int = 10 * 24) -> None:
    frames = []
    for i in range(n_series):
        ts = pd.date_range(START, periods=hours, freq="h")
        rng = np.random.default_rng(i)
        y = 500 * (1 + i) * np.exp(0.6 * np.sin(2 * np.pi * ts.hour.to_numpy() / 24))
        y = y * np.exp(rng.normal(0, 0.05, hours))
        frames.append(
            pl.DataFrame({"ts": ts.to_numpy(), "game_type": f"g{i}", "region": "global",
                          "metric": "players", "value": y, "batch_id": "t"})
        )  # fmt: skip
    store_metrics(settings, pl.concat(frames))


def rewrite_with_recomputed_hash(settings: Settings, table: str, where: str) -> None:
    """What an attacker with write access to the database does: change the model and store the
    sha256 of the new text beside it."""
    with db.session(settings.db_path) as con:
        key = "model_id" if table == "models" else "panel_id"
        for ident, text in con.sql(
            f"select {key}, model_json from {table} where {where}"  # noqa: S608 - test literals
        ).fetchall():
            new = text.replace("1", "2")
            assert new != text
            sha = hashlib.sha256(new.encode("utf-8")).hexdigest()
            con.execute(
                f"update {table} set model_json = ?, sha256 = ? where {key} = ?",  # noqa: S608
                [new, sha, ident],  # table and key are this test's literals; values are bound
            ).fetchall()


def test_tampered_model_with_recomputed_hash_is_refused(settings: Settings) -> None:
    insert(settings, 1)
    train_all(settings, candidates=("snaive168", "snaive24"), workers=1)
    with db.session(settings.db_path) as con:
        [(champion,)] = con.sql("select kind from models where is_champion").fetchall()
        assert con.sql("select count(*) from models where hmac is null").fetchall() == [(0,)]
    rewrite_with_recomputed_hash(settings, "models", "is_champion")
    with db.session(settings.db_path) as con:
        (cs,) = champion_sets(con, mac_key=model_key(settings)).values()
    assert champion not in cs.models and "HMAC" in cs.refused[champion]
    frame = forecast_all(settings, 12)  # the next in the chain serves; the note says why
    assert frame["model"][0] != champion and f"{champion} refused" in frame["note"][0]


def test_tampered_panel_model_with_recomputed_hashes_is_refused(settings: Settings) -> None:
    insert(settings, 3, hours=16 * 24)
    small = {"num_rounds": 30, "max_cutoffs": 20, "num_leaves": 15}
    from models import global_gbm

    train_all(settings, candidates=("global_gbm", "snaive24"), workers=1,
              panel_config=global_gbm.GBMConfig(**small))  # fmt: skip
    with db.session(settings.db_path) as con:
        assert con.sql("select count(*) from panel_models").fetchall() == [(1,)]
    rewrite_with_recomputed_hash(settings, "panel_models", "true")
    with db.session(settings.db_path) as con:  # the series' rows now expect the new sha256
        [(sha,)] = con.sql("select sha256 from panel_models").fetchall()
        for mid, text in con.sql(
            "select model_id, model_json from models where kind = 'global_gbm'"
        ).fetchall():
            import json

            body = json.loads(text)
            if "panel_sha256" not in body:
                continue
            body["panel_sha256"] = sha
            new = json.dumps(body, sort_keys=True, separators=(",", ":"))
            con.execute(
                "update models set model_json = ?, sha256 = ? where model_id = ?",
                [new, hashlib.sha256(new.encode()).hexdigest(), mid],
            ).fetchall()
    frame = forecast_all(settings, 12)
    assert "global_gbm" not in set(frame["model"])
    assert all("refused" in n for n in frame["note"].to_list())


def test_model_signed_with_another_key_is_refused(settings: Settings) -> None:
    insert(settings, 1)
    train_all(settings, candidates=("snaive24",), workers=1)
    other = dataclasses.replace(settings, model_key="another installation's secret key " * 2)
    with db.session(settings.db_path) as con:
        (cs,) = champion_sets(con, mac_key=model_key(other)).values()
        (mine,) = champion_sets(con, mac_key=model_key(settings)).values()
    assert "snaive24" in cs.refused and "HMAC" in cs.refused["snaive24"]
    assert "snaive24" in mine.models


def test_local_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "x.duckdb", work_dir=tmp_path / "work")
    path = settings.model_key_path
    assert not path.exists()
    first = model_key(settings)
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and model_key(settings) == first  # kept, not regenerated
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        model_key(settings)


def test_key_from_the_environment_wins_and_is_never_printed(tmp_path: Path) -> None:
    env = {"FLEETCAST_MODEL_KEY": "s3cret-from-a-vault-0123456789abcdef"}
    settings = Settings.from_mapping(env, work_dir=tmp_path / "work")
    assert model_key(settings) == env["FLEETCAST_MODEL_KEY"].encode()
    assert not settings.model_key_path.exists()
    assert "s3cret" not in repr(settings)


# A test value for the local Prefect test harness only.
BLOCK_KEY = "model-key-from-a-prefect-secret-block-0123456789"  # pragma: allowlist secret


@pytest.fixture
def key_block(prefect_harness: None) -> str:
    """A real Prefect Secret block holding the model key, saved to the test harness's API."""
    from prefect.blocks.system import Secret

    name = "fleetcast-test-model-key"
    Secret(value=BLOCK_KEY).save(name, overwrite=True)
    return name


def test_key_from_a_prefect_secret_block_signs_and_verifies(
    settings: Settings, key_block: str
) -> None:
    with_block = dataclasses.replace(settings, model_key_block=key_block)
    assert model_key(with_block) == BLOCK_KEY.encode()
    assert not with_block.model_key_path.exists()  # no key file generated beside the block
    insert(settings, 1)
    train_all(with_block, candidates=("snaive24",), workers=1)
    assert not with_block.model_key_path.exists()
    with db.session(settings.db_path) as con:
        (mine,) = champion_sets(con, mac_key=model_key(with_block)).values()
        other = dataclasses.replace(settings, model_key="another installation's secret key " * 2)
        (theirs,) = champion_sets(con, mac_key=model_key(other)).values()
    assert "snaive24" in mine.models and not mine.refused  # signed with the block's key
    assert "snaive24" in theirs.refused and "HMAC" in theirs.refused["snaive24"]
    frame = forecast_all(with_block, 12)
    assert set(frame["model"]) == {"snaive24"}
    assert not any("refused" in (n or "") for n in frame["note"].to_list())

    # a model signed with another key (here the generated key file) is refused under the block
    key_file_only = dataclasses.replace(settings, db_path=settings.db_path.with_name("b.duckdb"))
    insert(key_file_only, 1)
    train_all(key_file_only, candidates=("snaive24",), workers=1)
    with db.session(key_file_only.db_path) as con:
        (cs,) = champion_sets(con, mac_key=model_key(with_block)).values()
    assert "snaive24" in cs.refused and "HMAC" in cs.refused["snaive24"]


def test_a_key_block_that_cannot_be_loaded_is_a_clear_error(
    settings: Settings, prefect_harness: None
) -> None:
    from prefect.blocks.system import Secret

    missing = dataclasses.replace(settings, model_key_block="no-such-model-key")
    with pytest.raises(ModelKeyError, match="'no-such-model-key'.*FLEETCAST_MODEL_KEY_BLOCK"):
        model_key(missing)
    assert not missing.model_key_path.exists()  # never a silent fallback to a generated key
    Secret(value={"user": "x", "password": "y"}).save("model-key-as-dict", overwrite=True)
    Secret(value="too-short").save("model-key-too-short", overwrite=True)
    for name, what in (("model-key-as-dict", "a dict"), ("model-key-too-short", "a short string")):
        with pytest.raises(ModelKeyError, match=f"'{name}' .*holds {what}"):
            model_key(dataclasses.replace(settings, model_key_block=name))
    assert not settings.model_key_path.exists()


def test_key_sources_in_order_of_precedence(tmp_path: Path) -> None:
    env = {
        "FLEETCAST_MODEL_KEY": "s3cret-from-a-vault-0123456789abcdef",
        "FLEETCAST_MODEL_KEY_BLOCK": "prod-model-key",
    }
    both = Settings.from_mapping(env, work_dir=tmp_path / "work")
    assert both.model_key_block == "prod-model-key"
    # the key itself wins over the block (the block is not even looked up: no Prefect API here)
    assert model_key(both) == env["FLEETCAST_MODEL_KEY"].encode()
    assert Settings.from_mapping({}).model_key_block is None
    with pytest.raises(SettingError, match="FLEETCAST_MODEL_KEY_BLOCK"):
        Settings.from_mapping({"FLEETCAST_MODEL_KEY_BLOCK": "Not A Block!"})
