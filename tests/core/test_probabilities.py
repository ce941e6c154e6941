"""Labels derived from probabilities equal the estimator's own predict on the platform's pipelines."""

import numpy as np
import pytest
from sklearn import datasets
from sklearn.svm import LinearSVC

from mlops_assets.core.probabilities import Predictor
from mlops_assets.core.spec import infer_spec
from mlops_assets.core.training import ESTIMATORS, build_pipeline


@pytest.mark.parametrize("data", ["wine", "breast_cancer", "iris"])
@pytest.mark.parametrize("estimator", sorted(k for k, v in ESTIMATORS.items() if "classification" in v))
def test_argmax_of_probabilities_is_predict(data: str, estimator: str):
    frame = getattr(datasets, f"load_{data}")(as_frame=True).frame
    frame.columns = [c.replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_") for c in frame.columns]
    spec = infer_spec(frame, name=data, target="target", task="classification")
    x, y = frame[spec.feature_names], frame["target"]
    model = build_pipeline(spec, estimator, {}, seed=0).fit(x.iloc[::2], y.iloc[::2])
    predictor = Predictor.of(model)
    assert predictor.derive_labels and predictor.classes == tuple(sorted(y.unique().tolist()))
    got = predictor.predict(x)
    np.testing.assert_array_equal(got.labels, model.predict(x))
    np.testing.assert_allclose(got.proba, model.predict_proba(x))


def test_models_without_the_guarantee_call_both_and_regressors_give_values():
    frame = datasets.load_wine(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    assert Predictor.of(LinearSVC().fit(x, y)).classes is None  # no predict_proba: labels only
    regressor = Predictor.of(
        build_pipeline(
            infer_spec(frame, name="w", target="alcohol", task="regression"),
            "random_forest",
            {"n_estimators": 5},
            seed=0,
        ).fit(frame.drop(columns="alcohol"), frame["alcohol"])
    )
    assert regressor.classes is None and regressor.predict(frame.drop(columns="alcohol")).proba is None
