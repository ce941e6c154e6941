"""Deployment decisions as plain functions: the smoke test that must pass before traffic moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STRATEGIES = ("blue_green",)


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
