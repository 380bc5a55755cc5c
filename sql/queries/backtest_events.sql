-- backtest_events: events that apply to a game type and region (null game_type / region =
-- all) and overlap [$since, $until]; the replay learns an uplift per kind from past ones.
select kind, starts_at, ends_at
from events
where (game_type is null or game_type = $game_type)
  and (region is null or region = $region)
  and ends_at >= $since
  and starts_at <= $until
order by starts_at, kind;
