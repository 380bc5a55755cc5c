-- accuracy_retrain_series: series whose newest scored forecast run is flagged for retraining and
-- that have not been trained since it was scored.
with newest as (
    select game_type, region, metric, arg_max(retrain, last_ts) as retrain,
           arg_max(reason, last_ts) as reason, max(scored_at) as scored_at
    from accuracy
    group by all
),
trained as (
    select game_type, region, metric, max(trained_at) as trained_at
    from models
    group by all
)
select n.game_type, n.region, n.metric, n.reason
from newest n
left join trained t using (game_type, region, metric)
where n.retrain and (t.trained_at is null or t.trained_at < n.scored_at)
order by all;
