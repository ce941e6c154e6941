"""Training, gate, deployment and monitoring decisions as plain functions."""

import math

import pandas as pd
import pytest

from mlops_assets.core import evaluation, metrics, monitoring, training, triggers
from mlops_assets.core.demo import make_batch
from mlops_assets.core.deployment import smoke_test
from mlops_assets.core.features import split
from mlops_assets.core.spec import demo_spec


@pytest.fixture(scope="module")
def data():
    spec = demo_spec()
    frame = pd.concat([make_batch(1500, seed=s, start_id=s * 1500) for s in range(2)], ignore_index=True)
    parts = split(frame, spec)
    return spec, parts.train, parts.holdout


def test_training_is_reproducible(data):
    spec, train, holdout = data
    a = training.fit(train, spec, "hist_gradient_boosting", {}, seed=7)
    b = training.fit(train, spec, "hist_gradient_boosting", {}, seed=7)
    ma, mb = metrics.compute_metrics(a.model, holdout, spec), metrics.compute_metrics(b.model, holdout, spec)
    assert ma == mb
    assert set(ma) == {"accuracy", "f1", "log_loss", "roc_auc"}
    assert ma["roc_auc"] > 0.7


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
def test_estimators_from_config(data, estimator):
    spec, train, holdout = data
    result = training.fit(train, spec, estimator, {}, seed=1)
    assert metrics.compute_metrics(result.model, holdout, spec)["roc_auc"] > 0.65


def test_unknown_estimator_names_the_choices(data):
    spec, *_ = data
    with pytest.raises(ValueError, match="linear_regression"):
        training.build_pipeline(spec.model_copy(update={"task": "regression", "classes": None}), "nope", {}, 0)


def test_tuning_records_trials_and_returns_refit_best(data):
    spec, train, holdout = data
    result = training.tune(train, spec, "logistic_regression", {}, seed=3, n_candidates=4, cv=2)
    assert result.tuned and len(result.trials) >= 4
    assert all("C" in t["params"] for t in result.trials)
    assert result.params["C"] in [t["params"]["C"] for t in result.trials]
    assert metrics.compute_metrics(result.model, holdout, spec)["roc_auc"] > 0.7


def test_skops_trust_list_covers_our_models(data):
    spec, train, _ = data
    model = training.fit(train.head(500), spec, "hist_gradient_boosting", {}, seed=0).model
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in training.skops_trusted_types(model)


def test_gate_thresholds_and_regression():
    good = {"roc_auc": 0.82, "accuracy": 0.8}
    assert evaluation.gate(good, None, task="classification", thresholds={"roc_auc": 0.7}, max_regression=0.01).passed
    worse = evaluation.gate({"roc_auc": 0.78}, {"roc_auc": 0.80}, task="classification",
                            thresholds={"roc_auc": 0.7}, max_regression=0.01)
    assert not worse.passed
    assert worse.reasons == ["no regression vs champion: roc_auc = 0.7800, required >= 0.7900"]
    within = evaluation.gate({"roc_auc": 0.795}, {"roc_auc": 0.80}, task="classification",
                             thresholds={"roc_auc": 0.7}, max_regression=0.01)
    assert within.passed
    nan = evaluation.gate({"roc_auc": math.nan}, None, task="classification", thresholds={"roc_auc": 0.5},
                          max_regression=0.0)
    assert not nan.passed
    rmse = evaluation.gate({"rmse": 1.2}, {"rmse": 1.0}, task="regression", thresholds={}, max_regression=0.1)
    assert not rmse.passed


def test_corrupted_labels_fail_the_gate(data):
    spec, train, holdout = data
    noisy = train.copy()
    noisy[spec.target] = noisy[spec.target].sample(frac=1, random_state=0).to_numpy()  # labels shuffled
    model = training.fit(noisy, spec, "hist_gradient_boosting", {}, seed=0).model
    scores = metrics.compute_metrics(model, holdout, spec)
    assert not evaluation.gate(scores, None, task="classification", thresholds={"roc_auc": 0.7},
                               max_regression=0.01).passed


def test_smoke_test_compares_predictions():
    assert smoke_test([0, 1, 1], [0, 1, 1]).passed
    bad = smoke_test([0, 1, 1], [0, 0, 1])
    assert not bad.passed and bad.mismatches == 1
    assert not smoke_test([0.5, 1.0], [0.5]).passed
    assert smoke_test([0.5, 1.0], [0.5, 1.0]).passed


def test_wilson_interval_and_decay():
    low, high = monitoring.wilson_interval(80, 100)
    assert 0.70 < low < 0.8 < high < 0.88
    live = monitoring.LiveMetrics(400, "accuracy", 0.62, 0.57, 0.67)
    assert monitoring.decay_detected(live, 0.80, tolerance=0.02, min_rows=100)
    assert not monitoring.decay_detected(live, 0.68, tolerance=0.02, min_rows=100)
    assert not monitoring.decay_detected(live, 0.80, tolerance=0.02, min_rows=1000)


def test_live_metrics_join_predictions_and_labels():
    preds = pd.DataFrame({"request_id": ["a", "a", "b"], "row": [0, 1, 0], "prediction": [1, 0, 1]})
    labels = pd.DataFrame({"request_id": ["a", "b", "c"], "row": [1, 0, 0], "label": [0, 0, 1]})
    joined = monitoring.join_feedback(preds, labels)
    assert len(joined) == 2
    live = monitoring.live_metrics(joined, "classification")
    assert live.labeled_rows == 2 and live.value == 0.5


def test_trigger_decisions():
    assert triggers.unseen_files({"a": "1:1", "b": "2:2"}, {"a": "1:1"}) == ["b"]
    assert triggers.unseen_files({"a": "1:2"}, {"a": "1:1"}) == ["a"]
    assert triggers.monitoring_due(400, 150, 200) and not triggers.monitoring_due(300, 150, 200)
    meta = {"dataset_drift": True, "champion_version": "3"}
    assert triggers.drift_retrain_key(meta, "3") == "drift:v3"
    assert triggers.drift_retrain_key(meta, "4") is None  # evidence about an older champion is stale
    assert triggers.drift_retrain_key({"dataset_drift": False, "champion_version": "3"}, "3") is None
    assert triggers.decay_retrain_key({"decayed": True, "champion_version": 2}, "2") == "decay:v2"
