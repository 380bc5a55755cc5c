-- forecast_latest: the newest forecast run of every series (optionally one game type), all its hours.
with newest as (
    select game_type, region, metric, arg_max(run_id, created_at) as run_id
    from forecasts
    where (cast($game_type as varchar) is null or game_type = $game_type)
    group by game_type, region, metric
)
select f.game_type, f.region, f.metric, f.ts, f.yhat, f.yhat_lower, f.yhat_upper, f.model,
       f.yhat_q90, f.model_id, f.run_id, f.created_at, f.note
from forecasts f
join newest n using (game_type, region, metric, run_id)
order by f.game_type, f.region, f.metric, f.ts;
