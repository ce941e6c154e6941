"""Realized metrics of a window against scikit-learn's own on the same rows, with intervals and label coverage."""

import math
import tempfile
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_assets.core.predictions import PREDICTIONS, JsonlLog, prediction_line, read_predictions
from mlops_assets.core.probabilities import proba_column
from mlops_assets.core.realized import (
    NO_PROBABILITIES,
    IntervalRule,
    expected_calibration_error,
    label_coverage,
    realized_metrics,
)


def _served(loader, *, shuffle_classes: bool = False):
    """A model's served rows as monitoring reads them back from the log: one line written as the gateway writes
    it (probabilities in the line's class order), read by ``read_predictions`` (a ``proba_<class>`` column per
    class), with the labels."""
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500)).fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    classes = [int(c) for c in model.classes_]
    order = list(reversed(range(len(classes)))) if shuffle_classes else list(range(len(classes)))
    line = prediction_line("r1", model_name="m", model_version="1", slot="champion",
                           columns=[f"x{i}" for i in range(x.shape[1])], data=x_test.tolist(),
                           outputs=model.predict(x_test).tolist(), latency_ms=1.0,
                           probabilities=proba[:, order].tolist(), classes=[classes[i] for i in order])
    served = date(2026, 1, 2)
    with tempfile.TemporaryDirectory() as root:
        log = JsonlLog(root, PREDICTIONS)
        log.write(line | {"ts": f"{served.isoformat()}T12:00:00+00:00"})
        log.close()
        frame = read_predictions(root, served)
    joined = frame.assign(label=[float(v) for v in y_test])  # labels arrive as JSON numbers
    return joined, y_test, proba, classes


def _inside(metric: dict) -> bool:
    return metric["ci_low"] <= metric["value"] <= metric["ci_high"]


def test_binary_metrics_equal_sklearns_and_carry_intervals():
    joined, y, proba, classes = _served(load_breast_cancer)
    out = realized_metrics(joined, "classification", classes)
    pred = proba.argmax(axis=1)
    assert out["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred), abs=1e-6)
    assert out["accuracy"]["interval"] == "wilson"
    assert out["f1_macro"]["value"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    assert out["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=1e-6)
    assert out["log_loss"]["value"] == pytest.approx(log_loss(y, proba), abs=1e-6)
    for name in ("accuracy", "f1_macro", "roc_auc", "log_loss", "ece"):
        assert _inside(out[name]), (name, out[name])
        assert out[name]["rows"] == len(y)
    assert out == realized_metrics(joined, "classification", classes)  # fixed seed: the same interval again


def test_multiclass_roc_auc_is_one_vs_rest_over_the_spec_classes_whatever_order_the_line_logged():
    joined, y, proba, classes = _served(load_wine, shuffle_classes=True)
    out = realized_metrics(joined, "classification", classes, IntervalRule(resamples=100))
    assert out["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"), abs=1e-6)
    assert out["log_loss"]["value"] == pytest.approx(log_loss(y, proba), abs=1e-6)
    assert out["f1_macro"]["value"] == pytest.approx(f1_score(y, proba.argmax(axis=1), average="macro"), abs=1e-6)
    assert out["ece"]["value"] == pytest.approx(expected_calibration_error(np.asarray(y), proba), abs=1e-6)
    assert _inside(out["roc_auc"]) and out["roc_auc"]["interval"] == "bootstrap (100 resamples)"


def test_calibration_error_is_zero_when_confidence_matches_accuracy():
    y = np.array([0, 0, 0, 1])  # 75 % correct at confidence 0.75
    proba = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1, 1, 1, 1]), proba) == pytest.approx(0.75)


def test_without_logged_probabilities_the_probability_metrics_say_so():
    joined, y, proba, classes = _served(load_breast_cancer)
    proba_columns = [proba_column(c) for c in classes]
    out = realized_metrics(joined.drop(columns=proba_columns), "classification", classes)
    assert out["accuracy"]["value"] is not None
    for name in ("roc_auc", "log_loss", "ece"):
        assert out[name]["value"] is None and out[name]["note"] == NO_PROBABILITIES
    half = joined.copy()
    half.loc[half.index % 2 == 0, proba_columns] = np.nan  # as read back where a row's line logged none
    partial = realized_metrics(half, "classification", classes)
    assert partial["roc_auc"]["rows"] == len(joined) // 2 and "with logged probabilities" in partial["roc_auc"]["note"]


def test_regression_rmse_and_mae_equal_sklearns():
    x, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(x[:300], y[:300]).predict(x[300:])
    joined = pd.DataFrame({"prediction": pred, "label": y[300:]})
    out = realized_metrics(joined, "regression", None)
    assert out["rmse"]["value"] == pytest.approx(root_mean_squared_error(y[300:], pred), abs=1e-5)
    assert out["mae"]["value"] == pytest.approx(mean_absolute_error(y[300:], pred), abs=1e-5)
    assert _inside(out["rmse"]) and _inside(out["mae"])
    assert realized_metrics(joined.iloc[0:0], "regression", None) == {}


def test_label_coverage_in_numbers_and_words():
    coverage = label_coverage(400, 164, "day")
    assert math.isclose(coverage["share"], 0.41)
    assert coverage["text"] == "41% of the day's predictions have labels (164 of 400)"
    assert label_coverage(0, 0, "chunk")["share"] is None
