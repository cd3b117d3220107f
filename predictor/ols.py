"""Ordinary least squares with an intercept, in numpy: what the predictors fit.

It computes what scikit-learn's ``LinearRegression`` computes for dense input — X and y centred on their means,
a least-squares solve by LAPACK's ``gelsd`` with singular values below 1e-6 × the largest taken as zero, the
intercept ``ȳ − x̄·coef`` — without importing scikit-learn and SciPy (about 1.2 s of CPU, paid by every `tick`
and `plan` process before its first forecast) and without scikit-learn's per-call input checks (about 5 ms a fit:
more than the solve itself for the predictors' few thousand rows × a dozen features). The predictors' figures are
unchanged (benchmarks/policy.py; tests/unit/predictor/test_ols.py holds it to scikit-learn's answers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
RCOND = 1e-6  # scikit-learn's LinearRegression(tol=1e-6), passed to lstsq as its cutoff


class LinearRegression:
    """``fit(x, y)`` then ``predict(x)``; ``coef_`` and ``intercept_`` as scikit-learn names them."""

    def __init__(self) -> None:
        self.coef_: FloatArray = np.zeros(0)
        self.intercept_: float = 0.0

    def fit(self, x: Any, y: Any) -> LinearRegression:
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if xs.ndim != 2 or ys.ndim != 1 or xs.shape[0] != ys.shape[0] or xs.shape[0] == 0:
            raise ValueError(f"cannot fit {xs.shape} features to {ys.shape} targets")
        x_mean = xs.mean(axis=0)
        y_mean = float(ys.mean())
        coef, *_ = np.linalg.lstsq(xs - x_mean, ys - y_mean, rcond=RCOND)
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = y_mean - float(x_mean @ self.coef_)
        return self

    def predict(self, x: Any) -> FloatArray:
        return np.asarray(np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_, dtype=np.float64)
