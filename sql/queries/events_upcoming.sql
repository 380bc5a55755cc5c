-- events_upcoming: the events in progress at $now or starting before $until (fleetcast events),
-- soonest first; those of one game type ($game_type null = all; a row whose game_type is null
-- applies to every game type). game_type / region null = all: matched to fleets in Python.
select name, kind, game_type, region, starts_at, ends_at, multiplier
from events
where ends_at > $now
  and starts_at < $until
  and ends_at > starts_at
  and ($game_type is null or game_type is null or game_type = $game_type)
order by starts_at, kind, name;
