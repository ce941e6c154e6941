"""Model training: estimators chosen by name, task-appropriate metrics, and a budgeted tuning loop.

Everything is seeded, so the same dataset version, config and code give the same model and metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (enables the import below)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import HalvingRandomSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from mlops_assets.core.contracts import TRUSTED_SKOPS_TYPES
from mlops_assets.core.features import build_preprocessor, xy
from mlops_assets.core.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, cv_folds, cv_scoring, plain_value
from mlops_assets.core.spec import DatasetSpec

ESTIMATORS: dict[str, dict[str, type[BaseEstimator]]] = {
    "logistic_regression": {"classification": LogisticRegression},
    "linear_regression": {"regression": Ridge},
    "random_forest": {"classification": RandomForestClassifier, "regression": RandomForestRegressor},
    "hist_gradient_boosting": {"classification": HistGradientBoostingClassifier,
                               "regression": HistGradientBoostingRegressor},
}

# Search spaces for the tuning loop, as lists sampled by HalvingRandomSearchCV (keys are Pipeline params).
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "logistic_regression": {"model__C": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]},
    "linear_regression": {"model__alpha": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "random_forest": {"model__n_estimators": [50, 100, 200], "model__max_depth": [4, 8, 12, None],
                      "model__min_samples_leaf": [1, 5, 20]},
    "hist_gradient_boosting": {"model__learning_rate": [0.03, 0.06, 0.1, 0.2],
                               "model__max_leaf_nodes": [7, 15, 31, 63],
                               "model__l2_regularization": [0.0, 0.1, 1.0],
                               "model__max_iter": [100, 200, 300]},
}

# Training rows a model is fitted on at most (also by tuning and cross-validation). Fitting time and memory grow
# with the rows while a tabular model gains little past a million of them, so a bigger training set is sampled
# down to this many; smaller ones are used whole. 10^6 rows keep a 10^7-row data set well inside 24 GB.
DEFAULT_MAX_TRAIN_ROWS = 1_000_000
SAMPLE_HASH_KEY = "mlops.fit.sample"  # 16 bytes; differs from the holdout split's hash, so the two are independent

# The target below which the tuning loop starts, when the run config names none. Regression has no
# universal RMSE target (it is in the label's units), so tuning there starts only when a target is set.
DEFAULT_TARGET = {"classification": 0.75, "regression": None}


def estimator_for(name: str, task: str) -> type[BaseEstimator]:
    try:
        return ESTIMATORS[name][task]
    except KeyError:
        allowed = sorted(k for k, v in ESTIMATORS.items() if task in v)
        raise ValueError(f"estimator {name!r} is not available for {task}; choose one of {allowed}") from None


def build_pipeline(spec: DatasetSpec, estimator: str, params: dict[str, Any], seed: int) -> Pipeline:
    cls = estimator_for(estimator, spec.task)
    kwargs = dict(params)
    if "random_state" in cls().get_params():
        kwargs.setdefault("random_state", seed)
    if cls is LogisticRegression:
        kwargs.setdefault("max_iter", 2000)
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", cls(**kwargs))])


def meets_target(metrics: dict[str, float], metric: str, target: float) -> bool:
    value = metrics.get(metric, float("nan"))
    if np.isnan(value):
        return False
    return value >= target if HIGHER_IS_BETTER[metric] else value <= target


@dataclass
class TrainResult:
    model: Pipeline
    params: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    tuned: bool = False


def fitting_rows(train: pd.DataFrame, spec: DatasetSpec, max_rows: int | None) -> pd.DataFrame:
    """``sample_rows`` of one in-memory table (returned as is when it needs no sampling)."""
    if not max_rows or len(train) <= max_rows:
        return train
    return sample_rows(lambda columns: iter([train if columns is None else train[columns]]), spec, max_rows)[0]


ChunkReader = Callable[[list[str] | None], Iterable[pd.DataFrame]]


def sample_rows(read: ChunkReader, spec: DatasetSpec, max_rows: int | None,
                total: int | None = None) -> tuple[pd.DataFrame, int]:
    """The rows to fit on, and how many rows there are, from a table read chunk by chunk: all of them up to
    ``max_rows`` (0 or None: no cap), else about ``max_rows`` chosen by a hash of the row id, in proportion to
    each class for a classifier (every class keeps a row), in the table's order.

    ``read(columns)`` yields the table's chunks in order (``None``: every column). A first pass reads only the
    id (or the features) and the label, 9 to 16 bytes a row; the second keeps the chosen rows of each chunk, so
    memory is bounded by the sample, not the table. A hash, not a random draw: the same dataset version always
    gives the same sample, so the training fingerprint still means the same model. ``total``, the table's row
    count when the caller knows it (a Parquet footer), spares a table that needs no sampling the first pass.
    """
    if not max_rows or (total is not None and total <= max_rows):
        frames = list(read(None))
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), sum(len(f) for f in frames)
    key_columns = [spec.id_column] if spec.id_column else spec.feature_names + [spec.target]
    keys, labels = [], []
    for chunk in read(list(dict.fromkeys([*key_columns, spec.target]))):
        keys.append(pd.util.hash_pandas_object(chunk[key_columns], index=False,
                                               hash_key=SAMPLE_HASH_KEY).to_numpy())
        if spec.task == "classification":
            labels.append(chunk[spec.target].to_numpy())
    total = sum(len(k) for k in keys)
    if total <= max_rows:
        return sample_rows(read, spec, 0)[0], total
    mask = _sample_mask(np.concatenate(keys), np.concatenate(labels) if labels else None, max_rows)
    del keys, labels
    picked, start = [], 0
    for chunk in read(None):
        picked.append(chunk.loc[mask[start:start + len(chunk)]])
        start += len(chunk)
    return pd.concat(picked, ignore_index=True), total


def _sample_mask(keys: np.ndarray, labels: np.ndarray | None, max_rows: int) -> np.ndarray:
    """Rows with the smallest keys: ``max_rows`` of them, or per class a share of ``max_rows`` equal to the
    class's share of the rows (at least one)."""
    if labels is None:
        groups, quotas = [np.arange(len(keys))], [max_rows]
    else:
        classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        quotas = np.clip(np.round(counts * max_rows / len(keys)).astype(np.int64), 1, counts)
        groups = [np.flatnonzero(codes == c) for c in range(len(classes))]
    mask = np.zeros(len(keys), dtype=bool)
    for rows, quota in zip(groups, quotas, strict=True):
        mask[rows[np.argsort(keys[rows], kind="stable")[:quota]]] = True
    return mask


