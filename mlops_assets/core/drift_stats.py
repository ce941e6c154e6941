"""Two-sample statistics on cleaned numpy arrays and value counts: the arithmetic under ``core.drift``.

Kept apart from the engine so that the rules (which test, which verdict) read on their own in ``core.drift``;
each function reproduces the Evidently 0.7 computation that module's docstring names. scipy and pandas are
imported by the functions that need them: a numeric column of a large sample needs neither (its statistics
come from one sorted copy per side), so ``mlops drift`` on numeric files starts without either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

PSI_EPSILON = 1e-4  # share given to empty PSI bins so the log stays finite


def sorted_finite(values: np.ndarray) -> np.ndarray:
    """The finite values of a float array, sorted: the one sort every statistic of a column is computed from.

    NaN sorts after +inf and -inf first, so the finite run is found by two binary searches on the sorted
    copy instead of a mask and a second copy before the sort.
    """
    ordered = np.sort(values)
    low = int(np.searchsorted(ordered, -np.inf, "right"))
    high = int(np.searchsorted(ordered, np.inf, "left"))
    return ordered[low:high]


def wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """Exact 1-D Wasserstein distance of two sorted samples, as the integral of |F^-1 - G^-1| over (0, 1].

    Equal to ``scipy.stats.wasserstein_distance`` (integral of |F - G|) without its merge sort. Over the
    common denominator lcm(n, m) (< 2**63 for any sample that fits in memory) the quantile breakpoints are
    the integers k * step_ref and j * step_cur; each one closes a piece of the integral whose start (the
    breakpoint before it on either side) and whose quantile on the other side are one integer division
    away, so every piece is computed in place: O(n + m), no merge. A breakpoint both sides share closes
    its piece on the reference side; on the current side it gets width 0.
    """
    n, m = ref.size, cur.size
    if n == m:  # the breakpoints coincide: piece i pairs the i-th smallest values
        return _blockwise(lambda start, stop: np.abs(ref[start:stop] - cur[start:stop]).sum(), n) / n
    denom = math.lcm(n, m)
    step_ref, step_cur = denom // n, denom // m
    total = _pieces(ref, cur, step_ref, step_cur, closes_ties=True)
    total += _pieces(cur, ref, step_cur, step_ref, closes_ties=False)
    return float(total / denom)


# Elements per step of the blockwise sums: temporaries of this size stay in cache, where temporaries of a
# column's size would each fault in (and zero) fresh pages: a third of the CPU time of a 10^6-row drift test.
_BLOCK = 1 << 15


def _blockwise(term: Callable[[int, int], Any], size: int) -> float:
    """Sum of ``term(start, stop)`` over consecutive blocks of ``range(size)``."""
    return float(sum(float(term(start, min(start + _BLOCK, size))) for start in range(0, size, _BLOCK)))


def population_std(values: np.ndarray) -> float:
    """Population standard deviation (``np.std``, ddof=0, up to float rounding) without full-size temporaries."""
    mean = values.mean()
    return math.sqrt(_blockwise(lambda start, stop: np.square(values[start:stop] - mean).sum(), values.size)
                     / values.size)


def _pieces(own: np.ndarray, other: np.ndarray, step_own: int, step_other: int, *, closes_ties: bool) -> float:
    """Sum of width x |own - other quantile| over the pieces of the integral that ``own``'s breakpoints close."""
    offsets = np.arange(1, min(_BLOCK, own.size) + 1, dtype=np.int64) * step_own

    def term(start: int, stop: int) -> float:
        at = offsets[: stop - start] + start * step_own
        # the other side's breakpoints before this one: strictly below when this side closes ties, else at or
        # below; that count is also the other side's quantile index on the piece (clipped where the width is 0)
        before = (at - 1) // step_other if closes_ties else at // step_other
        width = before * step_other
        np.subtract(at, width, out=width)
        np.minimum(width, step_own, out=width)  # the piece starts at the later of the two previous breakpoints
        # products summed by numpy, not np.dot: BLAS threads stall for milliseconds on a busy machine
        return np.sum(np.abs(own[start:stop] - other.take(before, mode="clip")) * width)

    return _blockwise(term, own.size)


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Evidently's chi-square: current counts against reference frequencies scaled to the current size.

    A category absent from the reference has expected count 0, so the statistic is infinite and p = 0,
    as in Evidently (scipy's ``chisquare`` gives the same, with a warning).
    """
    from scipy import stats

    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore"):  # every value was observed somewhere, so 0/0 cannot occur
        statistic = float(np.sum((cur_counts - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, ref_counts.size - 1))


def z_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample proportions z-test on the share of the first (sorted) value, Evidently's binary test."""
    from scipy import stats

    if ref_counts.size < 2:  # one value on both sides: Evidently's explicit p = 1
        return 0.0, 1.0
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    p_ref, p_cur = 1 - ref_counts[0] / n_ref, 1 - cur_counts[0] / n_cur
    pooled = (p_ref * n_ref + p_cur * n_cur) / (n_ref + n_cur)
    z = float((p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur)))
    return z, float(2 * stats.norm.sf(abs(z)))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def psi_from_shares(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.where(ref_share > 0, ref_share, PSI_EPSILON)
    cur_share = np.where(cur_share > 0, cur_share, PSI_EPSILON)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def psi_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI over reference quantile bins (open-ended outer bins) of two sorted numeric samples."""
    position = np.arange(1, bins) / bins * (ref.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ref.size - 1)
    edges = np.unique(ref[low] + (ref[high] - ref[low]) * (position - low))
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref, edges), [ref.size]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur, edges), [cur.size]]))
    return psi_from_shares(ref_counts / ref.size, cur_counts / cur.size)

def float_values(series: pd.Series) -> np.ndarray:
    """float64 values with missing ones as NaN (``sorted_finite`` drops them with +-inf)."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def drop_missing(series: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_float_dtype(series.dtype):
        return series[np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))]
    return series.dropna()


def count_table(ref: pd.Series, cur: pd.Series) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Sorted union of observed values with their counts on each side (unused categories are left out)."""
    import pandas as pd

    table = pd.concat(
        [ref.value_counts(sort=False), cur.value_counts(sort=False)], axis=1, keys=["ref", "cur"], sort=False
    ).fillna(0)
    table = table[(table["ref"] > 0) | (table["cur"] > 0)]
    keys = list(table.index)
    try:
        order = sorted(range(len(keys)), key=keys.__getitem__)
    except TypeError:  # mixed types: any stable order works, only the sign of z depends on it
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    return (
        [keys[i] for i in order],
        table["ref"].to_numpy(dtype=np.float64)[order],
        table["cur"].to_numpy(dtype=np.float64)[order],
    )


def sorted_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts per distinct value of two sorted numeric samples with few distinct values."""
    keys = np.union1d(_distinct_values(ref), _distinct_values(cur))
    ref_counts = np.searchsorted(ref, keys, "right") - np.searchsorted(ref, keys, "left")
    cur_counts = np.searchsorted(cur, keys, "right") - np.searchsorted(cur, keys, "left")
    return keys.tolist(), ref_counts.astype(np.float64), cur_counts.astype(np.float64)


def _distinct_values(values: np.ndarray) -> np.ndarray:
    """Distinct values of a sorted array, without the re-sort ``np.unique`` would do."""
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def distinct_count(values: np.ndarray) -> int:
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0
