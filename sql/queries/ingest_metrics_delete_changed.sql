-- ingest_metrics_delete_changed: remove stored values that the batch corrects (same natural key,
-- different value), so ingest_metrics_insert_new can insert the new ones. Rows whose value is
-- unchanged are left alone (keeping the batch that first stored them). The ts range lets
-- DuckDB skip row groups by their min/max.
delete from metrics as m
using metrics_stage as s
where m.ts = s.ts
  and m.game_type = s.game_type
  and m.region = s.region
  and m.metric = s.metric
  and m.value <> s.value
  and m.ts between $ts_min and $ts_max
