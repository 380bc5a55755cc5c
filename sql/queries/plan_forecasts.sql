-- plan_forecasts: for each series ($game_types[i], $regions[i], $metrics[i]) its newest forecast
-- run created at or before $now (the run whose newest row is newest; ties: the larger run id),
-- its points from $since on: per series the newest forecast run, in one query.
-- `f.*` so an optional yhat_q90 column comes along when present.
with keys as (
    select distinct unnest($game_types) as game_type, unnest($regions) as region,
           unnest($metrics) as metric
),
runs as (
    select f.game_type, f.region, f.metric, f.run_id, max(f.created_at) as run_created_at
    from forecasts f
    join keys k
      on f.game_type = k.game_type and f.region = k.region and f.metric = k.metric
    where f.created_at <= $now
    group by f.game_type, f.region, f.metric, f.run_id
),
latest as (
    select game_type, region, metric, run_id
    from runs
    qualify row_number() over (
        partition by game_type, region, metric order by run_created_at desc, run_id desc
    ) = 1
)
select f.*
from forecasts f
join latest l
  on f.game_type = l.game_type and f.region = l.region and f.metric = l.metric
 and f.run_id = l.run_id
where f.ts >= $since
order by f.game_type, f.region, f.metric, f.ts;
