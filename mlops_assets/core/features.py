"""Feature preparation: a stable train/holdout split and the fitted preprocessing that travels with the model.

Preprocessing is part of the scikit-learn Pipeline, so serving takes raw columns and can never skew from
training; the split is by a hash of the row id (see ``core.versions.stable_holdout_mask``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_assets.core import validation
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.versions import stable_holdout_mask

# Rows of a dataset version read, split, validated and written at a time by the features stage.
CHUNK_ROWS = 256 * 1024


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame


def split(frame: pd.DataFrame, spec: DatasetSpec) -> Split:
    mask = stable_holdout_mask(frame, spec)
    return Split(train=frame.loc[~mask].reset_index(drop=True), holdout=frame.loc[mask].reset_index(drop=True))


def build_features(chunks: Iterable[pd.DataFrame], spec: DatasetSpec, write: Callable[[str, pd.DataFrame], None],
                   progress: Callable[[int], None] | None = None) -> dict[str, FeatureProfile]:
    """Split a dataset version chunk by chunk into its train and holdout tables: each chunk's parts are
    validated against the feature schema, profiled and handed to ``write(name, part)``, so memory is bounded by
    a chunk. The rules a chunk cannot judge (share of nulls, two classes to learn) are checked at the end.
    Raises ``BatchRejected`` naming the table, column and rule; returns each table's profile."""
    schema = validation.feature_schema(spec)
    per_chunk = validation.chunk_schema(schema)
    columns = spec.feature_names + [spec.target]
    profiles = {"train": FeatureProfile(spec), "holdout": FeatureProfile(spec)}
    for chunk in chunks:
        parts = split(chunk, spec)
        for name, part in (("train", parts.train), ("holdout", parts.holdout)):
            validation.validate(part[columns], per_chunk, file=f"{name} features")
            profiles[name].update(part)
            write(name, part)
        if progress:
            progress(sum(p.rows for p in profiles.values()))
    for name, profile in profiles.items():
        failures = validation.null_share_failures(profile.nulls, profile.rows, validation.null_limits(spec))
        if failures:
            raise validation.BatchRejected(f"{name} features", f"failed validation against schema {schema.name!r}",
                                           failures)
    if spec.task == "classification" and len(profiles["train"].label_counts()) < 2:
        raise validation.BatchRejected("train features", "a single class in the training rows; land batches "
                                                         "with every label before training")
    return profiles


def xy(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, pd.Series]:
    return frame[spec.feature_names], frame[spec.target]


def build_preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    numeric = [c.name for c in spec.numeric]
    categorical = [c.name for c in spec.categorical]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                                                  ("scale", StandardScaler())]), numeric))
    if categorical:
        transformers.append(("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(categories=[c.categories for c in spec.categorical],
                                     handle_unknown="ignore", sparse_output=False)),
        ]), categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


class FeatureProfile:
    """Per-feature summary (nulls, mean, std, range or top category) and label counts, gathered chunk by chunk,
    so a data set of any size is described without holding it: means and variances merge exactly (Chan et al.)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.rows = 0
        self.nulls = dict.fromkeys(spec.feature_names, 0)
        self._moments: dict[str, tuple[int, float, float, float, float]] = {}  # n, mean, M2, min, max
        self._counts: dict[str, pd.Series] = {}  # categorical column (and the label) -> value counts

    def update(self, frame: pd.DataFrame) -> FeatureProfile:
        self.rows += len(frame)
        for col in self.spec.feature_names:
            s = frame[col]
            self.nulls[col] += int(s.isna().sum())
            if self.spec.feature_kinds[col] == "numeric":
                self._merge_moments(col, s.dropna().to_numpy(dtype=np.float64))
            else:
                self._merge_counts(col, s)
        self._merge_counts(self.spec.target, frame[self.spec.target])
        return self

    def _merge_moments(self, col: str, values: np.ndarray) -> None:
        if not values.size:
            return
        n_b, mean_b = values.size, float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        lo, hi = float(values.min()), float(values.max())
        if col not in self._moments:
            self._moments[col] = (n_b, mean_b, m2_b, lo, hi)
            return
        n_a, mean_a, m2_a, lo_a, hi_a = self._moments[col]
        n = n_a + n_b
        delta = mean_b - mean_a
        self._moments[col] = (n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n,
                              min(lo, lo_a), max(hi, hi_a))

    def _merge_counts(self, col: str, s: pd.Series) -> None:
        counts = s.value_counts()
        self._counts[col] = counts if col not in self._counts else self._counts[col].add(counts, fill_value=0)

    def label_counts(self) -> dict[object, int]:
        counts = self._counts.get(self.spec.target, pd.Series(dtype=np.int64))
        return {k: int(v) for k, v in counts.items()}

    def table(self) -> pd.DataFrame:
        """One row per feature, as shown on the features materialization."""
        rows = []
        for col in self.spec.feature_names:
            if self.spec.feature_kinds[col] == "numeric":
                n, mean, m2, lo, hi = self._moments.get(col, (0, np.nan, np.nan, np.nan, np.nan))
                std = float(np.sqrt(m2 / (n - 1))) if n > 1 else float("nan")
                rows.append({"column": col, "kind": "numeric", "nulls": self.nulls[col], "mean": round(mean, 4),
                             "std": round(std, 4), "min": lo, "max": hi})
            else:
                counts = self._counts.get(col, pd.Series(dtype=np.int64))
                counts = counts[counts > 0].sort_values(ascending=False, kind="stable")
                rows.append({"column": col, "kind": "categorical", "nulls": self.nulls[col],
                             "distinct": int(len(counts)),
                             "top": f"{counts.index[0]} ({int(counts.iloc[0])})" if len(counts) else ""})
        return pd.DataFrame(rows)


def describe(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Per-feature summary of one in-memory table."""
    return FeatureProfile(spec).update(frame).table()
