-- 0013_event_announcements: what the decision path needs to know about an event (issue 26).
-- multiplier: the expected peak demand over usual for an event whose kind was never seen before
-- (optional, from the events file); announced_at: when the event became known (optional);
-- first_seen_at: when fleetcast first stored the row (kept on later upserts). An event is known
-- from announced_at, else from 24 h before its start but not before first_seen_at
-- (docs/operations.md "Events").
alter table events add column if not exists multiplier double;
alter table events add column if not exists announced_at timestamp;
alter table events add column if not exists first_seen_at timestamp;
update events set first_seen_at = (
    select b.started_at from ingest_batches b where b.batch_id = events.batch_id
) where first_seen_at is null;
