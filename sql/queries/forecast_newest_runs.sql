-- forecast_newest_runs: per series (optionally one game type) its newest stored forecast run:
-- when it was made, its last hour and the model that made it (the hourly cycle's refresh rule,
-- models/refresh.py).
with newest as (
    select game_type, region, metric, arg_max(run_id, created_at) as run_id
    from forecasts
    where cast($game_type as varchar) is null or game_type = $game_type
    group by game_type, region, metric
)
select f.game_type, f.region, f.metric, max(f.created_at) as created_at, max(f.ts) as last_ts,
       any_value(f.model_id) as model_id
from forecasts f
join newest n using (game_type, region, metric, run_id)
group by f.game_type, f.region, f.metric;
