-- series_events: the events that apply to one series (null game_type / region = all) and touch
-- [$since, $until], with when each became known: its announced time, else $notice_hours before
-- its start but not before fleetcast first stored the row (docs/operations.md "Events"). The
-- decision path (live and replayed) uses an event only from that time on.
select kind, name, starts_at, ends_at, multiplier,
       coalesce(announced_at,
                greatest(starts_at - to_hours(cast($notice_hours as bigint)),
                         coalesce(first_seen_at, starts_at - to_hours(cast($notice_hours as bigint)))))
           as known_at
from events
where (game_type is null or game_type = $game_type)
  and (region is null or region = $region)
  and ends_at >= $since
  and starts_at <= $until
order by starts_at, kind, name;
