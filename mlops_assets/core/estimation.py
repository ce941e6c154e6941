"""Performance estimated before labels arrive: CBPE for classifiers, DLE for regressors (NannyML's methods).

Labels come late (a loan's repayment months later), so the platform estimates each chunk's performance from
the model's own outputs: CBPE calibrates the champion's probabilities on its reference data (the holdout it was
evaluated on, where labels exist) and reads each chunk's expected confusion matrix; DLE fits a model of the
champion's error on the reference data and averages its predictions. Both hold only under covariate shift
(P(y|x) unchanged): a concept shift is seen only by the realized metric, which later confirms or clears.

Every estimate carries a band from the sampling error: the std of the realized metric over bootstrap samples of
the reference data, scaled by sqrt(m / n) to the chunk's size n (an analytic equivalent of NannyML's std over
reference chunks of the chunk's size), and a verdict ``estimated_decay`` when the whole band is worse than the
gate's baseline by more than the tolerance, in the words of ``core.monitoring.decay_detected``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import isotonic_regression
from threadpoolctl import ThreadpoolController

BOOTSTRAP_ROUNDS = 50  # reference resamples the sampling error is measured on
BOOTSTRAP_ROWS = 2_000  # rows per resample at most; the std is scaled from this size to the chunk's
FOLDS = 10  # out-of-sample folds of the calibration check
CHECK_ROWS = 20_000  # reference rows the calibration check runs on at most; the calibration itself uses all
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "f1": True, "mae": False, "rmse": False}


# --- CBPE ---------------------------------------------------------------------------------------------------
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


# --- DLE ----------------------------------------------------------------------------------------------------
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


# --- bands and verdicts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One estimated metric of one chunk, its band and, when labels exist, the realized value."""

    metric: str
    value: float
    band_low: float
    band_high: float
    rows: int
    realized: float | None = None
    labeled_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_bands(
    values: dict[str, float],
    unit_error: dict[str, float],
    rows: int,
    confidence: float = 0.95,
    realized: dict[str, float] | None = None,
    labeled_rows: int = 0,
) -> dict[str, Estimate]:
    """Each estimate with its band: value +- z * sampling error at ``rows`` rows (bounded to [0, 1] for
    scores)."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    out = {}
    for name, value in values.items():
        half = z * unit_error.get(name, math.nan) / math.sqrt(rows) if rows else math.nan
        low, high = value - half, value + half
        if HIGHER_IS_BETTER.get(name, False):
            low, high = max(0.0, low), min(1.0, high)
        else:
            low = max(0.0, low)
        out[name] = Estimate(
            name, value, low, high, rows, None if realized is None else realized.get(name), labeled_rows
        )
    return out


def estimated_decay(estimate: Estimate, baseline: float | None, *, tolerance: float, min_rows: int) -> bool:
    """True when the whole band is worse than the gate's baseline by more than ``tolerance``."""
    if estimate.rows < min_rows or baseline is None or math.isnan(baseline) or math.isnan(estimate.value):
        return False
    if HIGHER_IS_BETTER[estimate.metric]:
        return estimate.band_high < baseline - tolerance
    return estimate.band_low > baseline + tolerance


def explain_estimate(estimate: Estimate, baseline: float | None, *, tolerance: float, min_rows: int) -> str:
    """Why a chunk is (or is not) ``estimated_decay``, in the words of the rule."""
    if estimate.rows < min_rows:
        return f"not judged: {estimate.rows} rows, {min_rows} needed"
    if baseline is None or math.isnan(baseline):
        return f"not judged: the champion has no offline {estimate.metric} to compare with"
    band = f"[{estimate.band_low:.4f}, {estimate.band_high:.4f}]"
    higher = HIGHER_IS_BETTER[estimate.metric]
    bound = baseline - tolerance if higher else baseline + tolerance
    worse = estimated_decay(estimate, baseline, tolerance=tolerance, min_rows=min_rows)
    side = (
        ("entirely below" if worse else "not entirely below")
        if higher
        else ("entirely above" if worse else "not entirely above")
    )
    return (
        f"estimated {estimate.metric} band {band} is {side} {bound:.4f} "
        f"(offline {baseline:.4f} {'-' if higher else '+'} tolerance {tolerance})"
    )


def chunk_bounds(rows: int, size: int) -> list[tuple[int, int]]:
    """Consecutive chunks of ``size`` rows; the last, if short, joins the one before (never a tiny chunk)."""
    if rows <= 0:
        return []
    starts = list(range(0, rows, size))
    bounds = [(s, min(s + size, rows)) for s in starts]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < size // 2:
        bounds[-2:] = [(bounds[-2][0], rows)]
    return bounds


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


def estimate_lines(record: dict[str, Any] | None) -> list[str]:
    """A day's estimated-performance record in words (``mlops monitor show``): the day's and the rolling chunk's
    estimate with its band, label coverage, and the verdict with its reason."""
    if record is None:
        return ["estimated performance: not computed for this day"]
    if record.get("status") != "ok":
        return [f"estimated performance: {record.get('detail', record.get('status'))}"]
    metric, lines = record["metric"], []
    chunk = record.get("chunk_rule") or f"last {record['chunk_rows']} rows"
    for name, label in (("day_estimate", "day"), ("chunk", chunk)):
        part = record[name]
        estimate = part["estimated"][metric]
        realized = (part.get("realized") or {}).get(metric)
        lines.append(
            f"estimated {metric} ({record['method']}, {label}: {part['rows']} rows, "
            f"{part['label_coverage']:.0%} labelled): {estimate['value']:.4f} "
            f"[{estimate['band_low']:.4f}, {estimate['band_high']:.4f}]"
            + (f", realized {realized:.4f}" if realized is not None else "")
        )
        lines.append(f"  estimated_decay: {'yes' if part['estimated_decay'] else 'no'}: {part['why']}")
    return lines
