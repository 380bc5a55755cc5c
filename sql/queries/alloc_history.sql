-- alloc_history: a fleet's earlier recommendations since $since (for the scale-in
-- stabilisation window: the highest recommendation in it wins).
select decided_at, coalesce(recommended, target_desired) as recommended
from allocations
where fleet = $fleet and decided_at >= $since and decided_at < $now
order by decided_at;
