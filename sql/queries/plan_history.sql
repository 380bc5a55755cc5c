-- plan_history: the earlier recommendations of the plan's fleets ($fleets) in [$since, $now),
-- oldest first per fleet (the scale-in stabilisation window; each fleet keeps its own window).
with keys as (select distinct unnest($fleets) as fleet)
select a.fleet, a.decided_at, coalesce(a.recommended, a.target_desired) as recommended
from allocations a
join keys k on a.fleet = k.fleet
where a.decided_at >= $since and a.decided_at < $now
order by a.fleet, a.decided_at;
