-- model_champion_runs: the champion of every series (optionally filtered) and its training run;
-- the run's other models are its fallbacks.
select game_type, region, metric, model_id, kind, train_run, params, train_end
from models
where is_champion
  and (cast($game_type as varchar) is null or game_type = $game_type)
  and (cast($metric as varchar) is null or metric = $metric)
order by game_type, region, metric;
