"""The model registry (``models`` table): store a series' trained candidates as JSON with their
sha256, keep a few versions, find a series' champion and its fallbacks, and load a model only
after its hash checks out (R15: a tampered model is refused; no pickle anywhere).

Panel models (one model trained across every series of a metric, e.g. the global LightGBM) are
stored once in ``panel_models`` (JSON text with LightGBM's ``model_to_string()`` inside, and its
sha256); each series of the panel keeps its own ``models`` row (kind ``global_gbm``, its own CV
score, champion flag and note) whose small JSON is ``{"kind", "panel_id", "panel_sha256"}``.
``load_panel`` checks the panel text against both hashes before anything parses it.

Hashes alone do not authenticate: they sit in the same database as the models, so whoever can
rewrite a model can recompute its hash. Every model and panel model is therefore also stored with
an HMAC-SHA256 of its JSON keyed with a secret kept outside the database (``model_key``:
``FLEETCAST_MODEL_KEY``, else a Prefect Secret block named by ``FLEETCAST_MODEL_KEY_BLOCK``, else
a key file generated on first use under the work dir with mode 0600); a model whose HMAC does
not verify, or that has none, is refused like a hash mismatch."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from models.names import check_name
from models.prophet_model import dumps
from models.selection import SeriesTraining

KEEP_VERSIONS = 3


class ModelIntegrityError(RuntimeError):
    """A stored model whose JSON does not match its recorded sha256 (tampered or corrupted)."""


@dataclass(frozen=True, order=True)
class SeriesKey:
    game_type: str
    region: str
    metric: str

    def __post_init__(self) -> None:
        check_name("game type", self.game_type)
        check_name("region", self.region)
        check_name("metric", self.metric)

    def label(self) -> str:
        return f"{self.game_type}/{self.region}/{self.metric}"

    def params(self) -> dict[str, str]:
        return {"game_type": self.game_type, "region": self.region, "metric": self.metric}


@dataclass
class ChampionSet:
    """What forecasting a series needs: the chain (champion first) and the loaded models."""

    key: SeriesKey
    chain: list[str]
    models: dict[str, dict[str, Any]]
    model_ids: dict[str, str]
    refused: dict[str, str] = field(default_factory=dict)


def model_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ModelKeyError(RuntimeError):
    """The configured source of the model key (a Prefect Secret block) gave no usable key."""


MIN_KEY_CHARS = 32  # a generated key file holds 64 hex characters


def model_key(settings: Settings) -> bytes:
    """The registry's HMAC key, from the first of these that is set, in this order:

    1. ``settings.model_key`` (``FLEETCAST_MODEL_KEY``), the secret itself;
    2. ``settings.model_key_block`` (``FLEETCAST_MODEL_KEY_BLOCK``), the name of a Prefect
       ``Secret`` block holding it, loaded from the Prefect API (``Secret.load(name).get()``);
       a block that cannot be loaded, or holds no string of at least ``MIN_KEY_CHARS``
       characters, raises ``ModelKeyError`` naming it (never a fallback to a generated key:
       models signed with that would be refused on every other worker);
    3. the key file ``settings.model_key_path``, generated on first use (32 random bytes, hex,
       mode 0600). A key file that others may read or write is refused."""
    if settings.model_key:
        return settings.model_key.encode("utf-8")
    if settings.model_key_block:
        return _block_key(settings.model_key_block)
    path = settings.model_key_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"model key file {path} has mode {mode:o}: others may read or change it. "
            f"`chmod 600 {path}` (or set FLEETCAST_MODEL_KEY)"
        )
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"model key file {path} is too short: delete it to generate a new one")
    return key.encode("utf-8")


def _block_key(block: str) -> bytes:
    """The model key held by the Prefect ``Secret`` block ``block``."""
    from prefect.blocks.system import Secret

    try:
        # _sync: the blocking call even when the caller runs in an event loop (a flow's thread)
        secret: Any = Secret.load(block, _sync=True)  # type: ignore[call-arg]
        value = secret.get()
    except Exception as exc:
        raise ModelKeyError(
            f"model key block {block!r} (FLEETCAST_MODEL_KEY_BLOCK) could not be loaded from "
            f"the Prefect API ({type(exc).__name__}: {exc}); create it with "
            f"`Secret(value=...).save({block!r})` or in the UI (Blocks -> Secret), check "
            "PREFECT_API_URL, or unset FLEETCAST_MODEL_KEY_BLOCK"
        ) from exc
    if not isinstance(value, str) or len(value.strip()) < MIN_KEY_CHARS:
        what = f"a {type(value).__name__}" if not isinstance(value, str) else "a short string"
        raise ModelKeyError(
            f"model key block {block!r} (FLEETCAST_MODEL_KEY_BLOCK) holds {what}, not a key of "
            f"at least {MIN_KEY_CHARS} characters: store e.g. `python -c 'import secrets; "
            "print(secrets.token_hex(32))'` in it"
        )
    return value.strip().encode("utf-8")


def model_mac(key: bytes, text: str) -> str:
    """The HMAC-SHA256 (hex) of a model's stored text."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def check_mac(key: bytes, text: str, mac: str | None, what: str) -> None:
    """Raise ``ModelIntegrityError`` unless ``mac`` is the HMAC of ``text`` under ``key``."""
    if not mac:
        raise ModelIntegrityError(
            f"{what} refused: it carries no HMAC (stored before models were authenticated, or "
            "its HMAC was removed). Retrain the series (`fleetcast train`) to replace it"
        )
    if not hmac.compare_digest(model_mac(key, text), mac):
        raise ModelIntegrityError(
            f"{what} refused: its HMAC does not verify with this installation's model key; it "
            "was changed after training (or trained with another key). Retrain the series "
            "(`fleetcast train`) to replace it"
        )


