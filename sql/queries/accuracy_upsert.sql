-- accuracy_upsert: the realised accuracy in the registered frame `new_accuracy`, replacing
-- earlier scores of the same (run, series) as more actuals arrive.
insert or replace into accuracy (
    run_id, game_type, region, metric, model, model_id, n, mase, smape, coverage, coverage_q90,
    backtest_mase, retrain, reason, first_ts, last_ts, scored_at
)
select run_id, game_type, region, metric, model, model_id, n, mase, smape, coverage,
       coverage_q90, backtest_mase, retrain, reason, first_ts, last_ts, scored_at
from new_accuracy;
