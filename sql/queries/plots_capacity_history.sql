-- plots_capacity_history: a fleet's capacity in effect after each recorded decision since
-- $since, in its demand metric's units (desired instances x what one instance serves), for the
-- run's capacity-vs-demand plot. Forecast-only decisions leave the capacity as it was.
select a.decided_at as ts,
       coalesce(a.applied_desired, a.current_desired) * f.capacity_players as capacity
from allocations a
join fleets f on f.fleet = a.fleet
where a.fleet = $fleet
  and a.decided_at >= $since
  and coalesce(a.applied_desired, a.current_desired) is not null
order by a.decided_at;
