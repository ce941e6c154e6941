"""Data drift engine: Evidently 0.7 ``DataDriftPreset`` verdicts, computed column by column on numpy arrays.

Why not Evidently itself: its preset computes every column twice (once for the dataset metric, once per
``ValueDrift``), plus correlations and plots, and pins pandas below 3; on 1M rows x 20 columns it is
about 50x slower than this module. The statistics and verdicts are the same (``benchmarks/drift.py``
checks both), so thresholds people know from Evidently keep their meaning.

Rules, each checked against the Evidently 0.7.23 source (``evidently/...`` paths below):

* Column kinds (``core/datasets.py::infer_column_type``): float -> numeric; integer -> categorical when it
  has <= 10 distinct values, else numeric; bool/category -> categorical; strings -> categorical unless more
  than half of the non-null values are distinct (then Evidently calls it "text" and runs a model-based
  test, which we do not: such columns are skipped); datetimes and anything else are skipped.
* Cleaning (``legacy/calculations/data_drift.py::get_one_column_drift``): +-inf become NaN and NaNs are
  dropped per column before anything else; sizes below are counted after that.
* Test choice (``legacy/calculations/stattests/registry.py::_get_default_stattest``), with ``n`` the
  reference size and ``u`` the distinct values of reference and current together:
  ``n <= 1000``: numeric with ``u > 5`` -> two-sample KS; otherwise chi-square (``u > 2``) or a two-sample
  proportions z-test (``u <= 2``). ``n > 1000``: numeric with ``u > 5`` -> normed Wasserstein; otherwise
  Jensen-Shannon distance over the category frequencies.
* Verdicts: KS drifts when ``p <= threshold`` (``ks_stattest.py``), chi-square and z when
  ``p < threshold`` (``chisquare_stattest.py``, ``z_stattest.py``), both default 0.05; Wasserstein
  (``wasserstein_distance_norm.py``: distance / max(std(reference, ddof=0), 0.001)) and Jensen-Shannon
  (``jensenshannon.py`` + ``utils.py::get_binned_data`` without zero filling, natural log) drift when the
  distance ``>= threshold``, default 0.1.
* Dataset drift (``legacy/calculations/data_drift.py::get_dataset_drift``): share of drifted columns
  ``>= drift_share``.

Deliberate differences, all on inputs where Evidently raises or gives no usable answer:

* Columns with fewer than ``min_samples`` usable values, missing from a frame, or not numeric where a
  numeric test is asked for get status ``insufficient_data`` instead of an exception; the dataset share is
  taken over the columns that could be tested.
* Nullable pandas dtypes (``Int64``, ``UInt8``, ``Float64``, ``boolean``) are typed like their numpy
  counterparts; Evidently's name-prefix check leaves them "unknown" and skips them. An object column
  tested as numeric is accepted when every non-null value is a number (e.g. read from JSON with nulls).
* z-test p-values use ``2 * sf(|z|)`` rather than ``2 * (1 - cdf(|z|))``: identical except that tiny
  p-values do not round to 0, which Benjamini-Hochberg needs.
* Constant columns follow Evidently's rules, which are well defined: when reference and current together
  hold <= 5 values the count tests apply (same constant on both sides -> p = 1 / distance 0, no drift);
  otherwise the Wasserstein norm is floored at 0.001 as in Evidently, so any spread around a constant
  reference is drift.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)

DRIFT = "drift"
NO_DRIFT = "no_drift"
INSUFFICIENT = "insufficient_data"

# Evidently's default thresholds: p-value tests compare against 0.05, distances against 0.1.
P_VALUE_TESTS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05}
DISTANCE_TESTS = {"wasserstein": 0.1, "jensenshannon": 0.1}

INTEGER_CARDINALITY_LIMIT = 10  # evidently/core/datasets.py
FEW_VALUES = 5  # registry.py: <= 5 distinct values -> treated as categories even when numeric
WASSERSTEIN_STD_FLOOR = 0.001  # wasserstein_distance_norm.py
PSI_EPSILON = 1e-4  # share given to empty PSI bins so the log stays finite


@dataclass(frozen=True)
class DriftConfig:
    """Knobs of ``detect_drift``; the defaults reproduce Evidently's ``DataDriftPreset()``."""

    drift_share: float = 0.5
    small_sample: int = 1000
    min_samples: int = 30
    stattest_threshold: float | None = None
    column_thresholds: Mapping[str, float] = field(default_factory=dict)
    bh_correction: bool = False
    psi_bins: int = 10
    # When set, a column whose PSI is >= this also counts as drifted (PSI is only reported otherwise).
    psi_threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.drift_share <= 1.0:
            raise ValueError(f"drift_share must be in [0, 1], got {self.drift_share}")
        if self.small_sample < 1 or self.min_samples < 1:
            raise ValueError("small_sample and min_samples must be >= 1")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be >= 2, got {self.psi_bins}")
        named = {"stattest_threshold": self.stattest_threshold, "psi_threshold": self.psi_threshold}
        named.update({f"column_thresholds[{k!r}]": v for k, v in self.column_thresholds.items()})
        for name, value in named.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")


