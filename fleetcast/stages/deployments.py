"""Deployments per game type, from the fleets table (``fleetcast deployments sync``).

``prefect.yaml`` holds the shared deployments (``ingest``, ``backfill``) and, under
``definitions.per_game_type``, one template per stage whose name, tags and parameters contain
``{game_type}``. :func:`expand` makes one deployment per game type present in the fleets table
from each template, staggering the template's cron schedule by ``stagger_minutes`` per game
type (in alphabetical order), with every schedule paused unless asked. :func:`sync` deploys the
result with ``prefect deploy``, keeps schedules an operator switched on, pauses the deployments
of game types that are gone, and offers the game types as a choice in the run form.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.names import check_name

GAME_PLACEHOLDER = "{game_type}"


class DeploymentConfigError(ValueError):
    """prefect.yaml lacks what sync needs; the message names the key."""


@dataclass
class SyncResult:
    deployed: list[str]  # "flow/deployment" names created or updated
    active: list[str]  # deployment names whose schedules are on
    paused: list[str] = field(default_factory=list)  # deployments of game types that are gone
    still_paused: list[str] = field(default_factory=list)  # synced, but paused on the server
    output: str = ""


def load_config(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict) or not isinstance(config.get("definitions"), dict):
        raise DeploymentConfigError(f"{path}: no 'definitions' mapping")
    if not config["definitions"].get("per_game_type"):
        raise DeploymentConfigError(f"{path}: no 'definitions.per_game_type' templates")
    return config


def _stagger(cron: str, minutes: int) -> str:
    """``cron`` moved ``minutes`` later: an hourly ``M * * * *`` or a daily ``M H * * *``."""
    minute, hour, *rest = cron.split()
    if hour == "*":
        return " ".join([str((int(minute) + minutes) % 60), "*", *rest])
    total = int(hour) * 60 + int(minute) + minutes
    return " ".join([str(total % 60), str(total // 60 % 24), *rest])


def _fill(value: Any, game_type: str) -> Any:
    if isinstance(value, str):
        return value.replace(GAME_PLACEHOLDER, game_type)
    if isinstance(value, list):
        return [_fill(v, game_type) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, game_type) for k, v in value.items()}
    return value


def expand(
    config: dict[str, Any],
    game_types: list[str],
    *,
    activate: bool = False,
    keep_active: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A complete prefect.yaml: the shared deployments plus one per template and game type.

    Schedules are paused (``active: false``) unless ``activate`` or the deployment's name is in
    ``keep_active``; a template schedule with ``active: false`` (the pipeline's) stays off.
    """
    for g in game_types:
        check_name("game type", g)
    out = copy.deepcopy({k: v for k, v in config.items() if k != "definitions"})
    shared = out.get("deployments") or []
    deployments = []
    for dep in shared:
        dep = copy.deepcopy(dep)
        on = activate or dep["name"] in keep_active
        dep["schedules"] = [{**s, "active": bool(s.get("active", True)) and on}
                            for s in dep.get("schedules") or []]  # fmt: skip
        deployments.append(dep)
    for template in config["definitions"]["per_game_type"]:
        for i, game in enumerate(sorted(set(game_types))):
            dep = _fill(copy.deepcopy(template), game)
            step = int(dep.pop("stagger_minutes", 0)) * i
            on = activate or dep["name"] in keep_active
            schedules = []
            for s in dep.get("schedules") or []:
                s = dict(s)
                if "cron" in s:
                    s["cron"] = _stagger(s["cron"], step)
                s["active"] = bool(s.get("active", True)) and on
                schedules.append(s)
            dep["schedules"] = schedules
            deployments.append(dep)
    out["deployments"] = deployments
    return out


def game_types_in_fleets(db_path: Path) -> list[str]:
    from fleetcast.resources import db

    if not db_path.exists():
        return []
    with db.session(db_path, read_only=True) as con:
        rows = con.sql("select distinct game_type from fleets order by game_type").fetchall()
    return [r[0] for r in rows]


def _game_tag(tags: list[str]) -> str | None:
    return next((t.removeprefix("game:") for t in tags if t.startswith("game:")), None)


def _server_deployments() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with get_client(sync_client=True) as client:
        return list(
            client.read_deployments(
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["fleetcast"]))
            )
        )


def offer_choices(schema: dict[str, Any], game_types: list[str]) -> dict[str, Any]:
    """``schema`` (a deployment's parameter schema) with every ``game_type`` property offered
    as a choice of ``game_types`` (empty still means every game type where it is optional)."""
    schema = copy.deepcopy(schema)
    for definition in (schema.get("definitions") or {}).values():
        prop = (definition.get("properties") or {}).get("game_type")
        if prop is not None and game_types:
            prop.pop("pattern", None)
            prop.pop("examples", None)
            prop["enum"] = sorted(game_types)
    return schema


def sync(
    prefect_yaml: Path,
    game_types: list[str],
    work_dir: Path,
    *,
    activate: bool = False,
) -> SyncResult:
    """Create or update the deployments on the Prefect server of ``$PREFECT_API_URL``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    config = load_config(prefect_yaml)
    existing = _server_deployments()
    keep_active = frozenset(d.name for d in existing if any(s.active for s in (d.schedules or [])))
    full = expand(config, game_types, activate=activate, keep_active=keep_active)
    work_dir.mkdir(parents=True, exist_ok=True)
    generated = work_dir / "prefect.generated.yaml"
    generated.write_text(
        "# generated by `fleetcast deployments sync` from prefect.yaml: do not edit\n"
        + yaml.safe_dump(full, sort_keys=False)
    )
    prefect = Path(sys.executable).with_name("prefect")
    done = subprocess.run(
        [str(prefect) if prefect.exists() else "prefect", "--no-prompt", "deploy", "--all",
         "--prefect-file", str(generated)],
        cwd=prefect_yaml.parent, capture_output=True, text=True, env=os.environ.copy(),
    )  # fmt: skip
    if done.returncode != 0:
        text = done.stdout + done.stderr
        if "which does not exist" in text and "work pool" in text:
            raise RuntimeError(
                "prefect deploy failed: the work pool does not exist; create it first: "
                "prefect work-pool create fleetcast --type process"
            )
        tail = text.strip().splitlines()[-15:]
        raise RuntimeError("prefect deploy failed:\n" + "\n".join(tail))
    names = {d["name"] for d in full["deployments"]}
    active = sorted(
        d["name"] for d in full["deployments"] if any(s["active"] for s in d["schedules"])
    )
    result = SyncResult(deployed=sorted(names), active=active, output=done.stdout)
    with get_client(sync_client=True) as client:
        for dep in _server_deployments():
            game = _game_tag(list(dep.tags or []))
            if dep.name in names:
                client.update_deployment(
                    dep.id,
                    DeploymentUpdate(
                        parameter_openapi_schema=offer_choices(
                            dict(dep.parameter_openapi_schema or {}), game_types
                        )
                    ),
                )
                if dep.paused:
                    result.still_paused.append(dep.name)  # an operator's pause is kept
            elif game not in (None, "all") and game not in game_types and not dep.paused:
                client.pause_deployment(dep.id)
                result.paused.append(dep.name)
    return result
