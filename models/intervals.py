"""How far the served intervals reach: conformal error quantiles widened by a factor per side.

Every interval the product serves (a local candidate's, the combination's and the global model's)
is a point forecast plus a scaled quantile of the model's own past errors. Those errors come from
a handful of windows per series, and the quantile of a few correlated windows falls short of the
share it names: on the validation windows the upper bound (q90) covered below its band. So each
quantile is widened away from the point by ``UPPER`` above it and ``LOWER`` below it: a bound
``yhat + s * q`` becomes ``yhat + s * q * factor``. The stored quantiles are the empirical ones;
the factors are applied where they are read (``models.selection.apply_conformal``,
``models.global_gbm.predict``), so the CV coverage recorded for a model and what it serves use
the same bounds. The factors were chosen on validation windows only
(``benchmarks/interval_width.py``, benchmarks/README.md), then frozen.
"""

from __future__ import annotations

import numpy as np

UPPER = 1.0  # quantiles above the median (q90, the upper 80% and 90% bounds)
LOWER = 1.0  # quantiles below it


def widen(q: np.ndarray, p: float) -> np.ndarray:
    """The error quantile ``q`` at probability ``p``, widened away from 0 on its side."""
    return np.asarray(q, dtype=float) * (UPPER if p > 0.5 else LOWER)
