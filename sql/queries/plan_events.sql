-- plan_events: every event touching [$since, $until] with when it became known (its announced time, else $notice_hours before its start but not before
-- fleetcast first stored the row), and the game type / region it applies to (null = all).
-- One query for a whole plan; each fleet keeps those that apply to it and its own window.
select game_type, region, kind, name, starts_at, ends_at, multiplier,
       coalesce(announced_at,
                greatest(starts_at - to_hours(cast($notice_hours as bigint)),
                         coalesce(first_seen_at, starts_at - to_hours(cast($notice_hours as bigint)))))
           as known_at
from events
where ends_at >= $since
  and starts_at <= $until
order by starts_at, kind, name;
