-- ingest_sessions_upsert: upsert sessions on session_id from the registered sessions_stage.
insert into sessions (
    session_id, game_type, region, server_config, started_at, stopped_at,
    peak_players, actions_per_minute, movement, batch_id
)
select session_id, game_type, region, server_config, started_at, stopped_at,
       peak_players, actions_per_minute, movement, $batch_id
from sessions_stage
on conflict (session_id) do update set
    game_type = excluded.game_type,
    region = excluded.region,
    server_config = excluded.server_config,
    started_at = excluded.started_at,
    stopped_at = excluded.stopped_at,
    peak_players = excluded.peak_players,
    actions_per_minute = excluded.actions_per_minute,
    movement = excluded.movement,
    batch_id = excluded.batch_id
