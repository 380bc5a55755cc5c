-- plan_processes_metrics: the telemetry processes per instance are learned from, for every
-- (game type, region) of the plan at once
-- ($game_types[i], $regions[i]): the resource, players and sessions metrics over ($since,
-- $now], in time order per game type.
with keys as (
    select distinct unnest($game_types) as game_type, unnest($regions) as region
)
select m.game_type, m.ts, m.region, m.metric, m.value
from metrics m
join keys k on m.game_type = k.game_type and m.region = k.region
where m.metric in ('sessions', 'players', 'cpu_cores', 'memory_gb', 'net_in_mbps', 'net_out_mbps')
  and m.ts > $since and m.ts <= $now
order by m.game_type, m.ts, m.region, m.metric;
