"""A run's tags say which game type it worked on.

The ingest and backfill deployments serve every game type (tagged ``game:all``); a run started
for one game type is re-tagged ``game:<type>`` so the Prefect UI's tag filter finds it beside
that game type's other runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect import task
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from fleetcast.stages.orchestration import is_transient

GAME_TAG = "game:"


def game_tags(tags: Iterable[str], game_type: str | None) -> list[str]:
    """``tags`` with the ``game:`` tag naming ``game_type`` (unchanged for every game type)."""
    tags = list(tags)
    if game_type is None:
        return tags
    return [t for t in tags if not t.startswith(GAME_TAG)] + [f"{GAME_TAG}{game_type}"]


@task(name="tag-game-type", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=is_transient)
def tag_game_type(game_type: str | None) -> list[str]:
    """Re-tag the flow run this task runs in for ``game_type``; returns its tags."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return []
    tags = game_tags(ctx.flow_run.tags, game_type)
    if tags != list(ctx.flow_run.tags):
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, tags=tags)
    return tags
