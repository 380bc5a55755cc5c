-- override_list: overrides in force at $now (not cleared, not expired), or all when $all is true;
-- optionally for one fleet ($fleet null = all fleets).
select override_id, fleet, kind, value, reason, created_at, expires_at, cleared_at
from overrides
where ($fleet is null or fleet = $fleet)
  and ($all or (cleared_at is null and created_at <= $now and expires_at > $now))
order by fleet, created_at;
