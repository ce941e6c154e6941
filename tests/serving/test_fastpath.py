"""The compiled preprocessing (serving/fastpath.py) answers exactly what ``pipeline.predict`` answers.

Real data sets (wine, breast cancer, diabetes) with categorical columns made from their features, missing
values in both kinds, categories never seen in training, and the platform's own preprocessor and estimators.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from mlops_assets.serving import protocol
from mlops_assets.serving.batching import Batcher
from mlops_assets.serving.fastpath import compile_pipeline
from mlops_assets.serving.models import Slot
from tests.support.tiny_models import data, train

LOADERS = {"wine": load_wine, "breast_cancer": load_breast_cancer, "diabetes": load_diabetes}


def _frame(name: str) -> tuple[pd.DataFrame, pd.Series, list[str], list[str]]:
    """The data set's first 6 features, two of them as text bands, with NaN/None sprinkled in."""
    bunch = LOADERS[name](as_frame=True)
    x, y = bunch.frame[bunch.feature_names[:6]].copy(), bunch.frame["target"]
    numeric, categorical = list(x.columns[:4]), ["band_a", "band_b"]
    for col, src in zip(categorical, x.columns[4:6], strict=True):
        x[col] = pd.qcut(x.pop(src), 4, labels=["low", "mid", "high", "top"]).astype(object)
    rng = np.random.default_rng(0)
    for col in numeric[:2]:
        x.loc[rng.random(len(x)) < 0.1, col] = np.nan
    x.loc[rng.random(len(x)) < 0.1, "band_a"] = None
    return x, y, numeric, categorical


def _pipeline(numeric: list[str], categorical: list[str], estimator) -> Pipeline:
    """The platform's preprocessor (core/features.py build_preprocessor) before ``estimator``."""
    pre = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", pre), ("model", estimator)])


def _slot(model: Pipeline, x: pd.DataFrame) -> Slot:
    schema = protocol.InputSchema.from_signature(infer_signature(x.head(5), model.predict(x.head(5))))
    slot = Slot("1", model, schema, "now", compile_pipeline(model, schema, x.head(5)))
    assert slot.fast is not None, "the platform's pipeline shape must compile"
    return slot


def _rows(slot: Slot, frame: pd.DataFrame) -> protocol.Rows:
    return protocol.validate(protocol.Table.from_frame(frame), slot.schema)


@pytest.mark.parametrize(
    ("data", "estimator"),
    [
        ("wine", HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ("wine", LogisticRegression(max_iter=2000)),
        ("breast_cancer", HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ("breast_cancer", LogisticRegression(max_iter=2000)),
        ("diabetes", HistGradientBoostingRegressor(max_iter=30, random_state=0)),
    ],
)
def test_fast_path_predictions_are_identical_to_pipeline_predict(data: str, estimator) -> None:
    x, y, numeric, categorical = _frame(data)
    model = _pipeline(numeric, categorical, estimator).fit(x, y)
    slot = _slot(model, x)
    scored = x.copy()
    scored.loc[scored.index[::7], "band_b"] = "never-seen"  # unknown categories: all-zero one-hot
    for batch in (scored.head(1), scored.iloc[3:11], scored):  # one row, a micro-batch, the whole set
        predicted = slot.predict([_rows(slot, batch)])
        assert np.array_equal(predicted.labels, model.predict(batch))
        if slot.predictor.classes is not None:
            assert np.array_equal(predicted.proba, model.predict_proba(batch))


def test_merged_requests_and_a_bad_row_behave_as_through_the_pipeline() -> None:
    x, y, numeric, categorical = _frame("breast_cancer")
    model = _pipeline(numeric, categorical, HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(x, y)
    slot = _slot(model, x)
    parts = [x.iloc[i : i + n] for i, n in ((0, 1), (5, 3), (20, 7))]
    bad = x.iloc[:1].assign(**{numeric[2]: np.inf})  # a finite-only check refuses it, as the imputer's does

    async def run() -> list:
        batcher = Batcher()
        try:
            return await asyncio.gather(
                *(batcher.predict(slot, _rows(slot, p)) for p in [*parts, bad]), return_exceptions=True
            )
        finally:
            batcher.close()

    results = asyncio.run(run())
    assert [r.outputs for r in results[:-1]] == [model.predict(p).tolist() for p in parts]
    assert [r.probabilities for r in results[:-1]] == [model.predict_proba(p).tolist() for p in parts]
    assert isinstance(results[-1], ValueError) and "infinity" in str(results[-1])
    with pytest.raises(ValueError, match="infinity"):
        model.predict(bad)


@pytest.mark.parametrize("change", ["scaler", "remainder", "indicator", "unknown_error"])
def test_shapes_it_cannot_reproduce_are_left_to_the_pipeline(change: str) -> None:
    x, y, numeric, categorical = _frame("wine")
    model = _pipeline(numeric, categorical, LogisticRegression(max_iter=2000))
    pre = model.named_steps["preprocess"]
    if change == "scaler":
        pre.transformers[0][1].steps[1] = ("scale", MinMaxScaler())
    elif change == "remainder":
        pre.set_params(remainder="passthrough")
        pre.transformers[0] = (*pre.transformers[0][:2], numeric[:2])  # the other two pass through
    elif change == "indicator":
        pre.transformers[0][1].steps[0] = ("impute", SimpleImputer(add_indicator=True))
    else:
        pre.transformers[1][1].steps[1] = ("onehot", OneHotEncoder(sparse_output=False))
    model.fit(x, y)
    schema = protocol.InputSchema.from_signature(infer_signature(x.head(5), model.predict(x.head(5))))
    assert compile_pipeline(model, schema, x.head(5)) is None


def test_the_gateway_tests_model_takes_the_fast_path() -> None:
    """So tests/serving/test_gateway.py (metrics per version and slot, logs, swaps, canary) runs through it."""
    x, _ = data(50, 0)
    model = train(1)
    schema = protocol.InputSchema.from_signature(infer_signature(x.head(5), model.predict(x.head(5))))
    assert compile_pipeline(model, schema, x.head(5)) is not None
