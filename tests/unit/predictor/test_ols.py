"""predictor/ols.py answers what scikit-learn's LinearRegression answers (the predictors' figures stay the same),
and importing the predictors no longer imports scikit-learn or SciPy (a `tick`'s start-up)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression as SkLinearRegression

from predictor.ols import LinearRegression


@pytest.mark.parametrize("seed", range(12))
def test_the_same_fit_as_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, features = int(rng.integers(12, 6000)), int(rng.integers(1, 13))
    x = rng.normal(size=(rows, features)) * rng.uniform(0.1, 10, size=features) + rng.normal(size=features) * 5
    if seed % 3 == 0:
        x[:, -1] = x[:, 0] * 2.0  # a collinear feature: the rank cut-off must match too
    y = x @ rng.normal(size=features) + rng.normal(size=rows)
    ours, theirs = LinearRegression().fit(x, y), SkLinearRegression().fit(x, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-9, atol=1e-12)
    assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=1e-9, atol=1e-9)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot fit"):
        LinearRegression().fit(np.zeros((3, 2)), np.zeros(4))


def test_the_predictors_do_not_import_scikit_learn_or_scipy() -> None:
    code = (
        "import sys\nimport predictor.factory, predictor.seasonal, predictor.linear\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
