-- budget_upsert: insert or replace one named budget (fleetcast budget set [--hard]); created_at is
-- kept.
insert into budgets (
    name, scope, region, game_types, max_instances, max_cost_per_hour, reason, hard, created_at,
    updated_at
) values (
    $name, $scope, $region, $game_types, $max_instances, $max_cost_per_hour, $reason, $hard, $now,
    $now
)
on conflict (name) do update set
    scope = excluded.scope,
    region = excluded.region,
    game_types = excluded.game_types,
    max_instances = excluded.max_instances,
    max_cost_per_hour = excluded.max_cost_per_hour,
    reason = excluded.reason,
    hard = excluded.hard,
    updated_at = excluded.updated_at;
