-- 0003_model_registry_accuracy: model versions and training runs, the 90% quantile and the
-- fallback note of each forecast, and the realised accuracy of stored forecasts (issue 3).

-- Registry: version per (series, kind), the training run that made it, its CV detail.
alter table models add column if not exists version integer default 1;
alter table models add column if not exists train_run varchar;
alter table models add column if not exists cv_smape double;
alter table models add column if not exists cv_coverage double;

-- Forecasts: the 0.90 quantile used for capacity (= yhat_upper at the default 80% level) and
-- what happened on the way (fallbacks, refused models).
alter table forecasts add column if not exists yhat_q90 double;
alter table forecasts add column if not exists note varchar;

-- Realised accuracy of one forecast run of one series against the actuals that have arrived.
create table if not exists accuracy (
    run_id        varchar   not null,
    game_type     varchar   not null,
    region        varchar   not null,
    metric        varchar   not null,
    model         varchar   not null,
    model_id      varchar,
    n             integer   not null,  -- hours with actuals
    mase          double,
    smape         double,
    coverage      double,              -- share of actuals in [yhat_lower, yhat_upper]
    coverage_q90  double,              -- share of actuals at or below yhat_q90
    backtest_mase double,              -- the model's CV score at training
    retrain       boolean   not null,
    reason        varchar   not null,
    first_ts      timestamp,
    last_ts       timestamp,
    scored_at     timestamp not null,
    primary key (run_id, game_type, region, metric)
);
