-- ingest_metrics_insert_new: insert the batch's values whose natural key is not stored
-- (new keys, and keys just deleted as changed). metrics_stage is unique on the key.
insert into metrics (ts, game_type, region, metric, value, batch_id)
select s.ts, s.game_type, s.region, s.metric, s.value, $batch_id
from metrics_stage as s
anti join (
    select ts, game_type, region, metric
    from metrics
    where ts between $ts_min and $ts_max
) as m
    on m.ts = s.ts and m.game_type = s.game_type and m.region = s.region and m.metric = s.metric
