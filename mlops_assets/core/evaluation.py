"""The quality gate: absolute thresholds, and no regression against the champion on the same holdout rows."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from mlops_assets.core.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, compute_metrics
from mlops_assets.core.spec import DatasetSpec

# Absolute thresholds when the run config gives none: better than chance (classification), better than
# predicting the mean (regression).
DEFAULT_THRESHOLDS = {"classification": {"roc_auc": 0.70}, "regression": {"r2": 0.0}}


@dataclass(frozen=True)
class GateRule:
    rule: str
    metric: str
    candidate: float
    required: float
    passed: bool
    note: str = ""

    @property
    def reason(self) -> str:
        if math.isnan(self.candidate):
            return f"{self.rule}: {self.note}"
        return (f"{self.rule}: {self.metric} = {self.candidate:.4f}, required "
                f"{'>=' if HIGHER_IS_BETTER[self.metric] else '<='} {self.required:.4f}")


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    rules: list[GateRule] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [r.reason for r in self.rules if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules], "reasons": self.reasons}


def _ok(value: float, bound: float, higher: bool) -> bool:
    if math.isnan(value):
        return False
    return value >= bound if higher else value <= bound


def gate(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    *,
    task: str,
    thresholds: dict[str, float],
    max_regression: float,
    notes: dict[str, str] | None = None,
) -> GateVerdict:
    """Every threshold must hold, the primary metric must have a value (NaN or missing fails, with ``notes``
    saying why), and it may be worse than the champion's by at most ``max_regression`` (absolute), both
    measured on the same holdout rows. A champion whose own primary metric is undefined is not compared with."""
    notes = notes or {}
    rules = []
    for metric, bound in sorted(thresholds.items()):
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown gate metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")
        rules.append(_rule("threshold", metric, candidate, bound, notes))
    metric = PRIMARY_METRIC[task]
    higher = HIGHER_IS_BETTER[metric]
    if metric not in thresholds:
        rules.append(_rule("primary metric computed", metric, candidate, -math.inf if higher else math.inf, notes))
    champ = (champion or {}).get(metric, math.nan)
    if champion and math.isnan(champ):
        rules.append(GateRule("no regression vs champion", metric, candidate.get(metric, math.nan), champ, True,
                              f"not compared: the champion's {metric} could not be computed on this holdout"))
    elif champion:
        bound = champ - max_regression if higher else champ + max_regression
        rules.append(_rule("no regression vs champion", metric, candidate, bound, notes))
    return GateVerdict(passed=all(r.passed for r in rules), rules=rules)


def _rule(name: str, metric: str, candidate: dict[str, float], bound: float, notes: dict[str, str]) -> GateRule:
    value = candidate.get(metric, math.nan)
    note = notes.get(metric) or (f"{metric} could not be computed" if metric in candidate else
                                 f"{metric} was not computed (computed: {', '.join(sorted(candidate)) or 'none'})")
    return GateRule(name, metric, value, bound, _ok(value, bound, HIGHER_IS_BETTER[metric]),
                    note if math.isnan(value) else "")


def comparison(candidate: dict[str, float], champion: dict[str, float] | None) -> pd.DataFrame:
    rows = []
    for metric in sorted(candidate):
        champ = champion.get(metric) if champion else None
        delta = None if champ is None else candidate[metric] - champ
        rows.append({"metric": metric, "candidate": round(candidate[metric], 5),
                     "champion": None if champ is None else round(champ, 5),
                     "delta": None if delta is None else round(delta, 5),
                     "better": None if delta is None else (delta >= 0) == HIGHER_IS_BETTER[metric]})
    return pd.DataFrame(rows)


def slice_metrics(model: Any, holdout: pd.DataFrame, spec: DatasetSpec, columns: list[str],
                  min_rows: int = 30) -> pd.DataFrame:
    """The primary metric per value of each slice column (slices smaller than ``min_rows`` are skipped)."""
    metric = PRIMARY_METRIC[spec.task]
    rows = []
    for col in columns:
        for value, part in holdout.groupby(col, dropna=False, observed=True):
            if len(part) < min_rows:
                continue
            rows.append({"slice": f"{col}={value}", "rows": len(part),
                         metric: round(compute_metrics(model, part, spec)[metric], 5)})
    return pd.DataFrame(rows)
