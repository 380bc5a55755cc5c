-- alloc_list: the decisions of one run.
select *
from allocations
where run_id = $run_id
order by fleet;
