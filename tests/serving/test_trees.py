"""The compiled trees (serving/trees.py) give HistGradientBoosting's own answers bit for bit.

Real data sets (breast cancer: binary; wine, iris: multiclass; diabetes: regression) with missing values in
training and scoring rows, several tree shapes, early stopping on and off, both ways of walking the trees; and
the demo champion's compiled pipeline answering small calls through them exactly as ``pipeline.predict``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier

from mlops_assets.core.demo import make_batch
from mlops_assets.core.probabilities import Predictor
from mlops_assets.core.spec import demo_spec
from mlops_assets.core.training import build_pipeline
from mlops_assets.serving import protocol, trees
from mlops_assets.serving.fastpath import compile_pipeline
from mlops_assets.serving.trees import SMALL_CALL_ROWS, compile_trees

LOADERS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "iris": load_iris, "diabetes": load_diabetes}
SHAPES = {
    "default": {"max_iter": 40},
    "early_stopping": {"max_iter": 300, "early_stopping": True, "n_iter_no_change": 3, "validation_fraction": 0.25},
    "shallow": {"max_iter": 30, "max_depth": 3, "max_leaf_nodes": None},
    "deep": {"max_iter": 20, "max_leaf_nodes": 64, "min_samples_leaf": 2},
}
WALKS = {"table": 1 << 40, "levels": 0}  # trees.TABLE_CELLS: every call by one way, whatever its size


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The data set with about 10% of its values missing, in the rows trained on and the rows scored."""
    x, y = LOADERS[name](return_X_y=True)
    x = x.copy()
    x[np.random.default_rng(0).random(x.shape) < 0.1] = np.nan
    return x, y


