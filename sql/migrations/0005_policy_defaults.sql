-- 0005_policy_defaults: column defaults follow FleetSpec (scale-in stabilisation 60 min,
-- tolerance band 0.15).
-- At an hourly decision cadence 30 min held nothing (no earlier decision fell inside it); 60 min
-- means the need must have been lower at the previous decision too. Rows already stored keep
-- the value they were written with (fleet files write every column).
alter table fleets alter column scale_in_stabilisation_minutes set default 60;
-- The tolerance band now holds scale-in only (it never blocks a needed increase); 0.15 keeps the
-- number of capacity changes below a reactive autoscaler's on every sample fleet.
alter table fleets alter column tolerance set default 0.15;
