-- 0009_decision_knob: each fleet's one knob along its cost / shortage curve, the service level
-- (upper quantile of the decision forecaster's own past errors that sizes the fleet; FleetSpec
-- service_level). Rows already stored get the default.
alter table fleets add column if not exists service_level double default 0.95;
-- Protective rules that cost more than they saved on steam-dev's validation weeks are off by
-- default for new fleets (FleetSpec): tolerance band 0, scale-in stabilisation 0. Rows already
-- stored keep the values they were written with.
alter table fleets alter column tolerance set default 0.0;
alter table fleets alter column scale_in_stabilisation_minutes set default 0;
