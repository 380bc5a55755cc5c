-- approval_rule_list: every fleet's approval rule, or one fleet's ($fleet null = all).
select fleet, max_change_pct, max_change_instances, scale_in_floor, expiry_minutes, updated_at
from approval_rules
where cast($fleet as varchar) is null or fleet = $fleet
order by fleet;
