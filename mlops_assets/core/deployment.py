"""Deployment decisions as plain functions: the smoke test before traffic moves, the sticky traffic split,
and the canary verdict from live evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contracts import RELEASE_MODES
from mlops_assets.core.monitoring import labels_match

STRATEGIES = ("blue_green", *RELEASE_MODES)


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    rows: int
    mismatches: int
    detail: str


def smoke_test(offline: Sequence[Any], online: Sequence[Any], *, rtol: float = 1e-9) -> SmokeResult:
    """The registered model must predict exactly what the evaluated one did on the same holdout rows."""
    if len(offline) != len(online):
        return SmokeResult(False, len(online), abs(len(offline) - len(online)),
                           f"expected {len(offline)} predictions, got {len(online)}")
    off, on = np.asarray(offline), np.asarray(online)
    if off.dtype.kind in "fc" or on.dtype.kind in "fc":
        same = np.isclose(off.astype(float), on.astype(float), rtol=rtol, atol=0)
    else:
        same = off.astype(str) == on.astype(str)
    bad = int((~same).sum())
    detail = "identical predictions" if not bad else f"{bad} of {len(off)} predictions differ"
    return SmokeResult(bad == 0, len(off), bad, detail)


@dataclass(frozen=True)
class SlotStats:
    """What one serving slot did in the observation window (from the prediction and feedback logs)."""

    requests: int
    errors: int
    p95_latency_ms: float
    labeled: int
    correct: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.labeled if self.labeled else float("nan")


@dataclass(frozen=True)
class CanaryDecision:
    action: str  # "wait" | "promote" | "rollback"
    reasons: list[str]


def slot_stats(rows: pd.DataFrame) -> SlotStats:
    """Stats of one slot from its prediction-log rows (one per predicted row) with an optional ``label``."""
    if rows.empty:
        return SlotStats(0, 0, 0.0, 0, 0)
    requests = rows.drop_duplicates("request_id")
    errors = int(requests["error"].notna().sum()) if "error" in requests else 0
    latency = pd.to_numeric(requests["latency_ms"], errors="coerce").dropna()
    labeled = rows[rows["label"].notna()] if "label" in rows else rows.iloc[0:0]
    labeled = labeled[labeled["error"].isna()] if "error" in labeled else labeled
    correct = int(labels_match(labeled["prediction"], labeled["label"]).sum())
    return SlotStats(len(requests), errors, float(np.percentile(latency, 95)) if len(latency) else 0.0,
                     len(labeled), correct)


def canary_decision(champion: SlotStats, canary: SlotStats, *, min_requests: int, min_labeled: int,
                    max_error_rate_increase: float, max_latency_ratio: float,
                    max_accuracy_drop: float) -> CanaryDecision:
    """Roll back as soon as the canary is clearly worse; promote once it has enough evidence of being no worse.

    Errors and latency are judged on requests; accuracy only once enough labels arrived for both slots, and
    only a drop that sampling noise cannot explain counts against the canary.
    """
    bad = []
    if canary.requests and canary.error_rate > champion.error_rate + max_error_rate_increase:
        bad.append(f"error rate {canary.error_rate:.3f} vs champion {champion.error_rate:.3f}")
    if canary.requests >= min_requests and champion.p95_latency_ms > 0 and \
            canary.p95_latency_ms > max_latency_ratio * champion.p95_latency_ms:
        bad.append(f"p95 latency {canary.p95_latency_ms:.1f} ms vs champion {champion.p95_latency_ms:.1f} ms")
    labels_ready = canary.labeled >= min_labeled and champion.labeled >= min_labeled
    if labels_ready and _significantly_worse(champion, canary, max_accuracy_drop):
        bad.append(f"accuracy {canary.accuracy:.3f} vs champion {champion.accuracy:.3f} "
                   f"({canary.labeled} and {champion.labeled} labelled rows)")
    if bad:
        return CanaryDecision("rollback", bad)
    if canary.requests < min_requests:
        return CanaryDecision("wait", [f"{canary.requests} of {min_requests} canary requests so far"])
    if not labels_ready:
        return CanaryDecision("wait", [f"labels: canary {canary.labeled}, champion {champion.labeled}, "
                                       f"need {min_labeled} each"])
    return CanaryDecision("promote", [f"{canary.requests} requests, accuracy {canary.accuracy:.3f} vs "
                                      f"{champion.accuracy:.3f}, error rate {canary.error_rate:.3f}"])


def _significantly_worse(champion: SlotStats, canary: SlotStats, margin: float, z: float = 1.645) -> bool:
    """One-sided two-proportion test: is the canary's accuracy below the champion's by more than ``margin``,
    beyond sampling noise at 95%? Noise alone must not roll back a good canary."""
    p1, p2 = champion.accuracy, canary.accuracy
    se = np.sqrt(p1 * (1 - p1) / champion.labeled + p2 * (1 - p2) / canary.labeled)
    if se == 0:
        return p1 - p2 > margin
    return (p1 - p2 - margin) / se > z


def route_to_canary(key: str, percent: float) -> bool:
    """Sticky split: the same entity (or request) id always lands on the same slot."""
    if percent <= 0:
        return False
    digest = int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16)
    return (digest % 10_000) < percent * 100
