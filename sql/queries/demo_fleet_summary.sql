-- demo_fleet_summary: per fleet, the forecaster that decided its newest capacity decision
-- (decided_by: the decision forecaster, e.g. the nowcast), its demand series' champion (the
-- stored model that serves the published forecast: published_by), the champion's CV score (the score
-- that chose it: not a held-out score), its realised MASE on actuals that arrived after a stored
-- forecast (a true held-out score, where one exists), the peak of the newest forecast, and the
-- newest capacity decision with its reason (after an approval: the sizing reason, then the
-- approval) and the instances it could not get (max or budget).
with newest_run as (
    select game_type, region, metric, arg_max(run_id, created_at) as run_id
    from forecasts
    group by game_type, region, metric
),
peak as (
    select f.game_type, f.region, f.metric, max(f.yhat) as forecast_peak
    from forecasts f
    join newest_run n using (game_type, region, metric, run_id)
    group by f.game_type, f.region, f.metric
),
champion as (
    select game_type, region, metric, model_id, kind as champion, score as champion_cv_mase,
           cv_smape as champion_cv_smape
    from models
    where is_champion
),
realised as (
    select model_id, arg_max(mase, scored_at) as realised_mase
    from accuracy
    group by model_id
),
decision as (
    select fleet,
           -- the newest decision's sizing reason, then what happened to it since (an approval's
           -- row reads no forecast and says only "change ... approved by ...")
           case
               when arg_max(reason, decided_at) filter (
                        where json_extract(inputs, '$.forecast_models') is not null
                    ) is null
                 or arg_max(reason, decided_at) = arg_max(reason, decided_at) filter (
                        where json_extract(inputs, '$.forecast_models') is not null
                    )
               then arg_max(reason, decided_at)
               else arg_max(reason, decided_at) filter (
                        where json_extract(inputs, '$.forecast_models') is not null
                    ) || '; then ' || arg_max(reason, decided_at)
           end as reason,
           arg_max(target_desired, decided_at) as target,
           arg_max(coalesce(unserved_instances, 0), decided_at) as unserved,
           -- the newest decision that read a forecast (an approval's row reads none)
           arg_max(inputs, decided_at)
               filter (where json_extract(inputs, '$.forecast_models') is not null) as inputs
    from allocations
    group by fleet
)
select fl.fleet, fl.game_type, fl.region, fl.asg_name, fl.lead_time_minutes,
       json_extract_string(d.inputs, '$.forecast_models.' || fl.demand_metric) as decided_by,
       c.champion as published_by, round(c.champion_cv_mase, 3) as champion_cv_mase,
       round(c.champion_cv_smape, 2) as champion_cv_smape, round(r.realised_mase, 3) as realised_mase,
       round(p.forecast_peak, 0) as forecast_peak, d.target, d.unserved, d.reason
from fleets fl
left join champion c
    on c.game_type = fl.game_type and c.region = fl.region and c.metric = fl.demand_metric
left join realised r on r.model_id = c.model_id
left join peak p
    on p.game_type = fl.game_type and p.region = fl.region and p.metric = fl.demand_metric
left join decision d on d.fleet = fl.fleet
order by fl.game_type, fl.region;
