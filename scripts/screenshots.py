"""Screenshots of the Prefect UI and the report in headless Chromium, at 1440 px wide.

    .venv/bin/python scripts/screenshots.py --out .fleetcast/screenshots [--report PATH]

Takes, from the Prefect server of ``$PREFECT_API_URL`` (its UI at the same host and port): the
deployments page, a forecast-and-scale deployment's run form, the newest pipeline run's page,
the capacity-plan, plots, pipeline-, forecast-and-scale- and backfill-summary, backfill-replay,
backfill-plots and forecast artifacts;
then the report (``fleetcast report`` writes it). Needs Chromium (Debian: ``apt-get install
chromium``); the server must have been started with ``PREFECT_UI_API_URL`` set to its own
address (docs/operations.md).
Prints each PNG written; exits 1 when Chromium is missing or a page could not be taken.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

WIDTH, HEIGHT = 1440, 1100
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
    "--virtual-time-budget=30000",  # let the single-page app load its data
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def shoot(browser: str, url: str, png: Path, height: int = HEIGHT) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    flags = [f if not f.startswith("--window-size") else f"--window-size={WIDTH},{height}"
             for f in FLAGS]  # fmt: skip
    subprocess.run(
        [browser, *flags, f"--screenshot={png}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    if not png.exists() or png.stat().st_size < 2000:
        raise RuntimeError(f"no screenshot of {url}")
    return png


def targets(api: str) -> dict[str, str]:
    """Page name -> URL in the UI, found through the API: the newest fleetcast run and the
    newest artifacts by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

    ui = api.removesuffix("/").removesuffix("/api")
    pages = {"deployments": f"{ui}/deployments"}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["stage:pipeline"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        ) or client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
        if runs:
            pages["run"] = f"{ui}/runs/flow-run/{runs[0].id}"
        deployments = client.read_deployments(limit=200)
        form = [d for d in deployments if d.name.startswith("forecast-and-scale-")]
        if form:  # the custom-run form: game type as a choice, no "Property is type 'None'"
            pages["run-form"] = f"{ui}/deployments/deployment/{form[0].id}/run"
        kinds = ("capacity-plan", "plots", "pipeline-summary", "forecast-and-scale-summary",
                 "backfill-summary", "backfill-replay", "backfill-plots", "forecast")  # fmt: skip
        for kind in kinds:
            # `like_` matches anywhere in the key ("plots-" is in "backfill-plots-"): newest
            # first, then the first whose key starts with the kind
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=f"{kind}-")),
                sort=ArtifactSort.CREATED_DESC,
                limit=50,
            )
            own = [a for a in found if a.key and a.key.startswith(f"{kind}-")]
            if own:  # the artifact's own page shows its content (the key page, a timeline)
                pages[kind] = f"{ui}/artifacts/artifact/{own[0].id}"
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".fleetcast/screenshots"))
    parser.add_argument("--report", type=Path, default=None, help="an HTML report to take too")
    parser.add_argument("--api", default=os.environ.get("PREFECT_API_URL"))
    args = parser.parse_args(argv)
    browser = chromium()
    if browser is None:
        print("chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    pages = targets(args.api) if args.api else {}
    if not args.api:
        print("PREFECT_API_URL not set: only the report", file=sys.stderr)
    failed = 0
    for name, url in pages.items():
        tall = (
            2400 if name in ("plots", "backfill-plots", "run-form") or "summary" in name else HEIGHT
        )
        try:
            print(shoot(browser, url, args.out / f"{name}.png", tall))
        except (RuntimeError, subprocess.SubprocessError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
    if args.report is not None:
        print(shoot(browser, args.report.resolve().as_uri(), args.out / "report.png", 2400))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
