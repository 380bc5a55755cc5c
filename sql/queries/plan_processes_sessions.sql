-- plan_processes_sessions: the sessions processes per instance are learned from, for every (game type, server configuration,
-- region) of the plan at once ($game_types[i], $server_configs[i], $regions[i]): sessions that
-- ran during ($since, $now].
with keys as (
    select distinct unnest($game_types) as game_type, unnest($server_configs) as server_config,
           unnest($regions) as region
)
select s.game_type, s.server_config, s.region, s.started_at, s.stopped_at
from sessions s
join keys k
  on s.game_type = k.game_type and s.server_config = k.server_config and s.region = k.region
where s.started_at <= $now
  and (s.stopped_at is null or s.stopped_at > $since)
order by s.game_type, s.server_config, s.region, s.started_at;
