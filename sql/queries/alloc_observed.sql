-- alloc_observed: the latest observed value per metric for one game type and region,
-- no older than $since and not after $now.
select metric, arg_max(value, ts) as value, max(ts) as ts
from metrics
where game_type = $game_type and region = $region
  and ts <= $now and ts >= $since
group by metric;
