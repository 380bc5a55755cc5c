-- ingest_metrics_duplicate_keys: natural keys stored more than once (must be none; a check).
select ts, game_type, region, metric, count(*) as n
from metrics
group by all
having count(*) > 1
