"""DLE against realized performance on synthetic data with a known covariate shift (P(y|x) fixed)."""

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from mlops_assets.core.dle import DLE


def _regression(rng, n, shift):
    x = rng.normal(shift, 1, (n, 2))
    noise = 0.2 + 0.8 * np.abs(x[:, 0])  # heteroscedastic: the error depends on where x lies
    return pd.DataFrame(x, columns=["u", "v"]), x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 1, n) * noise


def test_dle_estimates_mae_rmse_under_covariate_shift():
    rng = np.random.default_rng(3)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(*_regression(rng, 4000, 0.0))
    x_ref, y_ref = _regression(rng, 5000, 0.0)
    dle = DLE.fit(x_ref, model.predict(x_ref), y_ref)
    x, y = _regression(rng, 3000, 0.8)
    pred = model.predict(x)
    estimated, realized = dle.estimate(x, pred), dle.realized(pred, y)
    assert realized["mae"] > dle.reference["mae"] * 1.15  # the shift made the errors larger...
    for metric in ("mae", "rmse"):  # ...and DLE saw it without labels
        assert abs(estimated[metric] - realized[metric]) / realized[metric] < 0.12, (metric, estimated, realized)
