-- processes_metrics: the telemetry per-process needs are learned from: one game type's resource,
-- players and sessions metrics in the given regions over the window ($since, $now].
select ts, region, metric, value
from metrics
where game_type = $game_type
  and list_contains($regions, region)
  and metric in ('sessions', 'players', 'cpu_cores', 'memory_gb', 'net_in_mbps', 'net_out_mbps')
  and ts > $since and ts <= $now
order by ts, region, metric;
