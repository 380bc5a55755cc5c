-- budget_list: every budget, by name.
select name, scope, region, game_types, max_instances, max_cost_per_hour, reason,
       coalesce(hard, false) as hard, created_at, updated_at
from budgets
order by name;