@dataclass(frozen=True)
class ColumnDrift:
    """Verdict on one column; ``p_value`` is None for distance tests, ``statistic`` None when untested."""

    column: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    status: str
    psi: float | None
    reference_size: int
    current_size: int
    detail: str


@dataclass(frozen=True)
class DriftReport:
    """Per-column verdicts and the dataset verdict (drift when the drifted share reaches the threshold)."""

    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool
    status: str
    drift_share_threshold: float
    reference_size: int
    current_size: int

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: non-finite floats (a chi-square with unseen categories) become None."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "columns"}
        out["drifted_columns"] = self.drifted_columns
        out["columns"] = [{k: _json_number(v) for k, v in asdict(c).items()} for c in self.columns]
        return out

    def to_frame(self) -> pd.DataFrame:
        names = [f.name for f in fields(ColumnDrift)]
        return pd.DataFrame([asdict(c) for c in self.columns], columns=names)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------- kinds


def _is_integer_dtype(dtype: Any) -> bool:
    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _infer_kind(series: pd.Series) -> str | None:
    """Evidently 0.7's ``infer_column_type`` restricted to what we test; None means "skip this column"."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERIC
    if _is_integer_dtype(dtype):
        return CATEGORICAL if series.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERIC
    if pd.api.types.is_string_dtype(dtype):
        values = series.dropna()
        if values.empty or not (isinstance(values.iloc[0], str) and isinstance(values.iloc[-1], str)):
            return None
        return None if values.nunique() > 0.5 * len(values) else CATEGORICAL
    return None


def infer_kinds(frame: Table) -> dict[str, str]:
    """Kind ("numeric" | "categorical") of every testable column, by Evidently 0.7's rule (module doc).

    Text-like, datetime and unrecognised columns are left out, as Evidently's preset has no
    distribution test for them either.
    """
    kinds = {}
    for name in frame.columns:
        kind = _infer_kind(frame[name])
        if kind is not None:
            kinds[name] = kind
    return kinds


# ------------------------------------------------------------------------------------- statistics


def _wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """Exact 1-D Wasserstein distance of two sorted samples, as the integral of |F^-1 - G^-1| over (0, 1].

    Equal to ``scipy.stats.wasserstein_distance`` (integral of |F - G|), but the quantile form needs no
    binary searches: the breakpoints k/n and j/m are merged as integers over their common denominator
    lcm(n, m) (< 2**63 for any sample that fits in memory), so each piece's quantile indices come from
    integer division, all vectorised.
    """
    n, m = ref.size, cur.size
    denom = math.lcm(n, m)
    step_ref, step_cur = denom // n, denom // m
    breaks = np.concatenate(
        [np.arange(1, n + 1, dtype=np.int64) * step_ref, np.arange(1, m + 1, dtype=np.int64) * step_cur]
    )
    breaks.sort()
    keep = np.empty(breaks.size, dtype=bool)
    keep[0] = True
    np.not_equal(breaks[1:], breaks[:-1], out=keep[1:])
    breaks = breaks[keep]
    widths = np.diff(breaks, prepend=0)
    breaks -= 1
    gaps = np.abs(ref[breaks // step_ref] - cur[breaks // step_cur])
    return float(np.dot(gaps, widths) / denom)


def _chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Evidently's chi-square: current counts against reference frequencies scaled to the current size.

    A category absent from the reference has expected count 0, so the statistic is infinite and p = 0,
    as in Evidently (scipy's ``chisquare`` gives the same, with a warning).
    """
    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore"):  # every value was observed somewhere, so 0/0 cannot occur
        statistic = float(np.sum((cur_counts - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, ref_counts.size - 1))


def _z_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample proportions z-test on the share of the first (sorted) value, Evidently's binary test."""
    if ref_counts.size < 2:  # one value on both sides: Evidently's explicit p = 1
        return 0.0, 1.0
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    p_ref, p_cur = 1 - ref_counts[0] / n_ref, 1 - cur_counts[0] / n_cur
    pooled = (p_ref * n_ref + p_cur * n_cur) / (n_ref + n_cur)
    z = float((p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur)))
    return z, float(2 * stats.norm.sf(abs(z)))


