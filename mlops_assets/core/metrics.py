"""Model quality numbers for any number of classes: holdout metrics, per-class metrics, why a metric is undefined,
and the cross-validation scorer and folds that tuning and the CV score share.

Classifiers are scored over the spec's full class list, not the classes a model or a holdout happens to
contain: a class absent from the training rows gets probability 0, a class absent from the holdout is named in
``metric_notes``, and nothing silently shrinks a five-class problem into a four-class one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold

from mlops_assets.core.features import xy
from mlops_assets.core.spec import DatasetSpec

PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}
HIGHER_IS_BETTER = {"roc_auc": True, "f1": True, "f1_macro": True, "f1_weighted": True, "accuracy": True,
                    "log_loss": False, "rmse": False, "mae": False, "r2": True}


def class_list(spec: DatasetSpec, model: Any = None) -> list[Any]:
    """The spec's classes, then any class the model knows that the spec does not list (never dropped)."""
    known = list(spec.classes or [])
    extra = [c for c in getattr(model, "classes_", []) if c not in known]
    return known + [plain_value(c) for c in extra]


def is_binary(spec: DatasetSpec) -> bool:
    return spec.task == "classification" and len(spec.classes or []) == 2


def aligned_proba(model: Any, x: pd.DataFrame, labels: list[Any]) -> np.ndarray:
    """``predict_proba`` with one column per label in ``labels`` order; a class the model never saw gets 0."""
    proba = model.predict_proba(x)
    out = np.zeros((len(x), len(labels)))
    index = {label: i for i, label in enumerate(labels)}
    for j, cls in enumerate(model.classes_):
        out[:, index[plain_value(cls)]] = proba[:, j]
    return out


def ovr_roc_auc(y: pd.Series | np.ndarray, proba: np.ndarray, labels: list[Any]) -> float:
    """Macro one-vs-rest ROC AUC over ``labels`` (columns of ``proba``); a class with no rows (or only rows)
    in ``y`` has no AUC and is left out of the average, NaN when no class has one."""
    y = np.asarray(y)
    scores = [roc_auc_score(y == label, proba[:, i]) for i, label in enumerate(labels)
              if 0 < int((y == label).sum()) < len(y)]
    return float(np.mean(scores)) if scores else float("nan")


def compute_metrics(model: Any, frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float]:
    """Task-appropriate metrics on a labelled frame: RMSE, MAE, R2; accuracy, F1, log loss and ROC AUC for two
    classes; accuracy, macro and weighted F1, log loss and macro one-vs-rest ROC AUC over the full class list
    for more. An undefined metric is NaN; ``metric_notes`` says why."""
    x, y = xy(frame, spec)
    if spec.task == "regression":
        pred = model.predict(x)
        return {"rmse": float(root_mean_squared_error(y, pred)), "mae": float(mean_absolute_error(y, pred)),
                "r2": float(r2_score(y, pred))}
    if is_binary(spec):
        return _binary_metrics(model, x, y)
    labels = sorted(class_list(spec, model))  # log_loss reads probability columns in sorted label order
    proba = aligned_proba(model, x, labels)
    pred = np.asarray(labels)[proba.argmax(axis=1)]
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, labels=labels, average="macro", zero_division=np.nan)),
        "f1_weighted": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=np.nan)),
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "roc_auc": ovr_roc_auc(y, proba, labels),
    }


