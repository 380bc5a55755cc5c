-- 0001_init: every table fleetcast keeps. Timestamps are UTC, stored naive.

-- Telemetry in long format: one row per (ts, game_type, region, metric).
create table if not exists metrics (
    ts        timestamp not null,
    game_type varchar   not null,
    region    varchar   not null,
    metric    varchar   not null,
    value     double    not null,
    batch_id  varchar   not null,
    primary key (ts, game_type, region, metric)
);

-- One row per game session.
create table if not exists sessions (
    session_id         varchar   primary key,
    game_type          varchar   not null,
    region             varchar   not null,
    server_config      varchar   not null,
    started_at         timestamp not null,
    stopped_at         timestamp,
    peak_players       double,
    actions_per_minute double,
    movement           double,
    batch_id           varchar   not null
);

-- Calendar and special events; game_type/region null = all.
create table if not exists events (
    event_id  varchar   primary key,  -- md5 of the natural key (name, kind, game_type, region, starts_at)
    name      varchar   not null,
    kind      varchar   not null,     -- tournament | game_update | holiday | promotion | other
    game_type varchar,
    region    varchar,
    starts_at timestamp not null,
    ends_at   timestamp not null,
    batch_id  varchar   not null
);

-- A fleet: one Auto Scaling group serving one game type in one region.
create table if not exists fleets (
    fleet                  varchar primary key,
    game_type              varchar not null,
    region                 varchar not null,
    server_config          varchar not null default 'default',
    asg_name               varchar not null,
    demand_metric          varchar not null default 'players',
    capacity_players       double  not null,  -- players one instance serves
    capacity_cpu           double,            -- cores one instance offers
    capacity_memory_gb     double,
    capacity_net_mbps      double,
    processes_per_instance integer not null default 1,
    min_size               integer not null,
    max_size               integer not null,
    priority               integer not null default 100,  -- lower = served first
    session_type           varchar not null default 'casual',
    lead_time_minutes      integer not null default 60,
    safety_margin          double  not null default 0.1,
    mode                   varchar not null default 'forecast_only',  -- forecast_only | scale
    check (min_size >= 0 and max_size >= min_size),
    check (capacity_players > 0)
);

-- Model registry: what was trained on which window; JSON and its sha256.
create table if not exists models (
    model_id    varchar   primary key,
    game_type   varchar   not null,
    region      varchar   not null,
    metric      varchar   not null,
    kind        varchar   not null,     -- prophet | seasonal_naive | ...
    trained_at  timestamp not null,
    train_start timestamp not null,
    train_end   timestamp not null,
    n_obs       integer   not null,
    params      json,
    model_json  varchar   not null,
    sha256      varchar   not null,
    score       double,                 -- backtest score (MASE) where known
    is_champion boolean   not null default false,
    note        varchar
);

create table if not exists forecasts (
    run_id     varchar   not null,
    game_type  varchar   not null,
    region     varchar   not null,
    metric     varchar   not null,
    ts         timestamp not null,
    yhat       double    not null,
    yhat_lower double    not null,
    yhat_upper double    not null,
    model      varchar   not null,
    model_id   varchar,
    created_at timestamp not null,
    primary key (run_id, game_type, region, metric, ts)
);

-- Every capacity decision with its inputs, the target, what was applied and why.
create table if not exists allocations (
    decision_id            varchar   primary key,
    run_id                 varchar   not null,
    decided_at             timestamp not null,
    fleet                  varchar   not null,
    game_type              varchar   not null,
    region                 varchar   not null,
    asg_name               varchar   not null,
    mode                   varchar   not null,   -- forecast_only | scale
    current_desired        integer,
    target_desired         integer   not null,
    applied_desired        integer,              -- null when nothing was sent
    applied                boolean   not null,
    processes_per_instance integer   not null,
    demand_forecast        double,
    inputs                 json      not null,
    reason                 varchar   not null
);

create table if not exists overrides (
    override_id varchar   primary key,
    fleet       varchar   not null,
    kind        varchar   not null,  -- capacity | min | max | multiplier
    value       double    not null,
    reason      varchar   not null,
    created_at  timestamp not null,
    expires_at  timestamp not null,
    cleared_at  timestamp
);

create table if not exists ingest_batches (
    batch_id         varchar   primary key,
    file             varchar   not null,
    checksum         varchar   not null,
    kind             varchar,            -- metrics_long | metrics_wide | sessions | events
    status           varchar   not null, -- loaded | rejected | duplicate
    rows_in          integer   not null,
    rows_stored      integer   not null,
    rows_quarantined integer   not null,
    message          varchar,
    started_at       timestamp not null,
    finished_at      timestamp not null
);

create table if not exists quarantine (
    batch_id    varchar   not null,
    source_file varchar   not null,
    row_number  integer   not null,  -- 1-based data row in the source file
    raw         json      not null,
    reason      varchar   not null,
    created_at  timestamp not null
);
