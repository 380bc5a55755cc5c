-- plots_capacity_history: a fleet's capacity in effect after each recorded decision since
-- $since, in its demand metric's units: desired instances x the players one instance serves as
-- that decision sized it (the players per instance learned from telemetry, recorded in
-- inputs.processes, else the fleet's capacity_players), for the run's capacity-vs-demand plot.
-- Forecast-only decisions leave the capacity as it was.
select a.decided_at as ts,
       coalesce(a.applied_desired, a.current_desired) * coalesce(
           try_cast(json_extract_string(a.inputs, '$.processes.players_per_instance') as double),
           f.capacity_players
       ) as capacity
from allocations a
join fleets f on f.fleet = a.fleet
where a.fleet = $fleet
  and a.decided_at >= $since
  and coalesce(a.applied_desired, a.current_desired) is not null
order by a.decided_at;
