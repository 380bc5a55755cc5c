-- forecast_series_history: hourly history (mean of the hour) of every series matching the optional
-- filters ($game_type, $region, $metric null = all), at most $max_days before each series' own last
-- observation (old timestamps such as 1970 are fine: the window is relative to the series).
with hourly as (
    select game_type, region, metric, date_trunc('hour', ts) as ts, avg(value) as value
    from metrics
    where (cast($game_type as varchar) is null or game_type = $game_type)
      and (cast($region as varchar) is null or region = $region)
      and (cast($metric as varchar) is null or metric = $metric)
      and isfinite(value)
    group by all
),
bounded as (
    select *, max(ts) over (partition by game_type, region, metric) as last_ts
    from hourly
)
select game_type, region, metric, ts, value
from bounded
where ts > last_ts - to_days(cast($max_days as integer))
order by game_type, region, metric, ts;
