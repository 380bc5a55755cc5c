-- flows_newest_forecast: when the newest forecast of a game type ($game_type null = any) was
-- made. A backfill re-forecasts only when it stored new data or there is no forecast yet.
select max(created_at) as created_at
from forecasts
where cast($game_type as varchar) is null or game_type = $game_type;
