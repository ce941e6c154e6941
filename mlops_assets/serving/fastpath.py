"""The platform's preprocessing run on a request's typed arrays, without a DataFrame or sklearn's validation.

The platform's pipelines are a ColumnTransformer of imputers, scalers and one-hot encoders before one
estimator. On a few rows, the transformer's pandas column selection and each step's input validation cost
about 80% of a prediction (profiled under ``benchmarks/serving.py``), while the arithmetic is a handful of
numpy operations. ``compile_pipeline`` turns such a fitted pipeline into exactly those operations: the same
float64 operations in the same order as each fitted step's own ``transform`` (NaN filled with the fitted
statistic, ``(x - mean_) / scale_``, one column per fitted category with an unknown value all zeros), and
hands the result to the fitted estimator. Anything outside these steps and options is not compiled (None): the
gateway then calls ``pipeline.predict`` as before. A compiled pipeline must also reproduce the transformer's
own output on the model's input example at load, bit for bit, or it is dropped; the tests compare predictions
with ``pipeline.predict`` on real data sets.

A HistGradientBoosting estimator's trees are also compiled (``serving/trees.py``) and answer calls of up to
``SMALL_CALL_ROWS`` rows, where sklearn's tree-by-tree prediction costs most; they are kept only when they give
the estimator's own raw predictions bit for bit on the transformed input example and on it with every column
missing (the trees' missing-value branches). Without an input example there is nothing to prove them on, so
the estimator's own prediction is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_assets.core.probabilities import Predicted, Predictor
from mlops_assets.serving import protocol
from mlops_assets.serving.trees import SMALL_CALL_ROWS, CompiledTrees, compile_trees

Step = Callable[[np.ndarray], np.ndarray]
LINEAR_MODELS = (LogisticRegression, LinearRegression, Ridge)  # predict is one matrix product (and a link)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _imputer(step: SimpleImputer, kind: str) -> Step | None:
    """SimpleImputer.transform: NaN (and only NaN: None is not missing to it either) -> the fitted statistic."""
    if step.add_indicator or not _is_nan(step.missing_values):
        return None
    stats = step.statistics_
    if kind == protocol.FLOAT and stats.dtype.kind == "f" and not np.isnan(stats).any():
        return lambda x: np.where(np.isnan(x), stats, x)
    if kind == protocol.STRING and all(type(v) is str for v in stats):
        return lambda x: np.where(x != x, stats, x)  # an object array: NaN is the value unequal to itself
    return None


def _scaler(step: StandardScaler, kind: str) -> Step | None:
    """StandardScaler.transform: ``x -= mean_`` then ``x /= scale_`` (each only when fitted with it)."""
    if kind != protocol.FLOAT:
        return None
    mean, scale = step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None

    def scaled(x: np.ndarray) -> np.ndarray:
        if mean is not None:
            x = x - mean
        if scale is not None:
            x = x / scale
        return x

    return scaled


def _one_hot(step: OneHotEncoder, kind: str) -> Step | None:
    """OneHotEncoder.transform (dense, no drop, no infrequent categories, unknown -> all zeros); None, which
    the imputer leaves alone, is a category when it was one in training, else unknown, as there."""
    if (
        kind != protocol.STRING
        or step.handle_unknown != "ignore"
        or step.drop_idx_ is not None
        or step._infrequent_enabled
        or step.sparse_output
    ):
        return None
    categories = [np.asarray(c, dtype=object) for c in step.categories_]
    if not all(v is None or type(v) is str for c in categories for v in c):  # NaN would need its own match
        return None
    dtype = step.dtype

    def encoded(x: np.ndarray) -> np.ndarray:
        return np.hstack([(x[:, [j]] == c[None, :]).astype(dtype) for j, c in enumerate(categories)])

    return encoded


_STEPS: dict[type, Callable[[Any, str], Step | None]] = {
    SimpleImputer: _imputer,
    StandardScaler: _scaler,
    OneHotEncoder: _one_hot,
}


@dataclass(frozen=True)
class _Branch:
    columns: tuple[str, ...]
    kind: str
    steps: tuple[Step, ...]

    def run(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        dtype = np.float64 if self.kind == protocol.FLOAT else object
        x = np.column_stack([arrays[c] for c in self.columns]).astype(dtype, copy=False)
        if self.kind == protocol.FLOAT and np.isinf(x).any():  # each first step's validation refuses these
            raise ValueError(
                f"Input X contains infinity or a value too large for {x.dtype!r} (columns {list(self.columns)})"
            )
        for step in self.steps:
            x = step(x)
        return x


@dataclass(frozen=True)
class FastPipeline:
    """A compiled pipeline: its preprocessing as numpy operations, then its fitted estimator (its compiled
    trees for small calls when it has some)."""

    branches: tuple[_Branch, ...]
    predictor: Predictor  # of the pipeline's final estimator, fed the transformed array
    trees: CompiledTrees | None = None  # the estimator's trees, proved at load (see compile_pipeline)

    @property
    def light(self) -> bool:
        """Whether a small call is a few numpy operations (compiled trees, or a linear model's product): cheap
        enough to run on the gateway's event loop (``serving.batching``). A random forest's ~100 tree calls
        (~4 ms) are not."""
        return self.trees is not None or isinstance(self.predictor.model, LINEAR_MODELS)

    def transform(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.hstack([branch.run(arrays) for branch in self.branches])

    def predict(self, parts: Sequence[protocol.Rows]) -> Predicted:
        """The pipeline's answer for the rows of several requests checked against the same schema."""
        if len(parts) == 1:
            arrays = parts[0].arrays
        else:
            arrays = {col: np.concatenate([p.arrays[col] for p in parts]) for col in parts[0].arrays}
        x = self.transform(arrays)
        if self.trees is not None and len(x) <= SMALL_CALL_ROWS:
            return self.trees.predict(x)
        return self.predictor.predict(x)


def _branch(transformer: Any, columns: Any, kinds: Mapping[str, str]) -> _Branch | None:
    if not isinstance(columns, list | tuple) or not columns or not all(isinstance(c, str) for c in columns):
        return None
    column_kinds = {kinds.get(c) for c in columns}
    if len(column_kinds) != 1 or None in column_kinds:
        return None
    kind = column_kinds.pop()
    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    compiled = []
    for step in steps:
        if step is None or step == "passthrough":
            continue
        make = _STEPS.get(type(step))
        fn = make(step, kind) if make else None
        if fn is None:
            return None
        compiled.append(fn)
    if not compiled:  # the first step's input validation is what refuses infinity (see _Branch.run)
        return None
    return _Branch(tuple(columns), kind, tuple(compiled))


def compile_pipeline(
    model: Any, schema: protocol.InputSchema, example: pd.DataFrame | None = None
) -> FastPipeline | None:
    """The fast form of ``model``, or None when it is not one this module reproduces exactly."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    ct, estimator = model.steps[0][1], model.steps[1][1]
    if type(ct) is not ColumnTransformer or ct.sparse_output_ or estimator in (None, "passthrough"):
        return None
    kinds = dict(schema.kinds)
    branches = []
    for _, transformer, columns in ct.transformers_:
        if transformer == "drop":
            continue
        branch = _branch(transformer, columns, kinds)
        if branch is None:
            return None
        branches.append(branch)
    if not branches:
        return None
    fast = FastPipeline(tuple(branches), Predictor.of(estimator))
    if example is None:
        return fast
    if not _reproduces(fast, ct, schema, example):
        return None
    return replace(fast, trees=_proved_trees(fast, estimator, schema, example))


def _reproduces(fast: FastPipeline, ct: ColumnTransformer, schema: protocol.InputSchema, example: pd.DataFrame) -> bool:
    """The compiled transform gives the transformer's own output on ``example``, bit for bit."""
    try:
        rows = protocol.validate(protocol.Table.from_frame(example), schema)
        expected = ct.transform(rows.frame())
        got = fast.transform(rows.arrays)
    except Exception:  # an example the fast form cannot take: keep the pipeline's own path
        return False
    return (
        isinstance(expected, np.ndarray)
        and expected.shape == got.shape
        and np.array_equal(expected, got.astype(expected.dtype, copy=False), equal_nan=True)
    )


def _proved_trees(
    fast: FastPipeline, estimator: Any, schema: protocol.InputSchema, example: pd.DataFrame
) -> CompiledTrees | None:
    """The estimator's compiled trees when their raw predictions (by either walk) equal its own
    ``_raw_predict``, bit for bit, on the transformed example and on it with every column missing; else None
    (sklearn's path)."""
    try:  # sklearn's private tree attributes may change shape with its version: then keep its own path
        trees = compile_trees(estimator)
        if trees is None:
            return None
        x = np.asarray(fast.transform(protocol.validate(protocol.Table.from_frame(example), schema).arrays), float)
        probe = np.vstack([x, np.full_like(x, np.nan)])
        return trees if trees.reproduces(probe, estimator._raw_predict(probe)) else None
    except Exception:  # trees or a probe this module cannot take: keep the estimator's own prediction
        return None
