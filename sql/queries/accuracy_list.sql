-- accuracy_list: realised accuracy per series and model, newest forecast run first.
select game_type, region, metric, model, run_id, n, mase, backtest_mase, smape, coverage,
       coverage_q90, retrain, reason, first_ts, last_ts, scored_at
from accuracy
where (cast($game_type as varchar) is null or game_type = $game_type)
order by game_type, region, metric, last_ts desc;
