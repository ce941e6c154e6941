"""CBPE and DLE against realized performance on synthetic data with a known covariate shift (P(y|x) fixed)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.estimation import (
    CBPE,
    DLE,
    chunk_bounds,
    estimated_decay,
    estimated_roc_auc,
    explain_estimate,
    with_bands,
)


def _binary(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Two features; the label's law given x never changes, only where x lies (toward the boundary)."""
    x = rng.normal(0, 1, (n, 2))
    x[:, 0] = x[:, 0] * (1 - shift) + 0.0
    logits = 2.5 * x[:, 0] - 1.0 * x[:, 1] ** 2 + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def binary_setup():
    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(*_binary(rng, 4000, 0.0))  # misspecified: its raw scores are miscalibrated
    x_ref, y_ref = _binary(rng, 5000, 0.0)
    return rng, model, CBPE.fit(model.predict_proba(x_ref), y_ref, [0, 1], model.predict(x_ref))


def test_cbpe_estimates_accuracy_auc_f1_under_covariate_shift(binary_setup):
    rng, model, cbpe = binary_setup
    for shift in (0.0, 0.5, 0.8):
        x, y = _binary(rng, 3000, shift)
        proba, pred = model.predict_proba(x), model.predict(x)
        estimated, realized = cbpe.estimate(proba, pred), cbpe.realized(proba, y, pred)
        for metric in ("accuracy", "roc_auc", "f1"):
            assert abs(estimated[metric] - realized[metric]) < 0.03, (shift, metric, estimated, realized)
    # the shift is real: the most shifted chunk is estimated clearly worse than the reference
    assert (
        cbpe.estimate(model.predict_proba(_binary(rng, 3000, 0.8)[0]))["accuracy"] < cbpe.reference["accuracy"] - 0.05
    )


def test_cbpe_calibration_round_trips_as_json(binary_setup):
    rng, model, cbpe = binary_setup
    assert cbpe.calibration[1] is not None  # the misspecified model needed calibration
    again = CBPE.from_dict(json.loads(json.dumps(cbpe.to_dict())))
    proba = model.predict_proba(_binary(rng, 500, 0.3)[0])
    assert again.estimate(proba) == cbpe.estimate(proba)


def test_estimated_roc_auc_of_perfectly_calibrated_scores_matches_expectation():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = rng.random(20000) < p
    from sklearn.metrics import roc_auc_score

    assert abs(estimated_roc_auc(p, p) - roc_auc_score(y, p)) < 0.01


def test_multiclass_cbpe_estimates_within_tolerance():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [2, 0], [1, 1.7]])

    def draw(n, spread):
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(0, spread, (n, 2)), np.array(["a", "b", "c"])[y]

    model = LogisticRegression().fit(*draw(3000, 1.0))
    x_ref, y_ref = draw(4000, 1.0)
    cbpe = CBPE.fit(model.predict_proba(x_ref), y_ref, list(model.classes_), model.predict(x_ref))
    x, _ = draw(3000, 1.0)
    x = x * 0.6 + 0.4  # covariate shift toward the middle, where classes overlap most
    y = np.array(["a", "b", "c"])[
        np.argmax(-((x[:, None, :] - centres) ** 2).sum(-1) / 2 + rng.gumbel(size=(len(x), 3)), axis=1)
    ]
    proba, pred = model.predict_proba(x), model.predict(x)
    estimated, realized = cbpe.estimate(proba, pred), cbpe.realized(proba, y, pred)
    for metric in ("accuracy", "roc_auc", "f1"):
        assert abs(estimated[metric] - realized[metric]) < 0.04, (metric, estimated, realized)


def test_unknown_class_is_a_clear_error(binary_setup):
    _, model, cbpe = binary_setup
    with pytest.raises(ValueError, match="not one of the model's classes"):
        cbpe.estimate(np.array([[0.4, 0.6]]), ["maybe"])


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


def test_band_shrinks_with_rows_and_verdict_needs_the_whole_band_below(binary_setup):
    _, _, cbpe = binary_setup
    small = with_bands({"accuracy": 0.80}, cbpe.unit_error, 100)["accuracy"]
    large = with_bands({"accuracy": 0.80}, cbpe.unit_error, 10000)["accuracy"]
    assert large.band_high - large.band_low < small.band_high - small.band_low
    assert small.band_low < 0.80 < small.band_high
    assert estimated_decay(large, 0.85, tolerance=0.02, min_rows=100)
    assert not estimated_decay(small, 0.85, tolerance=0.02, min_rows=100)  # too uncertain at 100 rows
    assert not estimated_decay(large, 0.81, tolerance=0.02, min_rows=100)  # within tolerance
    assert not estimated_decay(small, 0.85, tolerance=0.02, min_rows=500)
    assert "entirely below" in explain_estimate(large, 0.85, tolerance=0.02, min_rows=100)
    assert "not judged: 100 rows" in explain_estimate(small, 0.85, tolerance=0.02, min_rows=500)
    rmse = with_bands({"rmse": 2.0}, {"rmse": 1.0}, 10000)["rmse"]
    assert estimated_decay(rmse, 1.5, tolerance=0.02, min_rows=100)


def test_chunk_bounds_never_leave_a_tiny_last_chunk():
    assert chunk_bounds(0, 10) == []
    assert chunk_bounds(24, 10) == [(0, 10), (10, 24)]
    assert chunk_bounds(27, 10) == [(0, 10), (10, 20), (20, 27)]
