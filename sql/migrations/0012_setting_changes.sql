-- 0012_setting_changes: a learned setting beyond its band waits for a person (issue 25).
-- Processes per instance learned from telemetry are used within a band around the fleet's
-- configured value (docs/operations.md "Processes per instance"); a learned value beyond it is
-- asked about here, once per fleet, and the fleet sizes on the nearer bound meanwhile. An
-- approved row becomes the band's centre for that fleet (until a later approval).
-- status: pending -> approved | rejected | superseded (a later cycle learned another value).
create table if not exists setting_changes (
    change_id        varchar   primary key,
    fleet            varchar   not null,
    game_type        varchar   not null,
    setting          varchar   not null,  -- processes_per_instance
    reference        double    not null,  -- the band's centre when asked (configured/approved)
    learned          double    not null,  -- the learned value waiting for a person
    used             double    not null,  -- what the fleet sizes on meanwhile (the nearer bound)
    players_per_instance double,          -- the learned players one instance hosts with it
    reason           varchar   not null,
    created_at       timestamp not null,
    status           varchar   not null,
    decided_at       timestamp,
    decided_by       varchar,
    note             varchar
);
