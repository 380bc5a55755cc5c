-- model_panel_insert: one panel model (JSON text and its sha256), shared by the series of a panel.
insert into panel_models (
    panel_id, kind, metric, trained_at, train_run, n_series, horizon, params, model_json, sha256,
    note, hmac
) values (
    $panel_id, $kind, $metric, $trained_at, $train_run, $n_series, $horizon, $params, $model_json,
    $sha256, $note, $hmac
);
