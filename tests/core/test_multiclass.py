"""Multiclass training, metrics, cross-validation and the gate as plain functions: five weather-like classes, one
of them rare, string and integer labels, classes absent from a fold, from the training rows or from the holdout."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from mlops_assets.core import evaluation, metrics, training
from mlops_assets.core.features import split
from mlops_assets.core.spec import CategoricalColumn, DatasetSpec, NumericColumn

WEATHER = ["sun", "fog", "rain", "drizzle", "snow"]


def weather(rows: int = 900, rare: int = 15, seed: int = 0) -> tuple[DatasetSpec, pd.DataFrame]:
    """Five classes separable by temperature and humidity; ``rare`` rows of snow, the rest shared evenly."""
    rng = np.random.default_rng(seed)
    counts = [(rows - rare) // 4] * 4 + [rare]
    centres = {"sun": (25, 30), "fog": (10, 95), "rain": (15, 80), "drizzle": (18, 65), "snow": (-5, 85)}
    frames = []
    for label, n in zip(WEATHER, counts, strict=True):
        temp, hum = centres[label]
        frames.append(pd.DataFrame({"temp": rng.normal(temp, 3, n), "humidity": rng.normal(hum, 5, n),
                                    "season": rng.choice(["winter", "summer"], n), "weather": label}))
    frame = pd.concat(frames, ignore_index=True).sample(frac=1, random_state=seed).reset_index(drop=True)
    frame.insert(0, "day", np.arange(len(frame)))
    spec = DatasetSpec(name="weather", task="classification", target="weather", id_column="day",
                       numeric=[NumericColumn(name="temp"), NumericColumn(name="humidity")],
                       categorical=[CategoricalColumn(name="season", categories=["winter", "summer"])],
                       classes=WEATHER)
    return spec, frame


@pytest.fixture(scope="module")
def data():
    spec, frame = weather()
    parts = split(frame, spec)
    return spec, parts.train, parts.holdout


def test_multiclass_metrics_over_the_full_class_list_with_a_class_absent_from_the_holdout(data):
    spec, train, holdout = data
    model = training.fit(train, spec, "hist_gradient_boosting", {}, seed=0).model
    no_snow = holdout[holdout["weather"] != "snow"]
    got = metrics.compute_metrics(model, no_snow, spec)
    assert set(got) == {"accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc"}
    assert all(math.isfinite(v) for v in got.values()), got
    assert got["roc_auc"] > 0.9 and got["accuracy"] > 0.8
    x, y = no_snow[spec.feature_names], no_snow["weather"]
    assert got["log_loss"] == pytest.approx(log_loss(y, model.predict_proba(x), labels=model.classes_))
    notes = metrics.metric_notes(got, no_snow, spec)
    assert notes["roc_auc"] == "roc_auc averaged over 4 of 5 classes: no holdout rows of ['snow']"

    table = metrics.per_class_metrics(model, no_snow, spec).set_index("class")
    assert list(table.index) == WEATHER
    assert table.loc["snow", "support"] == 0 and table.loc["sun", "f1"] > 0.8
    names = metrics.per_class_metric_names(table.reset_index(), "holdout_")
    assert names["holdout_sun_f1"] == table.loc["sun", "f1"] and "holdout_rain_recall" in names


def test_a_class_the_model_never_saw_still_counts(data):
    """Integer labels; class 4 only in the holdout: probabilities get a zero column, nothing shrinks."""
    spec, train, holdout = data
    codes = {label: i for i, label in enumerate(WEATHER)}
    int_spec = spec.model_copy(update={"classes": list(range(5))})
    int_train, int_holdout = (f.assign(weather=f["weather"].map(codes)) for f in (train, holdout))
    model = training.fit(int_train[int_train["weather"] != 4], int_spec, "logistic_regression", {}, seed=0).model
    assert list(model.classes_) == [0, 1, 2, 3]
    proba = metrics.aligned_proba(model, int_holdout[int_spec.feature_names], metrics.class_list(int_spec, model))
    assert proba.shape == (len(int_holdout), 5) and np.all(proba[:, 4] == 0)
    got = metrics.compute_metrics(model, int_holdout, int_spec)
    assert all(math.isfinite(v) for v in got.values()), got
    assert metrics.per_class_metrics(model, int_holdout, int_spec).set_index("class").loc["4", "recall"] == 0


def test_tuning_five_classes_with_a_rare_class(data):
    spec, train, holdout = data
    assert (train["weather"] == "snow").sum() < 20
    result = training.tune(train, spec, "logistic_regression", {}, seed=3, n_candidates=4, cv=3)
    assert result.tuned and len(result.trials) >= 4
    assert all(math.isfinite(t["score"]) for t in result.trials), result.trials
    assert metrics.compute_metrics(result.model, holdout, spec)["roc_auc"] > 0.9


def test_cv_folds_are_capped_by_the_rarest_class(data):
    spec, train, _ = data
    snow = train[train["weather"] == "snow"]
    two_snow = pd.concat([train[train["weather"] != "snow"], snow.head(2)], ignore_index=True)
    model = training.fit(two_snow, spec, "logistic_regression", {}, seed=0).model
    score = training.cv_score(model, two_snow, spec, "roc_auc", folds=3)
    assert math.isfinite(score.value) and score.value > 0.9
    assert score.folds == 2 and score.note == "2 stratified folds instead of 3: class 'snow' has 2 training rows"

    one_snow = pd.concat([train[train["weather"] != "snow"], snow.head(1)], ignore_index=True)
    single = training.cv_score(model, one_snow, spec, "roc_auc", folds=3)
    assert single.folds == 3 and "unstratified KFold(3)" in single.note and math.isfinite(single.value)


def test_a_nan_primary_metric_fails_the_gate_and_says_why(data):
    spec, train, holdout = data
    model = training.fit(train, spec, "logistic_regression", {}, seed=0).model
    only_sun = holdout[holdout["weather"] == "sun"]
    got = metrics.compute_metrics(model, only_sun, spec)
    assert math.isnan(got["roc_auc"]) and got["accuracy"] > 0.8
    notes = metrics.metric_notes(got, only_sun, spec)
    verdict = evaluation.gate(got, None, task="classification", thresholds={"accuracy": 0.5}, max_regression=0.01,
                              notes=notes)
    assert not verdict.passed
    assert verdict.reasons == ["primary metric computed: roc_auc could not be computed: only one class (sun) present "
                               "in the holdout"]


def test_a_missing_primary_metric_fails_the_gate():
    verdict = evaluation.gate({"accuracy": 0.9}, None, task="classification", thresholds={}, max_regression=0.01)
    assert not verdict.passed
    assert verdict.reasons == ["primary metric computed: roc_auc was not computed (computed: accuracy)"]
    nan_threshold = evaluation.gate({"rmse": math.nan}, None, task="regression", thresholds={"rmse": 2.0},
                                    max_regression=0.01)
    assert nan_threshold.reasons == ["threshold: rmse could not be computed"]


def test_a_champion_without_a_primary_metric_is_not_compared_with():
    verdict = evaluation.gate({"roc_auc": 0.9}, {"roc_auc": math.nan}, task="classification",
                              thresholds={"roc_auc": 0.7}, max_regression=0.01)
    assert verdict.passed
    assert verdict.rules[-1].note == "not compared: the champion's roc_auc could not be computed on this holdout"


def test_a_cv_score_no_fold_can_give_fails_instead_of_logging_nan(data, monkeypatch):
    spec, train, _ = data
    model = training.fit(train, spec, "logistic_regression", {}, seed=0).model
    monkeypatch.setattr(training, "cv_scoring", lambda spec, metric: lambda estimator, x, y: math.nan)
    with pytest.raises(ValueError, match=r"cv roc_auc could not be computed in any of 3 folds"):
        training.cv_score(model, train, spec, "roc_auc", folds=3)