def _jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    return float(distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def _psi_from_shares(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.where(ref_share > 0, ref_share, PSI_EPSILON)
    cur_share = np.where(cur_share > 0, cur_share, PSI_EPSILON)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _psi_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI over reference quantile bins (open-ended outer bins) of two sorted numeric samples."""
    position = np.arange(1, bins) / bins * (ref.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ref.size - 1)
    edges = np.unique(ref[low] + (ref[high] - ref[low]) * (position - low))
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref, edges), [ref.size]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur, edges), [cur.size]]))
    return _psi_from_shares(ref_counts / ref.size, cur_counts / cur.size)


def psi(reference: Any, current: Any, bins: int = 10, *, kind: str | None = None) -> float:
    """Population Stability Index of ``current`` against ``reference``; NaN/inf values are ignored.

    Numeric data is cut at the reference's quantiles, categorical data (non-numeric or bool dtype, or
    ``kind="categorical"``) by category; empty bins get a share of 1e-4 so the index stays finite.
    """
    ref, cur = pd.Series(reference), pd.Series(current)
    kind = kind or _fallback_kind(ref)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == NUMERIC:
        ref_values, cur_values = _finite_floats(ref), _finite_floats(cur)
        if ref_values.size == 0 or cur_values.size == 0:
            raise ValueError("psi needs at least one finite value on each side")
        return _psi_sorted(np.sort(ref_values), np.sort(cur_values), bins)
    _, ref_counts, cur_counts = _count_table(_drop_missing(ref), _drop_missing(cur))
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        raise ValueError("psi needs at least one non-missing value on each side")
    return _psi_from_shares(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())


# --------------------------------------------------------------------------------- column handling


def _finite_floats(series: pd.Series) -> np.ndarray:
    """float64 values without NaN/inf; no copy when the column is already clean float64."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


def _drop_missing(series: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(series.dtype):
        return series[np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))]
    return series.dropna()


def _count_table(ref: pd.Series, cur: pd.Series) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Sorted union of observed values with their counts on each side (unused categories are left out)."""
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


def _sorted_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts per distinct value of two sorted numeric samples with few distinct values."""
    keys = np.union1d(_distinct_values(ref), _distinct_values(cur))
    ref_counts = np.searchsorted(ref, keys, "right") - np.searchsorted(ref, keys, "left")
    cur_counts = np.searchsorted(cur, keys, "right") - np.searchsorted(cur, keys, "left")
    return keys.tolist(), ref_counts.astype(np.float64), cur_counts.astype(np.float64)


def _distinct_values(values: np.ndarray) -> np.ndarray:
    """Distinct values of a sorted array, without the re-sort ``np.unique`` would do."""
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _distinct_count(values: np.ndarray) -> int:
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0


