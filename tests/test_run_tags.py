"""A backfill of one game type is tagged with it, on a real (ephemeral) Prefect backend."""

from __future__ import annotations

from uuid import UUID

import pytest
from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from tasks.run_tags import game_tags, tag_game_type


def test_game_tags_replace_the_game_tag_only() -> None:
    assert game_tags(["fleetcast", "stage:backfill", "game:all"], "casual_puzzle") == [
        "fleetcast", "stage:backfill", "game:casual_puzzle"
    ]  # fmt: skip
    assert game_tags(["fleetcast", "game:all"], None) == ["fleetcast", "game:all"]
    assert game_tags([], "x") == ["game:x"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_is_retagged_with_its_game_type() -> None:
    @flow
    def one_game(game_type: str | None) -> str:
        tag_game_type(game_type)
        ctx = FlowRunContext.get()
        assert ctx is not None and ctx.flow_run is not None
        return str(ctx.flow_run.id)

    with tags("fleetcast", "stage:backfill", "game:all"):
        run_id = one_game("casual_puzzle")
        every = one_game(None)
    with get_client(sync_client=True) as client:
        tagged = set(client.read_flow_run(UUID(run_id)).tags)
        untouched = set(client.read_flow_run(UUID(every)).tags)
    assert "game:casual_puzzle" in tagged and "game:all" not in tagged
    assert {"fleetcast", "stage:backfill"} <= tagged
    assert "game:all" in untouched
