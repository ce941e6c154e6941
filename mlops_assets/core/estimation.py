"""Performance estimated before labels arrive: what CBPE (``core.cbpe``, classifiers) and DLE (``core.dle``,
regressors) share, NannyML's methods.

Labels come late (a loan's repayment months later), so the platform estimates each chunk's performance from
the model's own outputs: CBPE calibrates the champion's probabilities on its reference data (the holdout it was
evaluated on, where labels exist) and reads each chunk's expected confusion matrix; DLE fits a model of the
champion's error on the reference data and averages its predictions. Both hold only under covariate shift
(P(y|x) unchanged): a concept shift is seen only by the realized metric, which later confirms or clears.

Every estimate carries a band from the sampling error: the std of the realized metric over bootstrap samples of
the reference data, scaled by sqrt(m / n) to the chunk's size n (an analytic equivalent of NannyML's std over
reference chunks of the chunk's size), and a verdict ``estimated_decay`` when the whole band is worse than the
gate's baseline by more than the tolerance, in the words of ``core.monitoring.decay_detected``. This module holds
those bands and verdicts, the chunking and the record in words; it imports neither method.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

BOOTSTRAP_ROUNDS = 50  # reference resamples the sampling error is measured on
BOOTSTRAP_ROWS = 2_000  # rows per resample at most; the std is scaled from this size to the chunk's
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "f1": True, "mae": False, "rmse": False}


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
