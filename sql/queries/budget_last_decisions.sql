-- budget_last_decisions: each fleet's newest decision: its target and the instances it could
-- not get (fleetcast budget list sums them per budget scope).
select fleet,
       arg_max(target_desired, decided_at) as target,
       arg_max(coalesce(unserved_instances, 0), decided_at) as unserved
from allocations
group by fleet;