def load_model(
    model_json: str,
    sha256: str,
    model_id: str = "?",
    *,
    key: bytes | None = None,
    mac: str | None = None,
) -> dict[str, Any]:
    """Parse a stored model only if its text hashes to the recorded sha256 and, with ``key``,
    only if ``mac`` is its HMAC under that key (the registry always passes one)."""
    actual = model_hash(model_json)
    if actual != sha256:
        raise ModelIntegrityError(
            f"model {model_id} refused: sha256 of its JSON is {actual[:12]}..., the registry "
            f"recorded {sha256[:12]}...; it was changed after training. Retrain the series "
            "(`fleetcast train`) to replace it"
        )
    if key is not None:
        check_mac(key, model_json, mac, f"model {model_id}")
    return json.loads(model_json)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def store_training(
    con: duckdb.DuckDBPyConnection,
    key: SeriesKey,
    training: SeriesTraining,
    *,
    train_run: str,
    trained_at: datetime,
    mac_key: bytes,
    keep: int = KEEP_VERSIONS,
) -> dict[str, str]:
    """Insert one row per candidate (a failed one is stored as a record without a model), make the
    new champion the series' only champion and prune old versions. Call inside a transaction.
    Returns kind -> model_id."""
    versions = dict(con.sql(db.sql("model_next_version"), params=key.params()).fetchall())
    con.execute(db.sql("model_clear_champion"), key.params()).fetchall()
    ids: dict[str, str] = {}
    for name, cand in training.candidates.items():
        if cand.model is None and not math.isfinite(cand.cv_mase):
            body: dict[str, Any] = {"kind": name, "failed": cand.error or "no model"}
        elif cand.model is None:
            body = {"kind": name, "external": True}  # scored elsewhere (a panel model)
        else:
            body = cand.model
        text = dumps(body)
        model_id = uuid.uuid4().hex
        note = None
        if cand.error:
            note = f"failed: {cand.error}"[:500]
        elif name == training.champion and training.notes:
            note = "; ".join(training.notes)[:500]
        params = {
            "chain": training.chain,
            "cv_origins": cand.origins,
            "usable": name in training.chain,
        }
        con.execute(
            db.sql("model_insert"),
            {
                **key.params(),
                "model_id": model_id,
                "kind": name,
                "trained_at": trained_at,
                "train_start": training.train_start.to_pydatetime(),
                "train_end": training.train_end.to_pydatetime(),
                "n_obs": training.n_obs,
                "params": json.dumps(params),
                "model_json": text,
                "sha256": model_hash(text),
                "score": _finite(cand.cv_mase),
                "is_champion": name == training.champion,
                "note": note,
                "version": int(versions.get(name, 0)) + 1,
                "train_run": train_run,
                "cv_smape": _finite(cand.cv_smape),
                "cv_coverage": _finite(cand.cv_coverage),
                "cv_coverage_q90": _finite(cand.cv_coverage_q90),
                "hmac": model_mac(mac_key, text),
            },
        ).fetchall()
        ids[name] = model_id
    con.execute(db.sql("model_prune"), {**key.params(), "keep": keep}).fetchall()
    return ids


