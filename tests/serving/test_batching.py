"""Where the batcher runs a call (serving/batching.py): small compiled calls on the event loop, the rest on
its worker thread, with the same answers either way (breast cancer data, the platform's preprocessor)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlops_assets.serving.batching import INLINE_ROWS, Batcher
from mlops_assets.serving.models import Slot
from tests.serving.test_fastpath import _frame, _pipeline, _rows, _slot


class ThreadNotingRegression(LogisticRegression):
    """A real logistic regression that notes which thread asked for its probabilities."""

    def predict_proba(self, X):  # noqa: N803 (scikit-learn's argument name)
        self.__dict__.setdefault("threads_", []).append(threading.get_ident())
        return super().predict_proba(X)


class ThreadNotingForest(RandomForestClassifier):
    """A real random forest that notes which thread asked for its probabilities."""

    def predict_proba(self, X):  # noqa: N803 (scikit-learn's argument name)
        self.__dict__.setdefault("threads_", []).append(threading.get_ident())
        return super().predict_proba(X)


def _answers(slot: Slot, parts: list[pd.DataFrame]) -> tuple[list, int]:
    """Every part as one concurrent request; the answers and the event loop's thread."""

    async def run() -> tuple[list, int]:
        batcher = Batcher()
        try:
            answers = await asyncio.gather(*(batcher.predict(slot, _rows(slot, p)) for p in parts))
            return answers, threading.get_ident()
        finally:
            batcher.close()

    return asyncio.run(run())


def test_small_light_calls_run_on_the_loop_and_large_heavy_or_uncompiled_ones_on_the_worker() -> None:
    x, y, numeric, categorical = _frame("breast_cancer")
    model = _pipeline(numeric, categorical, ThreadNotingRegression(max_iter=2000)).fit(x, y)
    forest = _pipeline(numeric, categorical, ThreadNotingForest(n_estimators=20, random_state=0)).fit(x, y)
    compiled, heavy = _slot(model, x), _slot(forest, x)
    assert compiled.fast.light and not heavy.fast.light
    uncompiled = Slot("1", model, compiled.schema, "now")  # served through the pipeline's pandas path
    small, large = [x.iloc[i : i + 3] for i in range(0, 12, 3)], [x.iloc[: INLINE_ROWS + 1]]
    cases = ((compiled, small, True), (compiled, large, False), (uncompiled, small, False), (heavy, small, False))
    for slot, parts, on_loop in cases:
        model = slot.model
        estimator = model.named_steps["model"]
        estimator.threads_ = []
        answers, loop_thread = _answers(slot, parts)
        assert estimator.threads_ and all((t == loop_thread) is on_loop for t in estimator.threads_)
        for answer, part in zip(answers, parts, strict=True):
            assert answer.outputs == model.predict(part).tolist()
            # a merged call's matrix product may differ from a lone one's in the last bits (BLAS blocking)
            assert np.allclose(answer.probabilities, model.predict_proba(part), rtol=1e-12, atol=0)