@dataclass
class _Outcome:
    """What one column's test produced before thresholds, BH and PSI rules are applied."""

    column: str
    kind: str
    test: str = ""
    statistic: float | None = None
    p_value: float | None = None
    psi: float | None = None
    reference_size: int = 0
    current_size: int = 0
    notes: list[str] = field(default_factory=list)
    tested: bool = False


def _count_test(out: _Outcome, keys: list[Any], ref_counts: np.ndarray, cur_counts: np.ndarray,
                small: bool) -> None:
    if small and len(keys) > 2:
        out.test = "chisquare"
        out.statistic, out.p_value = _chi_square(ref_counts, cur_counts)
    elif small:
        out.test = "z"
        out.statistic, out.p_value = _z_test(ref_counts, cur_counts)
    else:
        out.test = "jensenshannon"
        out.statistic = _jensen_shannon(ref_counts, cur_counts)
    unseen = [k for k, r, c in zip(keys, ref_counts, cur_counts, strict=True) if r == 0 and c > 0]
    if unseen:
        shown = ", ".join(repr(k) for k in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        share = float(cur_counts[ref_counts == 0].sum() / cur_counts.sum())
        out.notes.append(f"unseen in reference: {shown} ({share:.1%} of current)")


def _as_numeric(series: pd.Series) -> pd.Series | None:
    """The column as numbers: numeric dtypes as they are, object columns only if every value is a number
    (as when read from JSON with nulls); None when any value is not, so garbage is never silently dropped."""
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series
    try:
        converted = pd.to_numeric(series, errors="coerce")
    except (TypeError, ValueError):
        return None
    return None if (converted.isna() & series.notna()).any() else converted


def _test_numeric(out: _Outcome, ref_series: pd.Series, cur_series: pd.Series, config: DriftConfig) -> None:
    numeric = {"reference": _as_numeric(ref_series), "current": _as_numeric(cur_series)}
    for side, original in (("reference", ref_series), ("current", cur_series)):
        if numeric[side] is None:
            out.reference_size, out.current_size = int(ref_series.notna().sum()), int(cur_series.notna().sum())
            out.notes.append(f"{side} values are not numeric (dtype {original.dtype})")
            return
    ref_series, cur_series = numeric["reference"], numeric["current"]
    ref, cur = _finite_floats(ref_series), _finite_floats(cur_series)
    if not _sizes_ok(out, ref.size, len(ref_series), cur.size, len(cur_series), config):
        return
    ref, cur = np.sort(ref), np.sort(cur)
    small = ref.size <= config.small_sample
    if _distinct_count(ref) <= FEW_VALUES and _distinct_count(cur) <= FEW_VALUES:
        keys, ref_counts, cur_counts = _sorted_counts(ref, cur)
        if len(keys) <= FEW_VALUES:
            out.notes.append(f"only {len(keys)} distinct value(s): tested as categories")
            _count_test(out, keys, ref_counts, cur_counts, small)
            out.psi = _psi_from_shares(ref_counts / ref.size, cur_counts / cur.size)
            out.tested = True
            return
    if small:
        out.test = "ks"
        result = stats.ks_2samp(ref, cur)
        out.statistic, out.p_value = float(result.statistic), float(result.pvalue)
    else:
        out.test = "wasserstein"
        std = float(np.std(ref))
        if std < WASSERSTEIN_STD_FLOOR:
            out.notes.append(f"reference std {std:.3g} below {WASSERSTEIN_STD_FLOOR}: normed by that floor")
        out.statistic = _wasserstein_sorted(ref, cur) / max(std, WASSERSTEIN_STD_FLOOR)
    out.psi = _psi_sorted(ref, cur, config.psi_bins)
    out.tested = True


def _test_categorical(out: _Outcome, ref_series: pd.Series, cur_series: pd.Series,
                      config: DriftConfig) -> None:
    ref, cur = _drop_missing(ref_series), _drop_missing(cur_series)
    if not _sizes_ok(out, len(ref), len(ref_series), len(cur), len(cur_series), config):
        return
    keys, ref_counts, cur_counts = _count_table(ref, cur)
    _count_test(out, keys, ref_counts, cur_counts, len(ref) <= config.small_sample)
    out.psi = _psi_from_shares(ref_counts / len(ref), cur_counts / len(cur))
    out.tested = True


def _sizes_ok(out: _Outcome, n_ref: int, rows_ref: int, n_cur: int, rows_cur: int,
              config: DriftConfig) -> bool:
    """Record usable sizes and dropped missing values; False when a side is below ``min_samples``."""
    out.reference_size, out.current_size = n_ref, n_cur
    for side, kept, rows in (("reference", n_ref, rows_ref), ("current", n_cur, rows_cur)):
        if kept < rows:
            out.notes.append(f"{rows - kept} missing/infinite values dropped from {side}")
    sizes = (("reference", n_ref), ("current", n_cur))
    short = [f"{side} has {n}" for side, n in sizes if n < config.min_samples]
    if short:
        out.notes.append(f"{' and '.join(short)} usable values, fewer than min_samples={config.min_samples}")
        return False
    return True


def _outcome(name: Any, kind: str, reference: pd.Series | None, current: pd.Series | None,
             config: DriftConfig) -> _Outcome:
    out = _Outcome(column=str(name), kind=kind)
    if reference is None or current is None:
        sides = (("reference", reference), ("current", current))
        out.reference_size, out.current_size = (0 if s is None else int(s.notna().sum()) for _, s in sides)
        out.notes.append(f"column missing from {' and '.join(side for side, s in sides if s is None)}")
    elif kind == NUMERIC:
        _test_numeric(out, reference, current, config)
    else:
        _test_categorical(out, reference, current, config)
    return out


def _is_drift(test: str, score: float, threshold: float) -> bool:
    if test == "ks":
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


def detect_drift(reference: Table, current: Table, columns: Mapping[str, str] | None = None,
                 config: DriftConfig | None = None) -> DriftReport:
    """Test every column of ``current`` against ``reference`` and decide dataset drift.

    ``columns`` maps column -> kind; by default all columns common to both tables, with kinds inferred
    from the reference (``infer_kinds``). Never raises on data problems: they become
    ``insufficient_data`` columns with a ``detail``. A table is a DataFrame or a ``ParquetColumns``, whose
    columns are read only while they are tested.
    """
    config = config or DriftConfig()
    if columns is None:
        columns = {name: kind for name, kind in infer_kinds(reference).items() if name in current}
    bad = {name: kind for name, kind in columns.items() if kind not in KINDS}
    if bad:
        raise ValueError(f"column kinds must be one of {KINDS}, got {bad}")
    # Columns are independent and numpy releases the GIL in sorts and ufuncs, so a few threads help;
    # the cap bounds memory, as each column in flight holds a few arrays of its size.
    def test(name: Any, kind: str) -> _Outcome:
        return _outcome(name, kind, reference.get(name), current.get(name), config)

    with ThreadPoolExecutor(max_workers=max(1, min(len(columns), os.cpu_count() or 1, 4))) as pool:
        outcomes = list(pool.map(test, columns.keys(), columns.values()))

    thresholds = {}
    for out in outcomes:  # per column > global > the test's default; NaN when nothing was tested
        default = P_VALUE_TESTS.get(out.test) or DISTANCE_TESTS.get(out.test) or math.nan
        threshold = config.stattest_threshold if config.stattest_threshold is not None else default
        thresholds[out.column] = float(config.column_thresholds.get(out.column, threshold))

    with_p = [out for out in outcomes if out.tested and out.p_value is not None]
    if config.bh_correction and with_p:
        adjusted = stats.false_discovery_control([out.p_value for out in with_p], method="bh")
        for out, q in zip(with_p, adjusted, strict=True):
            out.notes.append(f"Benjamini-Hochberg adjusted over {len(with_p)} tests, raw p {out.p_value:.4g}")
            out.p_value = float(q)

    results = []
    for out in outcomes:
        threshold = thresholds[out.column]
        drifted = False
        if out.tested:
            score = out.p_value if out.p_value is not None else out.statistic
            drifted = _is_drift(out.test, score, threshold)
            if config.psi_threshold is not None and out.psi is not None and out.psi >= config.psi_threshold:
                out.notes.append(f"PSI {out.psi:.4g} >= psi_threshold {config.psi_threshold}")
                drifted = True
        status = (DRIFT if drifted else NO_DRIFT) if out.tested else INSUFFICIENT
        results.append(ColumnDrift(
            column=out.column, kind=out.kind, test=out.test, statistic=out.statistic, p_value=out.p_value,
            threshold=threshold, drifted=drifted, status=status, psi=out.psi,
            reference_size=out.reference_size, current_size=out.current_size, detail="; ".join(out.notes),
        ))

    tested = [c for c in results if c.status != INSUFFICIENT]
    share = sum(c.drifted for c in tested) / len(tested) if tested else 0.0
    dataset_drift = bool(tested) and share >= config.drift_share
    status = INSUFFICIENT if not tested else (DRIFT if dataset_drift else NO_DRIFT)
    return DriftReport(columns=results, share_drifted=share, dataset_drift=dataset_drift, status=status,
                       drift_share_threshold=config.drift_share, reference_size=len(reference),
                       current_size=len(current))


# ------------------------------------------------------------------------------------------ output


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}"