def _binary_metrics(model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Two classes, exactly as before multiclass support: the positive class is the model's last one."""
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred, average="binary", pos_label=classes[-1])),
        "log_loss": float(log_loss(y, proba, labels=classes)),
    }
    try:
        out["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
    except ValueError:  # a holdout with one class: AUC is undefined, say so rather than invent it
        out["roc_auc"] = float("nan")
    return out


def per_class_metrics(model: Any, frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class in the spec (NaN where a class has no rows and no
    predictions), so a rare class the averages hide is visible. Empty for regression."""
    if spec.task != "classification":
        return pd.DataFrame()
    x, y = xy(frame, spec)
    labels = class_list(spec, model)
    precision, recall, f1, support = precision_recall_fscore_support(y, model.predict(x), labels=labels,
                                                                     zero_division=np.nan)
    return pd.DataFrame({"class": [str(c) for c in labels], "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(int)})


def per_class_metric_names(table: pd.DataFrame, prefix: str) -> dict[str, float]:
    """The per-class table as flat metric names, ``<prefix><class>_f1`` etc. (MLflow-safe), NaNs left out."""
    out = {}
    for row in table.itertuples(index=False):
        name = re.sub(r"[^A-Za-z0-9_.\- /]", "_", row[0])
        for metric in ("precision", "recall", "f1"):
            value = float(getattr(row, metric))
            if not np.isnan(value):
                out[f"{prefix}{name}_{metric}"] = value
    return out


def metric_notes(metrics: dict[str, float], frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, str]:
    """Why each NaN metric could not be computed, and which classes a multiclass ROC AUC left out."""
    y = frame[spec.target]
    notes = {}
    undefined = sorted(k for k, v in metrics.items() if np.isnan(v))
    for name in undefined:
        notes[name] = f"{name} could not be computed on {len(y)} holdout row(s)"
    if spec.task == "classification":
        present = [c for c in class_list(spec) if (y == c).any()]
        missing = [c for c in class_list(spec) if c not in present]
        if len(present) < 2 and "roc_auc" in undefined:
            which = f"only one class ({present[0]}) present" if present else "no labelled rows"
            notes["roc_auc"] = f"roc_auc could not be computed: {which} in the holdout"
        elif missing and "roc_auc" in metrics and not is_binary(spec):
            notes["roc_auc"] = (f"roc_auc averaged over {len(present)} of {len(present) + len(missing)} classes: "
                                f"no holdout rows of {missing}")
    elif len(y) < 2 and "r2" in undefined:
        notes["r2"] = "r2 could not be computed: fewer than two holdout rows"
    return notes


@dataclass(frozen=True)
class Folds:
    """The cross-validation splitter, and why it differs from the configured folds (empty when it does not)."""

    splitter: StratifiedKFold | KFold
    note: str = ""


def cv_folds(spec: DatasetSpec, y: pd.Series, folds: int, seed: int | None = None) -> Folds:
    """Stratified folds for a classifier, capped by the rarest class: a class with fewer rows than folds
    reduces the folds to its count, and a class with a single row makes them plain KFold (stratifying on one
    row is impossible). ``seed`` shuffles; None keeps the rows' order (the CV score's historical folds)."""
    shuffle = {"shuffle": True, "random_state": seed} if seed is not None else {}
    if spec.task != "classification":
        return Folds(KFold(folds, **shuffle))
    counts = pd.Series(y).value_counts()
    rarest, fewest = counts.index[-1], int(counts.iloc[-1])
    if fewest >= folds:
        return Folds(StratifiedKFold(folds, **shuffle))
    if fewest >= 2:
        return Folds(StratifiedKFold(fewest, **shuffle),
                     f"{fewest} stratified folds instead of {folds}: class {rarest!r} has {fewest} training rows")
    return Folds(KFold(folds, shuffle=True, random_state=seed or 0),
                 f"unstratified KFold({folds}): class {rarest!r} has a single training row")


def cv_scoring(spec: DatasetSpec, metric: str) -> str | OvrAucScorer:
    """The scorer for cross-validation and tuning: sklearn's for two classes and regression (the numbers as
    always), one-vs-rest ROC AUC over the spec's full class list for more classes, where a fold's model or
    test rows may lack a class."""
    if metric == "rmse":
        return "neg_root_mean_squared_error"
    if metric != "roc_auc":
        raise ValueError(f"target_metric must be the primary metric roc_auc or rmse, got {metric!r}")
    return "roc_auc" if is_binary(spec) else OvrAucScorer(class_list(spec))


@dataclass(frozen=True)
class OvrAucScorer:
    """A scikit-learn scorer (``scorer(estimator, x, y)``): ``ovr_roc_auc`` over fixed labels."""

    labels: list[Any]

    def __call__(self, estimator: Any, x: pd.DataFrame, y: pd.Series) -> float:
        labels = self.labels + [plain_value(c) for c in estimator.classes_ if plain_value(c) not in self.labels]
        return ovr_roc_auc(y, aligned_proba(estimator, x, labels), labels)


def plain_value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
