"""Fixtures shared by the core tests: a misspecified classifier and its CBPE reference (``test_cbpe.py``, and the
bands of ``test_estimation.py`` that are sized by its sampling error)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.cbpe import CBPE
from tests.support.shifted_data import binary_shifted


@pytest.fixture(scope="module")
def binary_setup():
    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(*binary_shifted(rng, 4000, 0.0))  # misspecified: its raw scores are miscalibrated
    x_ref, y_ref = binary_shifted(rng, 5000, 0.0)
    return rng, model, CBPE.fit(model.predict_proba(x_ref), y_ref, [0, 1], model.predict(x_ref))