def fit(train: pd.DataFrame, spec: DatasetSpec, estimator: str, params: dict[str, Any], seed: int) -> TrainResult:
    pipeline = build_pipeline(spec, estimator, params, seed)
    x, y = xy(train, spec)
    pipeline.fit(x, y)
    return TrainResult(model=pipeline, params={"estimator": estimator, **params})


def tune(
    train: pd.DataFrame,
    spec: DatasetSpec,
    estimator: str,
    base_params: dict[str, Any],
    seed: int,
    *,
    n_candidates: int = 12,
    cv: int = 3,
    space: dict[str, list[Any]] | None = None,
) -> TrainResult:
    """Successive halving over the estimator's search space within a candidate budget.

    ``space`` (estimator parameter -> candidate values) replaces the built-in search space when given.
    Returns the refitted best pipeline and one record per trial (params, score, resources) for tracking.
    """
    grid = {f"model__{k}": list(v) for k, v in space.items()} if space else SEARCH_SPACES[estimator]
    if not grid or any(not values for values in grid.values()):
        raise ValueError("the search space needs at least one parameter with at least one value")
    pipeline = build_pipeline(spec, estimator, base_params, seed)
    x, y = xy(train, spec)
    # 'exhaust' sizes the first rung so the last one uses all rows; the default ('smallest') would score the
    # first rung on a handful of rows, i.e. on noise.
    folds = cv_folds(spec, y, cv, seed).splitter
    search = HalvingRandomSearchCV(pipeline, grid, n_candidates=n_candidates, cv=folds,
                                   scoring=cv_scoring(spec, PRIMARY_METRIC[spec.task]), random_state=seed, n_jobs=1,
                                   refit=True, min_resources="exhaust", error_score="raise")
    search.fit(x, y)
    res = search.cv_results_
    trials = [
        {"params": {k.removeprefix("model__"): plain_value(v) for k, v in res["params"][i].items()},
         "score": float(res["mean_test_score"][i]), "iteration": int(res["iter"][i]),
         "n_resources": int(res["n_resources"][i])}
        for i in range(len(res["params"]))
    ]
    best = {k.removeprefix("model__"): plain_value(v) for k, v in search.best_params_.items()}
    return TrainResult(model=search.best_estimator_, params={"estimator": estimator, **base_params, **best},
                       trials=trials, tuned=True)


@dataclass(frozen=True)
class CvScore:
    """A cross-validated score, the folds it came from, and why they differ from the configured ones."""

    value: float
    folds: int
    note: str = ""


def cv_score(model: Pipeline, train: pd.DataFrame, spec: DatasetSpec, metric: str, folds: int) -> CvScore:
    """The mean score of unfitted copies of ``model`` over unshuffled (stratified) folds. Folds without a
    defined score are left out and named; a score no fold could give raises, so NaN is never logged as one."""
    x, y = xy(train, spec)
    plan = cv_folds(spec, y, folds)
    scores = np.abs(cross_val_score(clone(model), x, y, cv=plan.splitter, scoring=cv_scoring(spec, metric),
                                    n_jobs=1, error_score="raise"))
    defined = scores[~np.isnan(scores)]
    if not defined.size:
        raise ValueError(f"cv {metric} could not be computed in any of {len(scores)} folds: every test fold held "
                         "a single class; land more labelled rows of the rare classes or lower cv_folds")
    notes = [plan.note] if plan.note else []
    if defined.size < scores.size:
        notes.append(f"{scores.size - defined.size} of {scores.size} folds had no {metric} (a single class)")
    return CvScore(float(defined.mean()), int(scores.size), "; ".join(notes))


def skops_trusted_types(model: Pipeline) -> list[str]:
    """The non-default types a model needs trusted to load with skops; refuses types outside the allowlist."""
    import skops.io as sio

    untrusted = set(sio.get_untrusted_types(data=sio.dumps(model)))
    unknown = sorted(untrusted - TRUSTED_SKOPS_TYPES)
    if unknown:
        raise ValueError(f"the model contains types the platform does not trust for skops loading: {unknown}")
    return sorted(untrusted)
