-- demo_latest_forecast: one series' newest forecast run.
select ts, yhat, yhat_lower, yhat_upper
from forecasts
where game_type = $game_type and region = $region and metric = $metric
  and run_id = (
      select arg_max(run_id, created_at) from forecasts
      where game_type = $game_type and region = $region and metric = $metric
  )
order by ts;
