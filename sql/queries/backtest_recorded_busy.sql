-- backtest_recorded_busy: the busy-instance count each live decision of a fleet saw, between
-- $since and $until (the replay gives a decision at the same time the same fleet state).
select decided_at, cast(json_extract(inputs, '$.busy') as integer) as busy
from allocations
where fleet = $fleet
  and decided_at >= $since
  and decided_at <= $until
  and json_extract(inputs, '$.busy') is not null
order by decided_at;
