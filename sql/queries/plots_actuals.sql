-- plots_actuals: one series' observed values since $since, oldest first (the run's plots).
select ts, value
from metrics
where game_type = $game_type and region = $region and metric = $metric and ts >= $since
order by ts;
