-- plan_series: the hourly series of many keys at once, one query for a whole plan. Each key
-- ($game_types[i], $regions[i], $metrics[i], $since[i]) gets its rows with ts in
-- [$since[i], $until], oldest first: per key what the replay reads of its one series.
with keys as (
    select distinct
        unnest($game_types) as game_type,
        unnest($regions) as region,
        unnest($metrics) as metric,
        unnest($since) as since
)
select k.game_type, k.region, k.metric, k.since, m.ts, m.value
from keys k
join metrics m
  on m.game_type = k.game_type
 and m.region = k.region
 and m.metric = k.metric
 and m.ts >= k.since
 and m.ts <= $until
order by k.game_type, k.region, k.metric, k.since, m.ts;
