-- forecast_events: every event (past and scheduled); game_type/region null = all. Small table,
-- matched to series in Python.
select kind, game_type, region, starts_at, ends_at, name
from events
where ends_at > starts_at
order by starts_at;
