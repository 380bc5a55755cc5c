-- alloc_insert_many: the decisions of one run in one statement, from the rows registered as
-- new_allocations (fleetcast.stages.records.record_decisions), each recorded after its AWS call
-- with its outcome.
insert into allocations (
    decision_id, run_id, decided_at, fleet, game_type, region, asg_name, mode,
    current_desired, target_desired, applied_desired, applied, processes_per_instance,
    demand_forecast, inputs, reason, recommended, status, new_max_size, unserved_instances,
    outcome
)
select decision_id, run_id, decided_at, fleet, game_type, region, asg_name, mode,
       current_desired, target_desired, applied_desired, applied, processes_per_instance,
       demand_forecast, cast(inputs as json), reason, recommended, status, new_max_size,
       unserved_instances, outcome
from new_allocations;
