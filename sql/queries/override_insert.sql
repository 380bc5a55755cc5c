-- override_insert: a human override for one fleet, with its reason and expiry.
insert into overrides (override_id, fleet, kind, value, reason, created_at, expires_at)
values ($override_id, $fleet, $kind, $value, $reason, $created_at, $expires_at);
