-- override_clear: end a fleet's overrides in force now (or one of them, $override_id not null).
update overrides
set cleared_at = $now
where fleet = $fleet
  and cleared_at is null
  and expires_at > $now
  and ($override_id is null or override_id = $override_id)
returning override_id;
