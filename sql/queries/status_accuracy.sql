-- status_accuracy: the newest realised accuracy per series (one game type, or all when
-- $game_type is null), for `fleetcast status` and the run summaries.
select game_type, region, metric, model, n, mase, smape, coverage, retrain, scored_at
from accuracy
where cast($game_type as varchar) is null or game_type = $game_type
qualify row_number() over (
    partition by game_type, region, metric order by scored_at desc, last_ts desc
) = 1
order by game_type, region, metric;
