-- fleet_list: every fleet, or those of one game type ($game_type null = all), by priority.
select *
from fleets
where $game_type is null or game_type = $game_type
order by priority, fleet;
