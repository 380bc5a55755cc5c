-- 0005_policy_defaults: the scale-in stabilisation window default follows FleetSpec (60 min).
-- At an hourly decision cadence 30 min held nothing (no earlier decision fell inside it); 60 min
-- means the need must have been lower at the previous decision too. Rows already stored keep
-- the value they were written with (fleet files write every column).
alter table fleets alter column scale_in_stabilisation_minutes set default 60;
