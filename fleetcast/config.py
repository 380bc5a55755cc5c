"""The composition root: everything that differs between environments, built in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("fleetcast.duckdb")
    landing_dir: Path = Path("landing")
    work_dir: Path = Path(".fleetcast")  # reports, GX Data Docs, plots
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # only for a local stand-in such as a moto server
    allowed_groups: tuple[str, ...] = ()  # ASG names fleetcast may touch; empty = fleets table
    allowed_tag: str = "fleetcast:managed"  # a group carrying this tag = "true" is allowed
    future_skew_minutes: int = 15
    freshness_hours: int = 6
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        base = cls(
            db_path=Path(env.get("FLEETCAST_DB", "fleetcast.duckdb")),
            landing_dir=Path(env.get("FLEETCAST_LANDING", "landing")),
            work_dir=Path(env.get("FLEETCAST_WORK_DIR", ".fleetcast")),
            aws_region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
            aws_endpoint_url=env.get("FLEETCAST_AWS_ENDPOINT") or None,
            allowed_groups=tuple(
                g for g in env.get("FLEETCAST_ALLOWED_GROUPS", "").split(",") if g.strip()
            ),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **clean)  # type: ignore[arg-type]

    @property
    def docs_dir(self) -> Path:
        return (self.work_dir / "gx_docs").resolve()

    @property
    def reports_dir(self) -> Path:
        return (self.work_dir / "reports").resolve()
