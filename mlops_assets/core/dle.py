"""Direct loss estimation (DLE, NannyML's method) for regressors: models of the champion's error fitted on its
reference data, whose mean prediction over a chunk is the chunk's estimated MAE / RMSE. The bands and the verdict
are ``core.estimation``'s."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import ThreadpoolController

from mlops_assets.core.estimation import BOOTSTRAP_ROUNDS, BOOTSTRAP_ROWS


@dataclass
class DLE:
    """Direct loss estimation: gradient-boosted models of the champion's absolute and squared error given its
    inputs and its prediction, fitted on the reference data; a chunk's MAE/RMSE is the mean predicted loss."""

    abs_model: HistGradientBoostingRegressor
    sq_model: HistGradientBoostingRegressor
    reference: dict[str, float]
    unit_error: dict[str, float]
    reference_rows: int
    task: str = field(default="regression", init=False)

    @classmethod
    def fit(cls, x: pd.DataFrame, y_pred: Sequence[float], y_true: Sequence[float], *, seed: int = 0) -> DLE:
        pred, truth = np.asarray(y_pred, dtype=float), np.asarray(y_true, dtype=float)
        features = _loss_features(x, pred)
        err = pred - truth
        with _one_thread():  # OpenMP threads only spin-wait on a busy shared machine; one is as fast
            models = [
                # Smaller than NannyML's LightGBM defaults (100 trees of 31 leaves at rate 0.1): 20 trees of 15
                # leaves at rate 0.35 estimate as closely on the benchmark (benchmarks/estimation.py, two seeds)
                # and fit and predict ~8x faster. Measured and rejected: 63 bins, or fitting on a 20,000-row
                # sample (2-4x further from realized), 15 trees (RMSE further), and 2 threads (spin-waits on a
                # shared machine: 10x slower).
                HistGradientBoostingRegressor(
                    max_iter=20,
                    learning_rate=0.35,
                    max_leaf_nodes=15,
                    min_samples_leaf=20,
                    early_stopping=False,
                    random_state=seed,
                    categorical_features="from_dtype",
                ).fit(features, target)
                for target in (np.abs(err), err**2)
            ]
        rng = np.random.default_rng(seed)
        m = min(len(err), BOOTSTRAP_ROWS)
        draws = [_loss_metrics(err[s]) for s in (rng.integers(0, len(err), m) for _ in range(BOOTSTRAP_ROUNDS))]
        unit = {name: float(np.std([d[name] for d in draws], ddof=1) * math.sqrt(m)) for name in draws[0]}
        return cls(models[0], models[1], _loss_metrics(err), unit, len(err))

    def estimate(self, x: pd.DataFrame, y_pred: Sequence[float]) -> dict[str, float]:
        if len(x) == 0:
            return {"mae": math.nan, "rmse": math.nan}
        features = _loss_features(x, np.asarray(y_pred, dtype=float))
        with _one_thread():
            abs_err = np.clip(self.abs_model.predict(features), 0.0, None)
            sq_err = np.clip(self.sq_model.predict(features), 0.0, None)
        return {"mae": float(abs_err.mean()), "rmse": float(math.sqrt(sq_err.mean()))}

    def realized(self, y_pred: Sequence[float], y_true: Sequence[float]) -> dict[str, float]:
        return _loss_metrics(np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float))


@functools.cache
def _threads() -> ThreadpoolController:
    """One controller for the process: building it scans the loaded native libraries (~8 ms), which every
    chunk's ``threadpool_limits`` call paid again."""
    return ThreadpoolController()


def _one_thread() -> Any:
    return _threads().limit(limits=1)


def _loss_features(x: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    frame = x.reset_index(drop=True).copy()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("category")
    frame["__prediction__"] = pred
    return frame


def _loss_metrics(err: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(math.sqrt(np.mean(err**2)))}
