-- demo_actuals: one series' observed values, oldest first.
select ts, value
from metrics
where game_type = $game_type and region = $region and metric = $metric
order by ts;
