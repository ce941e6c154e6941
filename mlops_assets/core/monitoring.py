"""Live performance from delivered labels, and the decisions the monitoring sensors take.

Drift statistics live in ``core.drift``; this module joins predictions with labels, puts confidence
intervals on live metrics, and decides when evidence is strong enough to retrain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def join_feedback(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Predictions that have a delivered label, matched on (request_id, row)."""
    if predictions.empty or feedback.empty:
        return predictions.assign(label=pd.Series(dtype=object)).iloc[0:0]
    return predictions.merge(feedback[["request_id", "row", "label"]], on=["request_id", "row"], how="inner")


def labels_match(predictions: pd.Series, labels: pd.Series) -> pd.Series:
    """Whether each prediction equals its delivered label. Numbers compare as numbers, so a label sent back as
    ``1.0`` (or ``"1"``) matches class ``1``; anything else compares as text ("sun" == "sun")."""
    p_num, l_num = pd.to_numeric(predictions, errors="coerce"), pd.to_numeric(labels, errors="coerce")
    numeric = p_num.notna() & l_num.notna()
    as_text = predictions.astype(str).to_numpy() == labels.astype(str).to_numpy()
    return pd.Series(np.where(numeric, p_num == l_num, as_text), index=predictions.index)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class LiveMetrics:
    labeled_rows: int
    metric: str
    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_metrics(joined: pd.DataFrame, task: str, confidence: float = 0.95) -> LiveMetrics:
    """Accuracy with a Wilson interval (classification) or RMSE with a chi-square interval (regression)."""
    n = len(joined)
    if task == "classification":
        if n == 0:
            return LiveMetrics(0, "accuracy", float("nan"), float("nan"), float("nan"))
        correct = int(labels_match(joined["prediction"], joined["label"]).sum())
        low, high = wilson_interval(correct, n, confidence)
        return LiveMetrics(n, "accuracy", correct / n, low, high)
    if n == 0:
        return LiveMetrics(0, "rmse", float("nan"), float("nan"), float("nan"))
    err = joined["prediction"].astype(float).to_numpy() - joined["label"].astype(float).to_numpy()
    sse = float(np.sum(err ** 2))
    alpha = 1 - confidence
    low = math.sqrt(sse / stats.chi2.ppf(1 - alpha / 2, n))
    high = math.sqrt(sse / stats.chi2.ppf(alpha / 2, n))
    return LiveMetrics(n, "rmse", math.sqrt(sse / n), low, high)


def decay_detected(live: LiveMetrics, baseline: float, *, tolerance: float, min_rows: int) -> bool:
    """True when the whole confidence interval is worse than the offline baseline by more than ``tolerance``:
    one noisy hour never triggers a retrain."""
    if live.labeled_rows < min_rows or math.isnan(live.value) or math.isnan(baseline):
        return False
    if live.metric == "accuracy":
        return live.ci_high < baseline - tolerance
    return live.ci_low > baseline + tolerance


def explain_decay(live: dict[str, Any], *, tolerance: float, min_rows: int) -> str:
    """Why a day's live-performance record is (or is not) decay, in the words of ``decay_detected``'s rule."""
    metric, baseline = live["metric"], live.get("baseline", float("nan"))
    if live["labeled_rows"] < min_rows:
        return f"not judged: {live['labeled_rows']} labelled rows, {min_rows} needed"
    if math.isnan(live["value"]) or baseline is None or math.isnan(baseline):
        return "not judged: no offline baseline for the serving champion"
    interval = f"[{live['ci_low']:.4f}, {live['ci_high']:.4f}]"
    if metric == "accuracy":
        bound = baseline - tolerance
        side = "entirely below" if live["ci_high"] < bound else "not entirely below"
    else:
        bound = baseline + tolerance
        side = "entirely above" if live["ci_low"] > bound else "not entirely above"
    return (f"live {metric} interval {interval} is {side} {bound:.4f} "
            f"(offline {baseline:.4f} {'-' if metric == 'accuracy' else '+'} tolerance {tolerance})")
