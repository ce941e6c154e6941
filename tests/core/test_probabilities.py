"""Labels derived from probabilities equal the estimator's own predict on the platform's pipelines."""

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
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


def test_the_log_reader_spreads_probabilities_into_one_column_per_class(tmp_path):
    from mlops_assets.core.predictions import PREDICTIONS, JsonlLog, prediction_line, read_predictions, utc_now

    log = JsonlLog(tmp_path, PREDICTIONS)
    common = {"model_name": "m", "model_version": "1", "columns": ["x"], "latency_ms": 1.0}
    log.write(prediction_line("a", slot="champion", data=[[1.0], [2.0]], outputs=["cat", "dog"],
                              probabilities=[[0.9, 0.1], [0.2, 0.8]], classes=["cat", "dog"], **common))
    log.write(prediction_line("b", slot="champion", data=[[3.0]], outputs=["cat"], **common))  # an older line
    log.write(prediction_line("c:0", slot="batch", data=[[4.0]], outputs=["bird"],
                              probabilities=[[0.1, 0.1, 0.8]], classes=["cat", "dog", "bird"], **common))
    log.close()
    frame = read_predictions(tmp_path, utc_now().date())
    assert list(frame.columns) == ["request_id", "row", "ts", "model_version", "slot", "prediction", "latency_ms",
                                   "error", "proba_cat", "proba_dog", "proba_bird", "x"]
    assert frame["proba_dog"].tolist()[:2] == [0.1, 0.8] and np.isnan(frame.loc[2, "proba_cat"])
    assert frame.loc[3, ["proba_cat", "proba_dog", "proba_bird"]].tolist() == [0.1, 0.1, 0.8]
    assert frame["slot"].tolist() == ["champion", "champion", "champion", "batch"]


def test_a_tie_in_the_rounded_probabilities_takes_predicts_label():
    """A decision of 1e-20 rounds both probabilities to 0.5: the argmax says the first class, ``predict`` (the
    sign of the decision) the second; the tied row gets predict's label, the others keep the argmax."""
    bunch = datasets.load_breast_cancer()
    x, y = bunch.data[:, :3], bunch.target
    model = LogisticRegression(max_iter=5000).fit(x, y)
    model.coef_[:] = 0.0
    model.intercept_[:] = 1e-20
    model.coef_[0, 0] = -1e-3  # rows differ: a large first feature decides the first class outright
    rows = np.vstack([np.zeros((1, 3)), x[:4]])
    predictor = Predictor.of(model)
    assert predictor.derive_labels
    got = predictor.predict(rows)
    assert got.proba[0, 0] == got.proba[0, 1] == 0.5 and model.predict(rows)[0] == 1
    np.testing.assert_array_equal(got.labels, model.predict(rows))
    np.testing.assert_array_equal(got.proba, model.predict_proba(rows))
