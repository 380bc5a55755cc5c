-- model_list: the registry for `fleetcast models`: newest first per series, champions first;
-- score = CV MASE (the score that chose the champion), cv_coverage = CV coverage of the 80%
-- interval and cv_coverage_q90 the share of CV actuals at or below the 0.9 quantile (each origin
-- calibrated on the others), realised_mase = the newest realised MASE of
-- a forecast this model made, on actuals that arrived later (a true held-out score).
select game_type, region, metric, kind, version, is_champion, train_start, train_end, n_obs,
       score, cv_smape, cv_coverage, cv_coverage_q90, trained_at, note, model_id, sha256, r.realised_mase
from models
left join (
    select model_id as rid, arg_max(mase, scored_at) as realised_mase from accuracy group by 1
) r on r.rid = models.model_id
where (cast($game_type as varchar) is null or game_type = $game_type)
  and (cast($metric as varchar) is null or metric = $metric)
  and (cast($all_versions as boolean) or version = (
      select max(m.version) from models m
      where m.game_type = models.game_type and m.region = models.region
        and m.metric = models.metric and m.kind = models.kind))
order by game_type, region, metric, is_champion desc, score nulls last, kind, version desc;
