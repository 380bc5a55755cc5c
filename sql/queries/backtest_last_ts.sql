-- backtest_last_ts: the newest hour of one series (the default end of a backtest).
select max(ts) as ts
from metrics
where game_type = $game_type and region = $region and metric = $metric;
