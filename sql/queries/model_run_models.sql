-- model_run_models: every model of one training run of one series, with JSON and hash.
select model_id, kind, model_json, sha256, score, is_champion, note, params, hmac
from models
where train_run = $train_run
  and game_type = $game_type and region = $region and metric = $metric;
