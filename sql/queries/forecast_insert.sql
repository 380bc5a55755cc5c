-- forecast_insert: append the rows of the registered frame `new_forecasts` (one forecast run).
insert into forecasts (
    run_id, game_type, region, metric, ts, yhat, yhat_lower, yhat_upper, model, model_id,
    created_at, yhat_q90, note
)
select run_id, game_type, region, metric, ts, yhat, yhat_lower, yhat_upper, model, model_id,
       created_at, yhat_q90, note
from new_forecasts;
