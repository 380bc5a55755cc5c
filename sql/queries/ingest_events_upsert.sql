-- ingest_events_upsert: upsert events on event_id = md5 of the natural key
-- (name, kind, game_type, region, starts_at; null game_type/region = all) from events_stage.
insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, batch_id)
select md5(concat_ws(chr(31), name, kind, coalesce(game_type, '*'), coalesce(region, '*'),
                     strftime(starts_at, '%Y-%m-%dT%H:%M:%S.%f'))),
       name, kind, game_type, region, starts_at, ends_at, $batch_id
from events_stage
on conflict (event_id) do update set
    ends_at = excluded.ends_at,
    batch_id = excluded.batch_id
