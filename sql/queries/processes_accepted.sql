-- processes_accepted: what earlier decisions accepted as processes per instance learned from
-- telemetry, per fleet, newest first, over ($since, $now] (the bounds' memory: the last accepted
-- value and the lowest of the last 24 hours).
select fleet, decided_at,
       cast(json_extract(inputs, '$.processes.accepted') as varchar) as accepted
from allocations
where list_contains($fleets, fleet)
  and decided_at > $since and decided_at <= $now
  and json_extract(inputs, '$.processes.accepted') is not null
  and json_type(json_extract(inputs, '$.processes.accepted')) = 'OBJECT'
order by fleet, decided_at desc;
