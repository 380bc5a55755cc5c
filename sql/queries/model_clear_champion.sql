-- model_clear_champion: one series has no champion until the new training run sets one.
update models set is_champion = false
where game_type = $game_type and region = $region and metric = $metric and is_champion;
