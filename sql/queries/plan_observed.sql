-- plan_observed: for each (game type, region) of the plan ($game_types[i], $regions[i]) the
-- newest observed value per metric in [$since, $now].
with keys as (
    select distinct unnest($game_types) as game_type, unnest($regions) as region
)
select m.game_type, m.region, m.metric, arg_max(m.value, m.ts) as value, max(m.ts) as ts
from metrics m
join keys k on m.game_type = k.game_type and m.region = k.region
where m.ts <= $now and m.ts >= $since
group by m.game_type, m.region, m.metric;
