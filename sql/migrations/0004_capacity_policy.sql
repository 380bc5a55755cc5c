-- 0004_capacity_policy: what the capacity policy (issue 4) needs per fleet and per decision.

-- Per-process needs: processes per instance = the smallest instance capacity / process need.
alter table fleets add column if not exists process_cpu double;
alter table fleets add column if not exists process_memory_gb double;
alter table fleets add column if not exists process_net_mbps double;
-- Max breach behaviour: 'honour' the max, or 'raise' it by a buffer (% of the forecast need).
alter table fleets add column if not exists max_breach varchar default 'honour';
alter table fleets add column if not exists max_breach_buffer_pct double default 10;
-- Step limits per decision (null = no limit), tolerance band and scale-in stabilisation.
alter table fleets add column if not exists max_step_up integer;
alter table fleets add column if not exists max_step_down integer;
alter table fleets add column if not exists tolerance double default 0.1;
alter table fleets add column if not exists scale_in_stabilisation_minutes integer default 30;
-- Length of the window planned for, starting one lead time ahead.
alter table fleets add column if not exists window_minutes integer default 60;
-- Price of one instance per hour (for a cost budget shared by fleets).
alter table fleets add column if not exists cost_per_hour double default 0;

-- Each decision's raw recommendation (for the stabilisation window), the max sent, the
-- demand not served (max or budget) and the outcome of the AWS call.
alter table allocations add column if not exists recommended integer;
alter table allocations add column if not exists status varchar;
alter table allocations add column if not exists new_max_size integer;
alter table allocations add column if not exists unserved_instances integer;
alter table allocations add column if not exists outcome varchar;
