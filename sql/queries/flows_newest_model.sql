-- flows_newest_model: when the newest model of a game type ($game_type null = any) was trained.
-- Decides whether the pipeline's "train if due" step runs.
select max(trained_at) as trained_at
from models
where cast($game_type as varchar) is null or game_type = $game_type;
