-- model_backtest_scores: the CV MASE of every stored model, by id (for the retrain trigger).
select model_id, score as backtest_mase
from models;
