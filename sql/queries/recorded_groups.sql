-- recorded_groups: every fleet's group as the recorded (no-AWS) backend starts it: where the
-- newest recorded decision left it (what was applied, else the target), or at the fleet's min.
select f.asg_name,
       coalesce(s.desired, f.min_size) as desired,
       f.min_size,
       f.max_size
from fleets f
left join (
    select fleet, arg_max(coalesce(applied_desired, target_desired), decided_at) as desired
    from allocations
    group by fleet
) s on s.fleet = f.fleet
order by f.priority, f.fleet;
