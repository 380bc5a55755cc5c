-- flows_game_types: every game type with metrics or a fleet (a scale-out run fans out over them).
select game_type from metrics
union
select game_type from fleets
order by game_type;
