-- alloc_insert: one capacity decision, recorded after the AWS call with its outcome.
insert into allocations (
    decision_id, run_id, decided_at, fleet, game_type, region, asg_name, mode,
    current_desired, target_desired, applied_desired, applied, processes_per_instance,
    demand_forecast, inputs, reason, recommended, status, new_max_size, unserved_instances,
    outcome
) values (
    $decision_id, $run_id, $decided_at, $fleet, $game_type, $region, $asg_name, $mode,
    $current_desired, $target_desired, $applied_desired, $applied, $processes_per_instance,
    $demand_forecast, $inputs, $reason, $recommended, $status, $new_max_size,
    $unserved_instances, $outcome
);
