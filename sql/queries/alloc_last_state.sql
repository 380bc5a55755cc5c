-- alloc_last_state: each fleet's newest recorded capacity (what was applied, else the target),
-- the starting state of the recorded (no-AWS) backend.
select fleet, arg_max(coalesce(applied_desired, target_desired), decided_at) as desired
from allocations
group by fleet;
