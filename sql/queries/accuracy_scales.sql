-- accuracy_scales: the MASE denominator per (series, forecast run): the mean absolute change
-- from the same hour one day earlier, over the 14 days before the run's first forecast hour.
with runs as (
    select game_type, region, metric, run_id, min(ts) as first_ts
    from forecasts
    group by all
),
hourly as (
    select game_type, region, metric, date_trunc('hour', ts) as ts, avg(value) as value
    from metrics
    group by all
)
select r.game_type, r.region, r.metric, r.run_id, avg(abs(a.value - b.value)) as scale
from runs r
join hourly a
  on a.game_type = r.game_type and a.region = r.region and a.metric = r.metric
 and a.ts < r.first_ts and a.ts >= r.first_ts - interval 14 day
join hourly b
  on b.game_type = a.game_type and b.region = a.region and b.metric = a.metric
 and b.ts = a.ts - interval 24 hour
group by all;
