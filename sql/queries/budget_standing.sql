-- budget_standing: each fleet's newest decision since $since (the other runs' standing
-- decisions a budget run shares the scope with): its target, what it wanted before any budget
-- (inputs.budget.wanted, else the target), and what it could not get.
select fleet,
       arg_max(target_desired, decided_at) as target,
       arg_max(
           coalesce(try_cast(json_extract_string(inputs, '$.budget.wanted') as integer),
                    target_desired),
           decided_at
       ) as wanted,
       arg_max(coalesce(unserved_instances, 0), decided_at) as unserved,
       max(decided_at) as decided_at
from allocations
where decided_at >= $since and decided_at <= $now
group by fleet;
