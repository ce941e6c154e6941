"""Feature preparation: a stable train/holdout split and the fitted preprocessing that travels with the model.

Preprocessing is part of the scikit-learn Pipeline, so serving takes raw columns and can never skew from
training; the split is by a hash of the row id (see ``core.data.stable_holdout_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_assets.core.data import stable_holdout_mask
from mlops_assets.core.spec import DatasetSpec


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame


def split(frame: pd.DataFrame, spec: DatasetSpec) -> Split:
    mask = stable_holdout_mask(frame, spec)
    return Split(train=frame.loc[~mask].reset_index(drop=True), holdout=frame.loc[mask].reset_index(drop=True))


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


def describe(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Per-feature summary shown on the features materialization."""
    rows = []
    for col in spec.feature_names:
        s = frame[col]
        if spec.feature_kinds[col] == "numeric":
            rows.append({"column": col, "kind": "numeric", "nulls": int(s.isna().sum()),
                         "mean": round(float(s.mean()), 4), "std": round(float(s.std()), 4),
                         "min": float(s.min()), "max": float(s.max())})
        else:
            top = s.value_counts().head(1)
            rows.append({"column": col, "kind": "categorical", "nulls": int(s.isna().sum()),
                         "distinct": int(s.nunique()), "top": f"{top.index[0]} ({int(top.iloc[0])})"
                         if len(top) else ""})
    return pd.DataFrame(rows)
