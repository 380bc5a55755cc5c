-- backtest_series: one hourly series (game type, region, metric) between $since and $until,
-- inclusive, oldest first. Hours with no row are missing (the replay fills them with NaN).
select ts, value
from metrics
where game_type = $game_type
  and region = $region
  and metric = $metric
  and ts >= $since
  and ts <= $until
order by ts;
