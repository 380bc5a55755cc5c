-- budget_upsert: insert or replace one named budget (fleetcast budget set); created_at is kept.
insert into budgets (
    name, scope, region, game_types, max_instances, max_cost_per_hour, reason, created_at,
    updated_at
) values (
    $name, $scope, $region, $game_types, $max_instances, $max_cost_per_hour, $reason, $now, $now
)
on conflict (name) do update set
    scope = excluded.scope,
    region = excluded.region,
    game_types = excluded.game_types,
    max_instances = excluded.max_instances,
    max_cost_per_hour = excluded.max_cost_per_hour,
    reason = excluded.reason,
    updated_at = excluded.updated_at;
