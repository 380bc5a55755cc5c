-- model_panel_get: one panel model by id, with its JSON and the recorded sha256.
select panel_id, kind, metric, horizon, model_json, sha256, hmac
from panel_models
where panel_id = $panel_id;
