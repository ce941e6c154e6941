"""Confidence-based performance estimation (CBPE, NannyML's method) for classifiers: the champion's probabilities
calibrated on its reference data, and each chunk's expected confusion matrix read from them (accuracy, ROC AUC,
F1). The bands and the verdict are ``core.estimation``'s."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.isotonic import isotonic_regression

from mlops_assets.core.estimation import BOOTSTRAP_ROUNDS, BOOTSTRAP_ROWS

FOLDS = 10  # out-of-sample folds of the calibration check
CHECK_ROWS = 20_000  # reference rows the calibration check runs on at most; the calibration itself uses all


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (NannyML's definition)."""
    order = np.argsort(p)
    p, y = p[order], y[order]
    n = len(p)
    bins = min(bins, n // 2)
    width = n // bins
    edges = np.arange(0, n + 1, width)
    edges[-1] = n
    return float(
        sum(
            (r - left) / n * abs(p[left:r].mean() - y[left:r].mean())
            for left, r in zip(edges[:-1], edges[1:], strict=True)
        )
    )


def _isotonic(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic fit of ``y`` on ``p`` (``p`` sorted ascending) as sklearn's ``IsotonicRegression`` does it (equal
    scores pooled first), returned as the (x, y) points ``np.interp`` predicts with, clipped at both ends."""
    starts = np.r_[0, np.flatnonzero(np.diff(p)) + 1]
    counts = np.diff(np.r_[starts, len(p)]).astype(float)
    fitted = isotonic_regression(np.add.reduceat(y, starts) / counts, sample_weight=counts, increasing=True)
    return p[starts], fitted


def _needs_calibration(y: np.ndarray, p: np.ndarray, order: np.ndarray) -> bool:
    """Calibrate only when isotonic calibration lowers the expected calibration error out of sample (10
    stratified folds; NannyML draws 10 stratified 90/10 splits): a well-calibrated model is not made worse."""
    if len(np.unique(y)) < 2 or len(y) < 40 or _auc_rows(y[None] > 0, p[None])[0] > 0.999:
        return False
    rng = np.random.default_rng(42)
    fold = np.empty(len(y), dtype=int)
    for label in (0, 1):  # stratified: each class spread evenly over the folds
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % FOLDS
    p_sorted, y_sorted, fold_sorted = p[order], y[order], fold[order]
    truth, before, after = [], [], []
    for k in range(FOLDS):
        train, test = fold_sorted != k, fold == k
        xs, ys = _isotonic(p_sorted[train], y_sorted[train])
        truth.append(y[test])
        before.append(p[test])
        after.append(np.interp(p[test], xs, ys))
    y_all = np.concatenate(truth)
    return _ece(y_all, np.concatenate(before)) > _ece(y_all, np.concatenate(after))


def estimated_roc_auc(calibrated: np.ndarray, scores: np.ndarray) -> float:
    """NannyML's CBPE ROC AUC: rank rows by the model's own score, count each row as ``calibrated`` of a
    positive and ``1 - calibrated`` of a negative, and integrate the expected ROC curve."""
    order = np.argsort(scores, kind="stable")[::-1]
    tps = np.r_[0.0, np.cumsum(calibrated[order])]
    fps = np.r_[0.0, np.arange(1, len(order) + 1)] - tps
    tps, fps = np.round(tps, 5), np.round(fps, 5)
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _expected_f1(is_pred: np.ndarray, p: np.ndarray) -> float:
    tp = float(np.sum(p[is_pred]))
    fp = float(np.sum(1 - p[is_pred]))
    fn = float(np.sum(p[~is_pred]))
    denominator = tp + 0.5 * (fp + fn)
    return tp / denominator if denominator else 0.0


def _auc_rows(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney ROC AUC of each row of a (rounds, rows) batch, ties counted half; NaN for a one-class row."""
    ranks = stats.rankdata(scores, axis=1)
    pos = truth.sum(axis=1).astype(float)
    neg = truth.shape[1] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (np.where(truth, ranks, 0.0).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _realized(y_idx: np.ndarray, pred_idx: np.ndarray, scores: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Accuracy, ROC AUC and F1 (positive class for two classes, macro over classes for more) from labels, for
    each row of a (rounds, rows) batch at once: the bootstrap costs a few array operations, not a loop."""
    per_class = range(1, 2) if k == 2 else range(k)
    aucs = np.stack([_auc_rows(y_idx == c, scores[..., c]) for c in per_class])
    f1s = []
    for c in per_class:
        truth, is_pred = y_idx == c, pred_idx == c
        tp = (truth & is_pred).sum(axis=1)
        denominator = tp + 0.5 * ((~truth & is_pred).sum(axis=1) + (truth & ~is_pred).sum(axis=1))
        f1s.append(np.divide(tp, denominator, out=np.zeros(len(tp)), where=denominator > 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no AUC for any class stays NaN
        auc = np.nanmean(aucs, axis=0)
    return {"accuracy": (y_idx == pred_idx).mean(axis=1), "roc_auc": auc, "f1": np.mean(f1s, axis=0)}


def _realized_once(y_idx: np.ndarray, pred_idx: np.ndarray, scores: np.ndarray, k: int) -> dict[str, float]:
    return {name: float(v[0]) for name, v in _realized(y_idx[None], pred_idx[None], scores[None], k).items()}


@dataclass
class CBPE:
    """A champion's CBPE reference: per-class isotonic calibration maps (None: already calibrated), the realized
    metrics on the reference, and each metric's sampling error at one row (std * sqrt(rows)). Plain lists and
    floats only, so it is cached as JSON next to the model version (never a pickle)."""

    classes: list[Any]
    calibration: list[tuple[list[float], list[float]] | None]
    reference: dict[str, float]
    unit_error: dict[str, float]
    reference_rows: int
    task: str = field(default="classification", init=False)

    @classmethod
    def fit(
        cls,
        proba: np.ndarray,
        y_true: Sequence[Any],
        classes: Sequence[Any],
        y_pred: Sequence[Any] | None = None,
        *,
        seed: int = 0,
    ) -> CBPE:
        """``proba`` has one column per class in ``classes`` order; ``y_pred`` defaults to the argmax."""
        proba = np.asarray(proba, dtype=float)
        classes = list(classes)
        y_idx = _indices(y_true, classes, "reference labels")
        pred_idx = proba.argmax(axis=1) if y_pred is None else _indices(y_pred, classes, "reference predictions")
        k = len(classes)
        calibration: list[tuple[list[float], list[float]] | None] = []
        # The check needs no more rows than this to tell whether calibration helps (a seeded sample)
        check_rows = (
            np.sort(np.random.default_rng(seed).choice(len(y_idx), CHECK_ROWS, replace=False))
            if len(y_idx) > CHECK_ROWS
            else None
        )
        for c in range(k):
            if k == 2 and c == 0:  # two classes: the positive class's map decides both
                calibration.append(None)
                continue
            truth, p = (y_idx == c).astype(float), proba[:, c]
            rows = check_rows if check_rows is not None else slice(None)
            if not _needs_calibration(truth[rows], p[rows], np.argsort(p[rows])):
                calibration.append(None)
                continue
            order = np.argsort(p)
            xs, ys = _isotonic(p[order], truth[order])
            # only the ends of each flat step matter to the interpolation (sklearn keeps the same points)
            keep = np.r_[True, (ys[1:-1] != ys[:-2]) | (ys[1:-1] != ys[2:]), True] if len(ys) > 2 else slice(None)
            calibration.append((xs[keep].tolist(), ys[keep].tolist()))
        m = min(len(y_idx), BOOTSTRAP_ROWS)
        draw = np.random.default_rng(seed).integers(0, len(y_idx), (BOOTSTRAP_ROUNDS, m))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every draw has no error
            unit = {
                name: float(np.nanstd(v, ddof=1) * math.sqrt(m))
                for name, v in _realized(y_idx[draw], pred_idx[draw], proba[draw], k).items()
            }
        return cls(
            [_plain(c) for c in classes], calibration, _realized_once(y_idx, pred_idx, proba, k), unit, len(y_idx)
        )

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: the positive class alone for two classes, else each class one-vs-rest and
        the rows renormalised to sum to 1 (uniform where every class maps to 0)."""
        proba = np.asarray(proba, dtype=float)
        out = proba.copy()
        for c, mapping in enumerate(self.calibration):
            if mapping is not None:
                out[:, c] = np.interp(proba[:, c], mapping[0], mapping[1])
        if len(self.classes) == 2:
            out[:, 0] = 1.0 - out[:, 1]
            return out
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1 / len(self.classes)), where=total > 0)

    def estimate(self, proba: np.ndarray, y_pred: Sequence[Any] | None = None) -> dict[str, float]:
        """Expected accuracy, ROC AUC and F1 of a chunk from its (uncalibrated) probabilities alone."""
        proba = np.asarray(proba, dtype=float)
        if len(proba) == 0:
            return {name: math.nan for name in self.unit_error}
        pred_idx = proba.argmax(axis=1) if y_pred is None else _indices(y_pred, self.classes, "predictions")
        calibrated = self.calibrate(proba)
        rows = np.arange(len(proba))
        per_class = range(1, 2) if len(self.classes) == 2 else range(len(self.classes))
        aucs = [estimated_roc_auc(calibrated[:, c], proba[:, c]) for c in per_class]
        return {
            "accuracy": float(calibrated[rows, pred_idx].mean()),
            "roc_auc": float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else math.nan,
            "f1": float(np.mean([_expected_f1(pred_idx == c, calibrated[:, c]) for c in per_class])),
        }

    def realized(
        self,
        proba: np.ndarray,
        y_true: Sequence[Any],
        y_pred: Sequence[Any] | None = None,
    ) -> dict[str, float]:
        proba = np.asarray(proba, dtype=float)
        pred_idx = proba.argmax(axis=1) if y_pred is None else _indices(y_pred, self.classes, "predictions")
        return _realized_once(_indices(y_true, self.classes, "labels"), pred_idx, proba, len(self.classes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CBPE:
        return cls(
            data["classes"],
            [None if m is None else (m[0], m[1]) for m in data["calibration"]],
            data["reference"],
            data["unit_error"],
            data["reference_rows"],
        )


def _indices(values: Sequence[Any], classes: list[Any], what: str) -> np.ndarray:
    """Positions of ``values`` in ``classes``, vectorised; numbers compare as numbers (a label sent back as 1.0
    is class 1), anything else as text."""
    raw = np.asarray(values)
    class_numbers = pd.to_numeric(pd.Series(classes, dtype=object), errors="coerce")
    numbers = raw.astype(float) if raw.dtype.kind in "iufb" else pd.to_numeric(pd.Series(raw), errors="coerce")
    if class_numbers.notna().all() and not np.isnan(numbers).any():
        out = pd.Index(class_numbers.astype(float)).get_indexer(numbers)
    else:
        out = pd.Index([str(c) for c in classes]).get_indexer(pd.Series(raw).astype(str))
    values = pd.Series(raw)
    if (out < 0).any():
        bad = values[out < 0].iloc[0]
        raise ValueError(
            f"{what}: {bad!r} is not one of the model's classes {classes}; "
            "hint: labels must use the training data's class values"
        )
    return np.asarray(out, dtype=int)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
