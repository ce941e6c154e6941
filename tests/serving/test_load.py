"""Releases under load: a load generator in its own process (tests/support/loadgen.py) keeps keep-alive connections busy
against a gateway process while the registry moves through the platform's own release functions (blue-green
switch, canary start + share change + promotion, rollback). Not one request may fail, every answer must be
exactly what its version predicts, and both versions must answer during each move.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.pipeline import Pipeline

from mlops_assets.core.contracts import CHAMPION
from resources.tracking import MlflowTracking
from tests.support.tiny_models import TOKEN, GatewayProcess, Store, data, split, train

LOADGEN = Path(__file__).resolve().parents[1] / "support" / "loadgen.py"
ROWS = data(8, 41)[0]
SETTLE_SECONDS = 1.0  # load before and after each move, so both versions answer in one run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store.create(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def tracking(store: Store) -> MlflowTracking:
    return store.tracking()


@pytest.fixture(scope="module")
def models() -> dict[str, Pipeline]:
    """Every registered version's model, to check each answer against the version that gave it."""
    return {}


def _register(store: Store, models: dict[str, Pipeline]) -> str:
    """A new version that answers differently from the one before it."""
    model = train(len(models) + 1, flip=len(models) % 2 == 1)
    version = store.register(model)
    models[version] = model
    return version


@pytest.fixture(scope="module")
def gateway(store: Store, tracking: MlflowTracking, models: dict[str, Pipeline],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tracking.promote(_register(store, models))
    gw = GatewayProcess(store, tmp_path_factory.mktemp("home")).start()
    try:
        assert gw.wait_for(model_version="1")["model_version"] == "1"
        yield gw
    finally:
        gw.stop()


class Load:
    """The load generator running for the duration of a ``with`` block; ``result`` is its report."""

    def __init__(self, url: str, connections: int = 4) -> None:
        self.cmd = [sys.executable, str(LOADGEN), "--url", url, "--body", json.dumps(split(ROWS)),
                    "--rows", str(len(ROWS)), "--connections", str(connections), "--seconds", "90"]
        self.result: dict = {}

    def __enter__(self) -> Load:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline().strip()
        if first != "started":  # every connection has had an answer, else the gateway never answered
            self.proc.kill()
            raise AssertionError(f"the load generator did not start: {first or self.proc.communicate()[0]}")
        time.sleep(SETTLE_SECONDS)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(SETTLE_SECONDS)
        out, _ = self.proc.communicate("stop\n", timeout=60)
        self.result = json.loads(out)


def _check(result: dict, models: dict[str, Pipeline], served: set[str]) -> None:
    """No failure, exactly the ``version/slot`` pairs expected, and each version's own predictions."""
    assert result["failed"] == 0, result["failures"]
    assert set(result["served"]) == served, result
    for version, answers in result["answers"].items():
        assert answers == [json.dumps(models[version].predict(ROWS).tolist())], version


def _metrics_have_no_errors(gateway: GatewayProcess) -> None:
    """A canary that fails is answered by the champion: invisible to clients, so read the gateway's count."""
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'status="error"' not in text and 'status="model_error"' not in text


def test_blue_green_switch_under_load(gateway: GatewayProcess, store: Store, tracking: MlflowTracking,
                                      models: dict[str, Pipeline]):
    old = tracking.version_by_alias(CHAMPION).version
    new = _register(store, models)
    with Load(gateway.url) as load:
        assert tracking.promote(new) == old
        assert gateway.wait_for(model_version=new)["model_version"] == new
    _check(load.result, models, {f"{old}/champion", f"{new}/champion"})


def test_canary_start_share_change_and_promotion_under_load(gateway: GatewayProcess, store: Store,
                                                            tracking: MlflowTracking, models: dict[str, Pipeline]):
    old = tracking.version_by_alias(CHAMPION).version
    new = _register(store, models)
    with Load(gateway.url) as load:
        tracking.start_canary(new, percent=20.0, mode="canary")
        assert gateway.wait_for(slots={CHAMPION: old, "canary": new})["canary_percent"] == 20.0
        time.sleep(SETTLE_SECONDS)
        share = httpx.put(f"{gateway.url}/admin/traffic", json={"canary_percent": 80},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert share.status_code == 200 and share.json()["canary_percent"] == 80.0, share.text
        time.sleep(SETTLE_SECONDS)
        assert tracking.end_canary(promote=True) == new
        assert gateway.wait_for(slots={CHAMPION: new, "canary": None})["model_version"] == new
    _check(load.result, models, {f"{old}/champion", f"{new}/canary", f"{new}/champion"})
    _metrics_have_no_errors(gateway)


def test_rollback_under_load(gateway: GatewayProcess, store: Store, tracking: MlflowTracking,
                             models: dict[str, Pipeline]):
    before = tracking.version_by_alias(CHAMPION).version
    bad = _register(store, models)
    tracking.promote(bad)
    assert gateway.wait_for(model_version=bad)["model_version"] == bad
    with Load(gateway.url) as load:
        assert tracking.rollback() == (bad, before)
        assert gateway.wait_for(model_version=before)["model_version"] == before
    _check(load.result, models, {f"{bad}/champion", f"{before}/champion"})
    _metrics_have_no_errors(gateway)
