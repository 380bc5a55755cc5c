-- model_next_version: the highest version stored per kind for one series.
select kind, coalesce(max(version), 0) as version
from models
where game_type = $game_type and region = $region and metric = $metric
group by kind;
