-- 0007_approval: human approval as a property of each fleet, and every change waiting for it.

-- Approval rules per fleet (issue 12). A change needs a person when it moves the fleet by more
-- than max_change_pct % of its capacity, or by more than max_change_instances instances, or
-- scales it in below scale_in_floor. Null = that rule is off; no row = no approval at all.
-- A change waiting for approval expires after expiry_minutes (nothing applied).
create table if not exists approval_rules (
    fleet                varchar   primary key,
    max_change_pct       double,
    max_change_instances integer,
    scale_in_floor       integer,
    expiry_minutes       integer   not null default 60,
    updated_at           timestamp not null
);

-- One row per change that waited for a person, written before anyone is asked.
-- status: pending -> approved | rejected | expired | superseded (a later run proposed another
-- target for the fleet). While one is pending, runs keep the fleet within the rule's band
-- around current_desired (the documented exception: scale-out that observed demand needs now,
-- recorded on the run's allocation row).
create table if not exists pending_changes (
    change_id        varchar   primary key,
    fleet            varchar   not null,
    game_type        varchar   not null,
    asg_name         varchar   not null,
    current_desired  integer   not null,  -- the group's desired capacity when it was proposed
    proposed_desired integer   not null,  -- the change waiting for a person
    held_desired     integer   not null,  -- what the asking run applied meanwhile
    reason           varchar   not null,  -- the policy's reason and the rule that asks
    asked_by         varchar   not null,  -- run id and what asked (flow run, fleetcast scale)
    created_at       timestamp not null,
    expires_at       timestamp not null,
    status           varchar   not null,  -- pending | approved | rejected | expired | superseded
    waiting          varchar,             -- who is waiting on it (a paused flow run) and until when
    waiting_until    timestamp,           -- when that run stops waiting (past it, unanswered: the
                                          -- run is gone, or stopped waiting)
    decided_at       timestamp,
    decided_by       varchar,
    note             varchar,
    applied_desired  integer,             -- set when an approval was applied
    outcome          varchar,             -- the apply outcome, or why nothing was applied
    superseded_by    varchar
);
