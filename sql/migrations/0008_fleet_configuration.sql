-- 0008_fleet_configuration: fleet configuration that reaches reality (issue 16): budgets as data.
-- One row per named budget. Scope: every fleet ('all'), one region ('region', in `region`) or a
-- list of game types ('game_types', comma-separated in `game_types`). Limit: instances
-- (`max_instances`) and/or cost per hour (`max_cost_per_hour`, priced with each fleet's
-- `cost_per_hour`). Forecast-only fleets never count. `fleetcast budget set|list|clear`.
create table if not exists budgets (
    name              varchar   primary key,
    scope             varchar   not null,  -- all | region | game_types
    region            varchar,
    game_types        varchar,
    max_instances     integer,
    max_cost_per_hour double,
    reason            varchar   not null,
    created_at        timestamp not null,
    updated_at        timestamp not null,
    check (scope in ('all', 'region', 'game_types')),
    check (max_instances is not null or max_cost_per_hour is not null),
    check (max_instances is null or max_instances >= 0),
    check (max_cost_per_hour is null or max_cost_per_hour >= 0)
);
