-- plan_ingest_failures: for many series at once ($game_types[i], $regions[i], $metrics[i]):
-- per series whose newest input rows quarantined by ingest validation
-- between $since and $now were not followed by a batch that stored a value of it, that row's
-- time, reason, batch, and how many rows of the series the batch quarantined. Only rows of
-- metrics files count; a raw row without a region or metric column applies to every one.
with keys as (
    select distinct unnest($game_types) as game_type, unnest($regions) as region,
           unnest($metrics) as metric
),
quarantined as (
    select q.created_at, q.reason, q.batch_id,
           json_extract_string(q.raw, '$.game_type') as game_type,
           json_extract_string(q.raw, '$.region') as region,
           json_extract_string(q.raw, '$.metric') as metric
    from quarantine q
    left join ingest_batches b on b.batch_id = q.batch_id
    where q.created_at <= $now
      and q.created_at >= $since
      and coalesce(b.kind, 'metrics') like 'metrics%'
),
series_rows as (
    select k.game_type, k.region, k.metric, q.created_at, q.reason, q.batch_id
    from quarantined q
    join keys k
      on q.game_type = k.game_type
     and coalesce(q.region, k.region) = k.region
     and coalesce(q.metric, k.metric) = k.metric
),
bad as (
    select game_type, region, metric, created_at, reason, batch_id
    from series_rows
    qualify row_number() over (
        partition by game_type, region, metric order by created_at desc
    ) = 1
),
counted as (
    select s.game_type, s.region, s.metric, count(*) as n
    from series_rows s
    join bad using (game_type, region, metric, batch_id)
    group by s.game_type, s.region, s.metric
),
good as (
    select m.game_type, m.region, m.metric, max(b.finished_at) as at
    from metrics m
    join ingest_batches b on b.batch_id = m.batch_id
    join (select distinct game_type, region, metric from bad) s
      on m.game_type = s.game_type and m.region = s.region and m.metric = s.metric
    where m.ts >= $since
      and b.finished_at <= $now
      and b.finished_at >= $since
    group by m.game_type, m.region, m.metric
)
select bad.game_type, bad.region, bad.metric, bad.created_at, bad.reason, bad.batch_id, c.n
from bad
join counted c using (game_type, region, metric)
left join good g using (game_type, region, metric)
where g.at is null or bad.created_at > g.at;