def _fit(
    name: str, shape: str, **params
) -> tuple[HistGradientBoostingClassifier | HistGradientBoostingRegressor, np.ndarray]:
    """The model fitted on three rows in four, and all rows to score (the fourth ones never seen)."""
    x, y = _data(name)
    cls = HistGradientBoostingRegressor if name == "diabetes" else HistGradientBoostingClassifier
    train = np.arange(len(x)) % 4 != 0
    return cls(random_state=0, **SHAPES[shape], **params).fit(x[train], y[train]), x


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris", "diabetes"])
def test_compiled_trees_answer_bit_for_bit_as_sklearn(name: str, shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    estimator, x = _fit(name, shape)
    if shape == "early_stopping":
        assert estimator.n_iter_ < SHAPES[shape]["max_iter"], "the case must really stop early"
    compiled = compile_trees(estimator)
    assert compiled is not None
    for cells in WALKS.values():
        monkeypatch.setattr(trees, "TABLE_CELLS", cells)
        for rows in (x[:1], x[7:13], x):  # one row, a micro-batch, the whole set (NaN in each)
            assert np.array_equal(compiled.raw(rows), estimator._raw_predict(rows))
            got, expected = compiled.predict(rows), Predictor.of(estimator).predict(rows)
            assert np.array_equal(got.labels, expected.labels)
            assert np.array_equal(got.labels, estimator.predict(rows))
            if name == "diabetes":
                assert got.proba is None
            else:
                assert np.array_equal(got.proba, estimator.predict_proba(rows))


def test_a_log_link_regressor_is_reproduced() -> None:
    estimator, x = _fit("diabetes", "default", loss="poisson")
    compiled = compile_trees(estimator)
    assert compiled is not None
    for rows in (x[:1], x):
        assert np.array_equal(compiled.predict(rows).labels, estimator.predict(rows))


@pytest.mark.parametrize("model", ["categorical", "unfitted", "not_boosting"])
def test_models_it_does_not_reproduce_are_not_compiled(model: str) -> None:
    x, y = _data("wine")
    if model == "categorical":  # a split on a category set (bitsets) is sklearn's alone
        x[:, 0] = np.digitize(x[:, 0], [12.0, 13.0, 14.0]).astype(float)
        estimator = HistGradientBoostingClassifier(max_iter=10, categorical_features=[0], random_state=0).fit(x, y)
    elif model == "unfitted":
        estimator = HistGradientBoostingClassifier()
    else:
        estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    assert compile_trees(estimator) is None


def test_wrongly_shaped_input_is_refused_clearly() -> None:
    estimator, x = _fit("iris", "shallow")
    compiled = compile_trees(estimator)
    with pytest.raises(ValueError, match="at least one row of 4 features"):
        compiled.raw(x[:3, :3])
    with pytest.raises(ValueError, match="at least one row"):
        compiled.raw(x[:0])


def test_the_load_proof_refuses_trees_that_differ_from_sklearn() -> None:
    estimator, x = _fit("iris", "shallow")
    compiled = compile_trees(estimator)
    expected = estimator._raw_predict(x)
    assert compiled.reproduces(x, expected)
    ulp_up = replace(compiled, value=np.nextafter(compiled.value, np.inf))  # every leaf one ulp higher
    assert not ulp_up.reproduces(x, expected)
    inner = compiled.left != compiled.right
    other_side = np.where(compiled.missing == compiled.left, compiled.right, compiled.left)
    flipped = np.where(inner, other_side, compiled.missing)  # NaN sent the other way (x has NaN)
    assert not replace(compiled, missing=flipped).reproduces(x, expected)  # the table walk's missing branch
    children = compiled.children.reshape(-1, 3).copy()
    children[:, 2] = flipped
    assert not replace(compiled, children=children.ravel()).reproduces(x, expected)  # the level walk's


def test_the_demo_pipeline_answers_small_calls_through_its_trees() -> None:
    frame = make_batch(2000, seed=1)
    spec = demo_spec()
    x, y = frame[spec.feature_names], frame[spec.target]
    model = build_pipeline(spec, "hist_gradient_boosting", {}, seed=0).fit(x, y)
    schema = protocol.InputSchema.from_signature(infer_signature(x.head(5), model.predict(x.head(5))))
    fast = compile_pipeline(model, schema, x.head(5))
    assert fast is not None and fast.trees is not None
    assert compile_pipeline(model, schema).trees is None  # nothing to prove them on

    scored = make_batch(SMALL_CALL_ROWS + 1, seed=7)[x.columns]  # NaN in its numeric columns
    # Without the estimator's own path, small calls still answer: they go through the trees.
    trees_only = replace(fast, predictor=Predictor(model=None))
    for batch in (scored.head(1), scored.iloc[3:11], scored.head(SMALL_CALL_ROWS)):
        predicted = trees_only.predict([protocol.validate(protocol.Table.from_frame(batch), schema)])
        assert np.array_equal(predicted.labels, model.predict(batch))
        assert np.array_equal(predicted.proba, model.predict_proba(batch))
    big = [protocol.validate(protocol.Table.from_frame(scored), schema)]
    with pytest.raises(AttributeError):  # a bigger call is the estimator's own
        trees_only.predict(big)
    assert np.array_equal(fast.predict(big).proba, model.predict_proba(scored))


@pytest.mark.parametrize(("name", "baseline", "label"), [("breast_cancer", [1e-20], 1), ("iris", [0.0, 1e-20, 0.0], 1)])
def test_a_near_tie_takes_the_label_sklearn_takes(name: str, baseline: list[float], label: int) -> None:
    """Every leaf 0 and a baseline of 1e-20 for one class: the probabilities round to a tie (their argmax would
    say the first class) while sklearn's predict reads the raw predictions (the class with 1e-20)."""
    estimator, x = _fit(name, "shallow")
    for iteration in estimator._predictors:
        for tree in iteration:
            tree.nodes["value"] = 0.0
    estimator._baseline_prediction = np.array([baseline])
    rows = x[:5]
    predicted = compile_trees(estimator).predict(rows)
    assert set(estimator.predict(rows)) == {label} and len(set(predicted.proba[0])) == 1
    assert np.array_equal(predicted.labels, estimator.predict(rows))
    assert np.array_equal(predicted.proba, estimator.predict_proba(rows))
