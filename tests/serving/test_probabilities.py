"""Class probabilities at the gateway: returned only when asked (MLflow's ``params``), always logged for a
classifier, refused with a clear 400 for a regressor. Real HTTP, a real MLflow store (tests/support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops_assets.core.predictions import read_predictions, utc_now
from mlops_assets.core.waiting import wait_until
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread
from tests.support.tiny_models import MODEL, Store, data, split, train

REGRESSOR = "proba-test-regressor"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store.create(tmp_path_factory.mktemp("mlflow"))


def _serve(store: Store, name: str, home: Path) -> GatewayThread:
    config = GatewayConfig(
        model_name=name,
        tracking_uri=store.uri,
        registry_uri=store.uri,
        log_root=home,
        port=0,
        poll_seconds=0.2,
        admin_token=None,
        max_request_bytes=64 * 1024,
    )
    gateway = GatewayThread(config).start()
    assert gateway.wait_for_version("1", timeout=30)
    return gateway


@pytest.fixture
def classifier(store: Store, tmp_path: Path) -> Iterator[tuple[GatewayThread, Pipeline]]:
    model = train(1)
    if not store.client.search_registered_models(f"name = '{MODEL}'"):
        store.alias(store.register(model))
    gateway = _serve(store, MODEL, tmp_path)
    try:
        yield gateway, model
    finally:
        gateway.stop()


def test_probabilities_only_when_asked_and_always_logged(classifier, tmp_path: Path):
    gateway, model = classifier
    rows, _ = data(5, 7)
    plain = httpx.post(f"{gateway.url}/invocations", json=split(rows), headers={"X-Request-ID": "plain"})
    assert plain.status_code == 200 and plain.json() == {"predictions": model.predict(rows).tolist()}
    explicit = httpx.post(f"{gateway.url}/invocations", json={**split(rows), "params": {"predict_method": "predict"}})
    assert explicit.json() == plain.json()

    asked = httpx.post(
        f"{gateway.url}/invocations",
        headers={"X-Request-ID": "asked"},
        json={**split(rows), "params": {"predict_method": "predict_proba"}},
    )
    assert asked.status_code == 200
    assert asked.json()["classes"] == [0, 1]
    np.testing.assert_allclose(asked.json()["predictions"], model.predict_proba(rows))

    for params, words in (
        ({"predict_method": "decision_function"}, "must be 'predict' or 'predict_proba'"),
        ({"temperature": 1}, "unknown 'params' ['temperature']"),
        ("x", "must be an object"),
    ):
        bad = httpx.post(f"{gateway.url}/invocations", json={**split(rows), "params": params})
        assert bad.status_code == 400 and words in bad.json()["message"]

    def logged() -> bool:
        return {"plain", "asked"} <= set(read_predictions(tmp_path, utc_now().date())["request_id"])

    assert wait_until(logged, timeout=30, interval=0.1)
    frame = read_predictions(tmp_path, utc_now().date())
    for rid in ("plain", "asked"):  # the answer's form does not change what is logged
        lines = frame[frame["request_id"] == rid]
        np.testing.assert_allclose(lines[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(rows))
        assert lines["prediction"].tolist() == model.predict(rows).tolist()


def test_a_regressor_refuses_probabilities_and_logs_none(store: Store, tmp_path: Path):
    x, y = data(200, 3)
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough")
    store.alias(
        store.register(Pipeline([("pre", pre), ("model", Ridge())]).fit(x, y * 2.5), name=REGRESSOR), name=REGRESSOR
    )
    gateway = _serve(store, REGRESSOR, tmp_path)
    try:
        rows = data(3, 4)[0]
        asked = httpx.post(
            f"{gateway.url}/invocations", json={**split(rows), "params": {"predict_method": "predict_proba"}}
        )
        assert asked.status_code == 400 and "gives no class probabilities" in asked.json()["message"]
        assert (
            httpx.post(f"{gateway.url}/invocations", json=split(rows), headers={"X-Request-ID": "r"}).status_code == 200
        )
    finally:
        gateway.stop()
    frame = read_predictions(tmp_path, utc_now().date())
    assert list(frame["request_id"]) == ["r"] * 3 and not any(c.startswith("proba_") for c in frame.columns)
