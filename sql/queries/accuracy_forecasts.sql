-- accuracy_forecasts: every stored forecast hour that has an actual by now.
select f.game_type, f.region, f.metric, f.run_id, f.model, f.model_id, f.ts,
       f.yhat, f.yhat_lower, f.yhat_upper, f.yhat_q90
from forecasts f
where exists (
    select 1 from metrics m
    where m.game_type = f.game_type and m.region = f.region and m.metric = f.metric
      and date_trunc('hour', m.ts) = f.ts
);
