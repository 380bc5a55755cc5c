-- approval_rule_upsert: set one fleet's approval rule (fleetcast approval set, fleets import).
insert into approval_rules (
    fleet, max_change_pct, max_change_instances, scale_in_floor, expiry_minutes, updated_at
) values (
    $fleet, $max_change_pct, $max_change_instances, $scale_in_floor, $expiry_minutes, $updated_at
)
on conflict (fleet) do update set
    max_change_pct = excluded.max_change_pct,
    max_change_instances = excluded.max_change_instances,
    scale_in_floor = excluded.scale_in_floor,
    expiry_minutes = excluded.expiry_minutes,
    updated_at = excluded.updated_at;
