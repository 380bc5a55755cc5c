-- alloc_latest_forecast: the newest forecast run of one series created at or before $now,
-- its points from $since on. `select *` so an optional yhat_q90 column comes along when present.
with latest as (
    select run_id, max(created_at) as created_at
    from forecasts
    where game_type = $game_type and region = $region and metric = $metric
      and created_at <= $now
    group by run_id
    order by created_at desc, run_id desc
    limit 1
)
select f.*
from forecasts f
join latest l using (run_id)
where f.game_type = $game_type and f.region = $region and f.metric = $metric
  and f.ts >= $since
order by f.ts;
