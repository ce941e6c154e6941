"""CBPE against realized performance on synthetic data with a known covariate shift (P(y|x) fixed)."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.cbpe import CBPE, estimated_roc_auc
from tests.support.shifted_data import binary_shifted as _binary


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
