-- plots_events: the events that apply to one series (game_type / region null = all) and
-- overlap [$since, $until], oldest first: shaded on its capacity-vs-demand plot.
select kind, name, starts_at, ends_at
from events
where (game_type is null or game_type = $game_type)
  and (region is null or region = $region)
  and ends_at > $since
  and starts_at < $until
  and ends_at > starts_at
order by starts_at, kind, name;
