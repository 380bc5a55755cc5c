-- accuracy_actuals: hourly actuals (mean of the hour) at the hours stored forecasts cover.
with hours as (
    select distinct game_type, region, metric, ts from forecasts
)
select m.game_type, m.region, m.metric, date_trunc('hour', m.ts) as ts, avg(m.value) as value
from metrics m
join hours h
  on m.game_type = h.game_type and m.region = h.region and m.metric = h.metric
 and date_trunc('hour', m.ts) = h.ts
group by all;
