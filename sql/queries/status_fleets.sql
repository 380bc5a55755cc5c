-- status_fleets: per fleet (one game type, or all when $game_type is null): its configuration,
-- the newest forecast of its demand metric, and its last capacity decision with the reason and
-- the instances it could not get (max or budget), and the processes per instance it set (and
-- where that came from: telemetry, override or the fleet's settings), and the forecasters that
-- decided it (JSON: metric -> model; the published forecast's model may differ), and the budgets
-- that took part in it (JSON, with any breach a person's override caused).
with last_forecast as (
    select game_type, region, metric,
           max(created_at) as forecast_at,
           arg_max(run_id, created_at) as forecast_run,
           arg_max(model, created_at) as forecast_model
    from forecasts
    group by game_type, region, metric
),
last_decision as (
    select fleet,
           max(decided_at) as decided_at,
           arg_max(run_id, decided_at) as decision_run,
           arg_max(mode, decided_at) as decision_mode,
           arg_max(current_desired, decided_at) as current_desired,
           arg_max(target_desired, decided_at) as target_desired,
           arg_max(applied_desired, decided_at) as applied_desired,
           arg_max(applied, decided_at) as applied,
           arg_max(status, decided_at) as status,
           arg_max(reason, decided_at) as reason,
           arg_max(outcome, decided_at) as outcome,
           arg_max(coalesce(unserved_instances, 0), decided_at) as unserved_instances,
           arg_max(processes_per_instance, decided_at) as processes_per_instance,
           arg_max(json_extract_string(inputs, '$.processes.source'), decided_at)
               as processes_source,
           arg_max(json_extract_string(inputs, '$.processes.learned.processes_per_instance'),
                   decided_at) as processes_learned,
           arg_max(json_extract_string(inputs, '$.forecast_models'), decided_at)
               as decided_by,
           arg_max(json_extract_string(inputs, '$.budget'), decided_at) as budget
    from allocations
    group by fleet
)
select f.fleet, f.game_type, f.region, f.asg_name, f.mode, f.min_size, f.max_size,
       f.safety_margin, f.demand_metric,
       lf.forecast_at, lf.forecast_run, lf.forecast_model,
       ld.decided_at, ld.decision_run, ld.decision_mode, ld.current_desired, ld.target_desired,
       ld.applied_desired, ld.applied, ld.status, ld.reason, ld.outcome,
       ld.unserved_instances, ld.processes_per_instance, ld.processes_source,
       ld.processes_learned, ld.decided_by, ld.budget
from fleets f
left join last_forecast lf
  on lf.game_type = f.game_type and lf.region = f.region and lf.metric = f.demand_metric
left join last_decision ld on ld.fleet = f.fleet
where cast($game_type as varchar) is null or f.game_type = $game_type
order by f.priority, f.fleet;