_VERDICTS = {DRIFT: "DRIFT", NO_DRIFT: "ok", INSUFFICIENT: "insufficient data"}


def _dataset_line(report: DriftReport) -> str:
    tested = sum(c.status != INSUFFICIENT for c in report.columns)
    if report.status == INSUFFICIENT:
        return f"Dataset: insufficient data (no column of {len(report.columns)} could be tested)"
    verdict = "DRIFT" if report.dataset_drift else "no drift"
    return (f"Dataset: {verdict} ({len(report.drifted_columns)} of {tested} tested columns drifted, "
            f"share {report.share_drifted:.2f}, threshold {report.drift_share_threshold:.2f})")


def _table_rows(report: DriftReport) -> tuple[list[str], list[list[str]]]:
    header = ["column", "kind", "test", "statistic", "p-value", "threshold", "psi", "verdict"]
    rows = [[c.column, c.kind, c.test or "-", _fmt(c.statistic), _fmt(c.p_value), _fmt(c.threshold),
             _fmt(c.psi), _VERDICTS[c.status]] for c in report.columns]
    return header, rows


def format_table(report: DriftReport) -> str:
    """Fixed-width text table of the per-column verdicts, followed by the dataset verdict."""
    header, rows = _table_rows(report)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {c.column}: {c.detail}" for c in report.columns if c.detail]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", _dataset_line(report)]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.35rem .6rem;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fde2e2}tr.insufficient_data td{background:#fff4d6}
.verdict{font-size:1.15rem;font-weight:600;margin:1rem 0}
.drift{color:#b00020}.no_drift{color:#1b7a2f}.insufficient_data{color:#8a6d00}
"""


def render_html(report: DriftReport) -> str:
    """A self-contained HTML page (inline CSS, no scripts or external assets) with the per-column table."""
    header, rows = _table_rows(report)
    numeric_cells = {"statistic", "p-value", "threshold", "psi"}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*header, "detail"])
    body = []
    for column, row in zip(report.columns, rows, strict=True):
        cells = "".join(
            f'<td class="num">{html.escape(v)}</td>' if h in numeric_cells else f"<td>{html.escape(v)}</td>"
            for h, v in zip(header, row, strict=True)
        )
        body.append(f'<tr class="{column.status}">{cells}<td>{html.escape(column.detail)}</td></tr>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data drift report</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>Data drift report</h1>\n"
        f"<p>Reference rows: {report.reference_size} &middot; current rows: {report.current_size}</p>\n"
        f'<p class="verdict {report.status}">{html.escape(_dataset_line(report))}</p>\n'
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        "<p>Tests and thresholds follow Evidently 0.7 DataDriftPreset defaults: p-value tests drift "
        "below the threshold, distances at or above it.</p>\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------------- CLI


class DriftInputError(Exception):
    """A problem with an input file or option, reported to the user without a traceback."""


def read_table(path: str) -> pd.DataFrame:
    """CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) by extension."""
    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif suffixes.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv
    else:
        raise DriftInputError(f"{path}: unsupported file type (expected .csv, .csv.gz, .parquet or .pq)")
    if not Path(path).is_file():
        raise DriftInputError(f"{path}: no such file")
    try:
        return reader(path)
    except Exception as exc:  # any parser failure is a user-facing input problem
        raise _unreadable(path, exc) from exc


def _unreadable(path: str, exc: Exception) -> DriftInputError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DriftInputError(f"{path}: cannot read ({message})")


class ParquetColumns:
    """A Parquet file as a table whose columns are read one at a time, when asked for: ``detect_drift`` then
    holds only the columns in flight (at most 4 per side), however large the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        meta = pq.read_schema(path)
        pandas_meta = meta.pandas_metadata or {}
        index = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
        self.columns = [name for name in meta.names if name not in index]  # a stored index is not data
        self._rows = pq.read_metadata(path).num_rows

    def __len__(self) -> int:
        return self._rows

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self.columns:
            raise KeyError(name)
        return pq.read_table(self.path, columns=[name]).column(0).to_pandas().rename(name)

    def get(self, name: str, default: pd.Series | None = None) -> pd.Series | None:
        return self[name] if name in self.columns else default


Table = pd.DataFrame | ParquetColumns


def open_table(path: str) -> Table:
    """``read_table`` for drift: a Parquet file is opened column by column (``ParquetColumns``), not loaded."""
    if "".join(Path(path).suffixes[-2:]).lower().endswith((".parquet", ".pq")) and Path(path).is_file():
        try:
            return ParquetColumns(path)
        except Exception as exc:  # any reader failure is a user-facing input problem
            raise _unreadable(path, exc) from exc
    return read_table(path)


def drift_command(reference: str, current: str, *, as_json: bool = False, html: str | None = None,
                  columns: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Body of ``mlops drift REFERENCE CURRENT``: 0 no drift (or nothing testable), 1 drift, 2 error."""
    try:
        ref_frame, cur_frame = open_table(reference), open_table(current)
        kinds = infer_kinds(ref_frame)
        if columns is None:
            selected = {name: kind for name, kind in kinds.items() if name in cur_frame}
            if not selected:
                raise DriftInputError(f"{current}: no testable column in common with {reference}")
        else:
            unknown = [name for name in columns if name not in ref_frame]
            if unknown:
                raise DriftInputError(f"{reference}: no column named {', '.join(map(repr, unknown))}")
            selected = {name: kinds.get(name) or _fallback_kind(ref_frame[name]) for name in columns}
        report = detect_drift(ref_frame, cur_frame, selected)
        text = json.dumps(report.to_dict(), indent=2) if as_json else format_table(report)
        if html is not None:
            try:
                Path(html).write_text(render_html(report), encoding="utf-8")
            except OSError as exc:
                raise DriftInputError(f"{html}: cannot write HTML report ({exc.strerror or exc})") from exc
    except DriftInputError as exc:
        print(f"mlops drift: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the CLI promises exit code 2 and a message, never a traceback
        print(f"mlops drift: error comparing {current} with {reference}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    print(text, file=out)
    if report.status == INSUFFICIENT:
        print("mlops drift: warning: no column had enough data to test", file=sys.stderr)
    return 1 if report.dataset_drift else 0


def _fallback_kind(series: pd.Series) -> str:
    """Kind from the dtype alone, for a column inference skips (e.g. text) but the caller asked for."""
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    return NUMERIC if numeric else CATEGORICAL
