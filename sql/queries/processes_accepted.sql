-- processes_accepted: what earlier decisions accepted as processes per instance learned from
-- telemetry, per fleet, newest first, over ($since, $now] (the bounds' memory: the last accepted
-- value and the lowest of the last 24 hours). The fleets are joined, not searched in a list
-- per row (10,000 fleets x every row of the window would be quadratic).
with keys as (select distinct unnest($fleets) as fleet)
select a.fleet, a.decided_at,
       cast(json_extract(a.inputs, '$.processes.accepted') as varchar) as accepted
from allocations a
join keys k on a.fleet = k.fleet
where a.decided_at > $since and a.decided_at <= $now
  and json_extract(a.inputs, '$.processes.accepted') is not null
  and json_type(json_extract(a.inputs, '$.processes.accepted')) = 'OBJECT'
order by a.fleet, a.decided_at desc;
