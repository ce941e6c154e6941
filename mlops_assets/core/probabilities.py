"""Labels and class probabilities from one model call: what the gateway and batch scoring both log.

A classifier's probabilities are computed once per call; the label is derived from them (``classes_`` at the
argmax) where that is exactly what the estimator's own ``predict`` does, so logging probabilities costs no
second pass. scikit-learn's HistGradientBoosting, RandomForest and LogisticRegression classifiers predict the
class of highest probability by construction (``tests/core/test_probabilities.py`` checks it on real data
sets), except where two classes tie for it once rounded: there some take the label from the unrounded
decision, so tied rows alone are asked of ``predict``. Any other classifier has both methods called. No Dagster
import: the gateway uses this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Final estimators whose ``predict`` is ``classes_[argmax(predict_proba)]`` (ties included: both take the first).
ARGMAX_ESTIMATORS = frozenset(
    {
        "HistGradientBoostingClassifier",
        "RandomForestClassifier",
        "LogisticRegression",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
    }
)
PROBA_PREFIX = "proba_"


def proba_column(cls: Any) -> str:
    """The column that holds the probability of class ``cls`` in scored tables and the read prediction log."""
    return f"{PROBA_PREFIX}{cls}"


@dataclass(frozen=True)
class Predicted:
    """One call's answers: a label (or value) per row and, for classifiers, a probability per row and class."""

    labels: np.ndarray
    proba: np.ndarray | None = None  # shape (rows, len(classes)), columns in ``Predictor.classes`` order

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, start: int, stop: int) -> Predicted:
        return Predicted(self.labels[start:stop], None if self.proba is None else self.proba[start:stop])


@dataclass(frozen=True)
class Predictor:
    """A loaded model with what it can say about its classes, decided once when it is loaded."""

    model: Any
    classes: tuple[Any, ...] | None = None  # a classifier with predict_proba; None: labels/values only
    derive_labels: bool = False  # the label is the argmax of the probabilities: one call, not two

    @classmethod
    def of(cls, model: Any) -> Predictor:
        classes = getattr(model, "classes_", None) if hasattr(model, "predict_proba") else None
        if classes is None:
            return cls(model)
        final = model.steps[-1][1] if hasattr(model, "steps") else model
        return cls(model, tuple(np.asarray(classes).tolist()), type(final).__name__ in ARGMAX_ESTIMATORS)

    def predict(self, frame: pd.DataFrame) -> Predicted:
        if self.classes is None:
            return Predicted(np.asarray(self.model.predict(frame)))
        proba = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
        if not self.derive_labels:
            return Predicted(np.asarray(self.model.predict(frame)), proba)
        best = proba.argmax(axis=1)
        labels = np.asarray(self.model.classes_)[best]
        # A tie for the highest probability (e.g. 0.5/0.5 from a decision of 1e-20) may hide a label ``predict``
        # takes from the unrounded decision: those rows, and only those, ask ``predict`` itself.
        tied = (proba == proba[np.arange(len(proba)), best][:, None]).sum(axis=1) > 1
        if tied.any():
            rows = frame.iloc[tied] if isinstance(frame, pd.DataFrame) else frame[tied]
            labels[tied] = self.model.predict(rows)
        return Predicted(labels, proba)
