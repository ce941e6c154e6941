"""The training cap: a training set above ``max_train_rows`` is fitted on a deterministic, stratified sample."""

import pandas as pd

from mlops_assets.core import training
from mlops_assets.core.demo import make_batch
from mlops_assets.core.spec import demo_spec


def test_small_training_sets_are_fitted_whole():
    spec, train = demo_spec(), make_batch(500, seed=1)
    assert training.fitting_rows(train, spec, 1000) is train
    assert training.fitting_rows(train, spec, 0) is train


def test_a_large_training_set_is_sampled_by_row_id_keeping_class_shares():
    spec = demo_spec()
    train = make_batch(20_000, seed=2)
    sample = training.fitting_rows(train, spec, 2000)
    assert abs(len(sample) - 2000) <= 2
    assert abs(sample["default"].mean() - train["default"].mean()) < 0.002
    assert sample["application_id"].is_monotonic_increasing  # the data set's order is kept
    pd.testing.assert_frame_equal(sample, training.fitting_rows(train, spec, 2000))
    shuffled = training.fitting_rows(train.sample(frac=1, random_state=3), spec, 2000)
    assert set(shuffled["application_id"]) == set(sample["application_id"])  # rows are picked by id, not position


def test_a_regression_set_is_capped_exactly():
    spec = demo_spec().model_copy(update={"task": "regression", "classes": None})
    sample = training.fitting_rows(make_batch(5000, seed=4), spec, 1234)
    assert len(sample) == 1234
