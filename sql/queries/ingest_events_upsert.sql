-- ingest_events_upsert: upsert events on event_id = md5 of the natural key
-- (name, kind, game_type, region, starts_at; null game_type/region = all) from events_stage.
-- first_seen_at is set once, when the row is first stored ($now), and kept on later upserts.
insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, batch_id,
                    multiplier, announced_at, first_seen_at)
select md5(concat_ws(chr(31), name, kind, coalesce(game_type, '*'), coalesce(region, '*'),
                     strftime(starts_at, '%Y-%m-%dT%H:%M:%S.%f'))),
       name, kind, game_type, region, starts_at, ends_at, $batch_id,
       multiplier, announced_at, $now
from events_stage
on conflict (event_id) do update set
    ends_at = excluded.ends_at,
    batch_id = excluded.batch_id,
    multiplier = excluded.multiplier,
    announced_at = excluded.announced_at