def champion_sets(
    con: duckdb.DuckDBPyConnection,
    game_type: str | None = None,
    metric: str | None = None,
    *,
    mac_key: bytes,
) -> dict[SeriesKey, ChampionSet]:
    """Every series with a champion: its chain and its training run's models, each loaded only
    after its hash and its HMAC under ``mac_key`` are checked (a refused one is listed in
    ``refused`` with the reason and skipped)."""
    rows = con.sql(
        db.sql("model_champion_runs"), params={"game_type": game_type, "metric": metric}
    ).fetchall()
    out: dict[SeriesKey, ChampionSet] = {}
    for game, region, met, _model_id, kind, train_run, params, _end in rows:
        key = SeriesKey(game, region, met)
        chain = list(json.loads(params or "{}").get("chain") or [kind])
        cs = ChampionSet(key, chain, {}, {})
        runs = con.sql(
            db.sql("model_run_models"), params={**key.params(), "train_run": train_run}
        ).fetchall()
        for mid, k, text, sha, _score, _champ, _note, _params, mac in runs:
            try:
                body = load_model(text, sha, mid, key=mac_key, mac=mac)
            except ModelIntegrityError as exc:
                why = "sha256 mismatch" if "sha256" in str(exc) else "HMAC not verified"
                cs.refused[k] = f"{why} (model {mid} changed after training)"
                continue
            if body.get("failed") or body.get("external"):
                continue
            cs.models[k] = body
            cs.model_ids[k] = mid
        out[key] = cs
    return out


def list_models(
    con: duckdb.DuckDBPyConnection,
    game_type: str | None = None,
    metric: str | None = None,
    all_versions: bool = False,
) -> pl.DataFrame:
    return con.sql(
        db.sql("model_list"),
        params={"game_type": game_type, "metric": metric, "all_versions": all_versions},
    ).pl()


def store_panel(
    con: duckdb.DuckDBPyConnection,
    *,
    kind: str,
    metric: str,
    model_json: str,
    n_series: int,
    horizon: int,
    params: dict[str, Any],
    train_run: str,
    trained_at: datetime,
    mac_key: bytes,
    note: str | None = None,
) -> tuple[str, str]:
    """Insert one panel model with its sha256 and its HMAC under ``mac_key``; returns (panel_id,
    sha256). Call inside a transaction."""
    check_name("metric", metric)
    panel_id, sha = uuid.uuid4().hex, model_hash(model_json)
    con.execute(
        db.sql("model_panel_insert"),
        {
            "panel_id": panel_id,
            "kind": kind,
            "metric": metric,
            "trained_at": trained_at,
            "train_run": train_run,
            "n_series": n_series,
            "horizon": horizon,
            "params": json.dumps(params),
            "model_json": model_json,
            "sha256": sha,
            "note": note,
            "hmac": model_mac(mac_key, model_json),
        },
    ).fetchall()
    return panel_id, sha


def prune_panels(con: duckdb.DuckDBPyConnection) -> None:
    """Drop panel models that no series' registry row points at any more."""
    con.execute(db.sql("model_panel_prune")).fetchall()


def load_panel(
    con: duckdb.DuckDBPyConnection, panel_id: str, expected_sha256: str, *, mac_key: bytes
) -> str:
    """The JSON text of a panel model, only if it hashes to the sha256 recorded with it and to
    the one the series' row expects, and its HMAC verifies under ``mac_key`` (raises
    ``ModelIntegrityError`` otherwise)."""
    rows = con.sql(db.sql("model_panel_get"), params={"panel_id": panel_id}).fetchall()
    if not rows:
        raise ModelIntegrityError(
            f"panel model {panel_id} is missing from the registry: retrain (`fleetcast train`)"
        )
    _pid, _kind, _metric, _horizon, text, sha, mac = rows[0]
    if sha != expected_sha256:
        raise ModelIntegrityError(
            f"panel model {panel_id} refused: its recorded sha256 {sha[:12]}... differs from "
            f"the {expected_sha256[:12]}... the series was trained with; retrain the series"
        )
    actual = model_hash(text)
    if actual != sha:
        raise ModelIntegrityError(
            f"panel model {panel_id} refused: sha256 of its JSON is {actual[:12]}..., the "
            f"registry recorded {sha[:12]}...; it was changed after training. Retrain "
            "(`fleetcast train`) to replace it"
        )
    check_mac(mac_key, str(text), mac, f"panel model {panel_id}")
    return str(text)
