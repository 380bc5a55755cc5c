-- decide_ingest_failure: the newest input row of one series ($game_type, $region, and the
-- demand $metric, or a wide row without a metric column) quarantined by ingest validation
-- between $since and $now, when no batch stored a value of that series after it (the newest
-- data of the series failed validation). Only rows of metrics files count: a bad session or
-- event row says nothing about the demand series. Returns its time, reason, batch and how many
-- rows of the series that batch quarantined; no row when the series is clean.
with series_rows as (
    select q.created_at, q.reason, q.batch_id
    from quarantine q
    left join ingest_batches b on b.batch_id = q.batch_id
    where q.created_at <= $now
      and q.created_at >= $since
      and coalesce(b.kind, 'metrics') like 'metrics%'
      and json_extract_string(q.raw, '$.game_type') = $game_type
      and coalesce(json_extract_string(q.raw, '$.region'), $region) = $region
      and coalesce(json_extract_string(q.raw, '$.metric'), $metric) = $metric
),
bad as (
    select created_at, reason, batch_id
    from series_rows
    order by created_at desc
    limit 1
),
good as (
    select max(b.finished_at) as at
    from ingest_batches b
    where b.finished_at <= $now
      and b.finished_at >= $since
      and b.batch_id in (
          select distinct m.batch_id from metrics m
          where m.game_type = $game_type and m.region = $region and m.metric = $metric
            and m.ts >= $since
      )
)
select bad.created_at, bad.reason, bad.batch_id,
       (select count(*) from series_rows s where s.batch_id = bad.batch_id) as rows
from bad, good
where good.at is null or bad.created_at > good.at;
