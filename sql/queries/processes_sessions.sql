-- processes_sessions: sessions of one game type and server configuration in the given regions
-- that ran during the window ($since, $now] (active sessions where the sessions metric is
-- missing).
select region, started_at, stopped_at
from sessions
where game_type = $game_type
  and server_config = $server_config
  and list_contains($regions, region)
  and started_at <= $now
  and (stopped_at is null or stopped_at > $since);
