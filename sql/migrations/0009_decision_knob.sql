-- 0009_decision_knob: each fleet's one knob along its cost / shortage curve, the service level
-- (upper quantile of the decision forecaster's own past errors that sizes the fleet; FleetSpec
-- service_level). Rows already stored get the default.
alter table fleets add column if not exists service_level double default 0.95;
