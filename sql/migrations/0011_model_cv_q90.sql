-- 0011_model_cv_q90: the CV coverage of the 0.9 quantile (the bound the capacity policy reads)
-- beside that of the 80% interval, each origin calibrated on the others; null for models trained
-- before it.
alter table models add column if not exists cv_coverage_q90 double;
