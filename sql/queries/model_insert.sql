-- model_insert: one trained candidate of one series (JSON and its sha256).
insert into models (
    model_id, game_type, region, metric, kind, trained_at, train_start, train_end, n_obs,
    params, model_json, sha256, score, is_champion, note, version, train_run, cv_smape,
    cv_coverage, cv_coverage_q90, hmac
) values (
    $model_id, $game_type, $region, $metric, $kind, $trained_at, $train_start, $train_end, $n_obs,
    $params, $model_json, $sha256, $score, $is_champion, $note, $version, $train_run, $cv_smape,
    $cv_coverage, $cv_coverage_q90, $hmac
);
