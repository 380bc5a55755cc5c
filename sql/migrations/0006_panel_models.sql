-- 0006_panel_models: models trained across many series at once (a global LightGBM per metric).
-- The model text (LightGBM's own model_to_string inside a JSON document) is stored once per panel
-- with its sha256; each series of the panel has its usual `models` row (kind global_gbm) whose
-- small JSON points at the panel by panel_id and sha256. No pickle.
create table if not exists panel_models (
    panel_id    varchar   primary key,
    kind        varchar   not null,   -- e.g. global_gbm
    metric      varchar   not null,   -- the panel: every series of this metric
    trained_at  timestamp not null,
    train_run   varchar   not null,
    n_series    integer   not null,   -- series the model was trained on
    horizon     integer   not null,   -- the longest horizon it forecasts
    params      varchar,              -- JSON: configuration, holdout
    model_json  varchar   not null,
    sha256      varchar   not null,
    note        varchar
);
