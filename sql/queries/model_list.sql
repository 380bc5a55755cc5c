-- model_list: the registry for `fleetcast models`: newest first per series, champions first.
select game_type, region, metric, kind, version, is_champion, train_start, train_end, n_obs,
       score, cv_smape, cv_coverage, trained_at, note, model_id, sha256
from models
where (cast($game_type as varchar) is null or game_type = $game_type)
  and (cast($metric as varchar) is null or metric = $metric)
  and (cast($all_versions as boolean) or version = (
      select max(m.version) from models m
      where m.game_type = models.game_type and m.region = models.region
        and m.metric = models.metric and m.kind = models.kind))
order by game_type, region, metric, is_champion desc, score nulls last, kind, version desc;
