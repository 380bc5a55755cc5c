-- model_scores: the recorded CV MASE of the given models (benchmarks/selection_rules.py).
select kind, score
from models
where model_id in (select unnest($ids::varchar[]));
