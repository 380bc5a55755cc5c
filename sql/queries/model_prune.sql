-- model_prune: keep the newest $keep versions of each kind of one series (champions always kept).
delete from models
where game_type = $game_type and region = $region and metric = $metric
  and not is_champion
  and version <= (
      select max(m.version) from models m
      where m.game_type = $game_type and m.region = $region and m.metric = $metric
        and m.kind = models.kind
  ) - $keep;
