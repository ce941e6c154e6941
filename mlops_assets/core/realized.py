"""Realized performance of a window of served predictions from their delivered labels: every metric with an
interval, and how much of the window has labels at all.

Classifiers: accuracy (Wilson interval, exact for a proportion), macro F1, ROC AUC (binary, or one-vs-rest over
the spec's classes), log loss and expected calibration error (percentile bootstrap with a fixed seed, so the same
rows always give the same interval). The probability metrics read the class probabilities the gateway or batch
scoring logged with each row, as ``read_predictions`` spreads them (a ``proba_<class>`` column per class, NaN
where a row's line has none); where none were logged they are reported as not available, never guessed from
class labels. Regressors: RMSE (chi-square interval) and MAE (bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.metrics import ovr_roc_auc
from mlops_assets.core.monitoring import live_metrics
from mlops_assets.core.probabilities import PROBA_PREFIX

NO_PROBABILITIES = "not available (no probabilities logged)"
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class IntervalRule:
    confidence: float = 0.95
    resamples: int = 200  # bootstrap resamples
    seed: int = 0


def _key(value: Any) -> Any:
    """A class value as labels and logged classes compare: numbers as numbers (1, 1.0 and "1" agree)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else str(value)


def class_index(values: pd.Series, classes: list[Any]) -> np.ndarray:
    """Each value's position in ``classes`` (-1 for a value the spec does not list)."""
    positions = {_key(c): i for i, c in enumerate(classes)}
    return np.array([positions.get(_key(v), -1) for v in values], dtype=int)


def probability_matrix(joined: pd.DataFrame, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Rows x spec classes probabilities from the ``proba_<class>`` columns, each row renormalised over the spec's
    classes, and which rows had any (a class is matched as ``_key`` compares, so ``proba_1.0`` is class 1)."""
    positions = {_key(c): i for i, c in enumerate(classes)}
    matrix = np.zeros((len(joined), len(classes)))
    for column in joined.columns:
        if not isinstance(column, str) or not column.startswith(PROBA_PREFIX):
            continue
        j = positions.get(_key(column[len(PROBA_PREFIX) :]))
        if j is not None:
            matrix[:, j] += np.nan_to_num(joined[column].to_numpy(dtype=float), nan=0.0)
    total = matrix.sum(axis=1)
    present = total > 0
    matrix[present] /= total[present, None]
    return matrix, present


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Top-label ECE: over equal-width confidence bins, |accuracy - mean confidence| weighted by the bin's rows."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += abs(correct[mask].mean() - confidence[mask].mean()) * mask.sum() / len(y)
    return float(error)


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro F1 over the k spec classes; a class neither labelled nor predicted is left out of the average
    (scikit-learn's ``zero_division=np.nan``)."""
    scores = []
    for c in range(k):
        tp = np.sum((y == c) & (pred == c))
        denom = 2 * tp + np.sum((y != c) & (pred == c)) + np.sum((y == c) & (pred != c))
        if denom:
            scores.append(2 * tp / denom)
    return float(np.mean(scores)) if scores else float("nan")


def log_loss_rows(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    eps = np.finfo(proba.dtype).eps
    return -np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0))


def _bootstrap(n: int, statistic: Callable[[np.ndarray], float], rule: IntervalRule) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over resamples of the n rows (NaN resamples left out)."""
    rng = np.random.default_rng(rule.seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(rule.resamples)])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1 - rule.confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _metric(value: float, low: float, high: float, interval: str, rows: int) -> dict[str, Any]:
    def clean(x: float) -> float | None:
        return None if x is None or math.isnan(x) else round(float(x), 6)

    return {"value": clean(value), "ci_low": clean(low), "ci_high": clean(high), "interval": interval, "rows": rows}


def _unavailable(note: str) -> dict[str, Any]:
    return {"value": None, "ci_low": None, "ci_high": None, "note": note}


def _boot(n: int, statistic: Callable[[np.ndarray], float], rule: IntervalRule) -> dict[str, Any]:
    low, high = _bootstrap(n, statistic, rule)
    return _metric(statistic(np.arange(n)), low, high, f"bootstrap ({rule.resamples} resamples)", n)


def classification_metrics(joined: pd.DataFrame, classes: list[Any], rule: IntervalRule) -> dict[str, Any]:
    n = len(joined)
    accuracy = live_metrics(joined, "classification", rule.confidence)
    out: dict[str, Any] = {"accuracy": _metric(accuracy.value, accuracy.ci_low, accuracy.ci_high, "wilson", n)}
    y = class_index(joined["label"], classes)
    pred = class_index(joined["prediction"], classes)
    out["f1_macro"] = _boot(n, lambda i: macro_f1(y[i], pred[i], len(classes)), rule)
    proba, present = probability_matrix(joined, classes)
    usable = present & (y >= 0)
    if not usable.any():
        reason = NO_PROBABILITIES if not present.any() else "not available (no labelled row has probabilities)"
        return out | {name: _unavailable(reason) for name in ("roc_auc", "log_loss", "ece")}
    y_p, p = y[usable], proba[usable]
    labels = list(range(len(classes)))
    out["roc_auc"] = _boot(len(y_p), lambda i: ovr_roc_auc(y_p[i], p[i], labels), rule)
    losses = log_loss_rows(y_p, p)
    out["log_loss"] = _boot(len(y_p), lambda i: float(losses[i].mean()), rule)
    out["ece"] = _boot(len(y_p), lambda i: expected_calibration_error(y_p[i], p[i]), rule)
    if (~usable).any():
        note = f"on the {int(usable.sum())} of {n} labelled rows with logged probabilities"
        for name in ("roc_auc", "log_loss", "ece"):
            out[name]["note"] = note
    return out


def regression_metrics(joined: pd.DataFrame, rule: IntervalRule) -> dict[str, Any]:
    n = len(joined)
    rmse = live_metrics(joined, "regression", rule.confidence)
    out = {"rmse": _metric(rmse.value, rmse.ci_low, rmse.ci_high, "chi-square", n)}
    err = np.abs(joined["prediction"].astype(float).to_numpy() - joined["label"].astype(float).to_numpy())
    out["mae"] = _boot(n, lambda i: float(err[i].mean()), rule)
    return out


def realized_metrics(joined: pd.DataFrame, task: str, classes: list[Any] | None,
                     rule: IntervalRule | None = None) -> dict[str, Any]:
    """Every realized metric of the labelled rows with its interval; {} when no row has a label."""
    rule = rule or IntervalRule()
    if joined.empty:
        return {}
    if task == "classification":
        return classification_metrics(joined, list(classes or []), rule)
    return regression_metrics(joined, rule)


def label_coverage(predictions: int, labeled: int, window: str) -> dict[str, Any]:
    """How much of a window's predictions have labels, as a share and in words."""
    share = labeled / predictions if predictions else None
    text = f"{share:.0%} of the {window}'s predictions have labels ({labeled} of {predictions})" if predictions \
        else f"no predictions in the {window}"
    return {"predictions": predictions, "labeled": labeled, "share": share, "text": text}
