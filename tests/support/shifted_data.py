"""Synthetic data under a known covariate shift for the performance-estimation tests (``core.cbpe``,
``core.estimation``): P(y|x) never changes, only where x lies, so estimation is valid and its error measurable."""

import numpy as np


def binary_shifted(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Two features; the label's law given x never changes, only where x lies (toward the boundary)."""
    x = rng.normal(0, 1, (n, 2))
    x[:, 0] = x[:, 0] * (1 - shift) + 0.0
    logits = 2.5 * x[:, 0] - 1.0 * x[:, 1] ** 2 + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return x, y
