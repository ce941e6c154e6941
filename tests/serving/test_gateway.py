"""The serving gateway over real HTTP on loopback, against a real MLflow SQLite store and registry.

No Dagster: models are saved with skops and a signature, uploaded as MLflow logged models, registered and
aliased with an explicit client (the process-global tracking URI is never touched); see tests/support/tiny_models.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.pipeline import Pipeline

from mlops_assets.core.deployment import route_to_canary
from mlops_assets.core.predictions import read_feedback, read_predictions
from mlops_assets.serving import protocol
from mlops_assets.serving.batching import Batcher
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.models import Slot
from mlops_assets.serving.server import GatewayThread
from tests.support.tiny_models import COLUMNS, MODEL, TOKEN, GatewayProcess, Store, data, split, train


def test_the_gateway_imports_no_orchestrator() -> None:
    """A model server loads MLflow, scikit-learn and its web stack; never Dagster or the platform's resources."""
    probe = ("import sys, mlops_assets.serving.app, mlops_assets.serving.server; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'resources', 'sensors'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store.create(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def champion(store: Store) -> Pipeline:
    """Version 1, aliased champion."""
    model = train(1)
    assert store.register(model) == "1"
    store.alias("1")
    return model


def _config(store: Store, home: Path, name: str = MODEL, token: str | None = TOKEN) -> GatewayConfig:
    return GatewayConfig(model_name=name, tracking_uri=store.uri, registry_uri=store.uri, log_root=home,
                         port=0, poll_seconds=0.2, admin_token=token, max_request_bytes=64 * 1024)


@pytest.fixture
def gateway(store: Store, champion: Pipeline, tmp_path: Path) -> Iterator[GatewayThread]:
    served = str(store.client.get_model_version_by_alias(MODEL, "champion").version)
    gw = GatewayThread(_config(store, tmp_path)).start()
    try:
        assert gw.wait_for_version(served, timeout=30)
        yield gw
    finally:
        gw.stop()


def _logged(read, root: Path, predicate, timeout: float = 10) -> pd.DataFrame:
    """Log lines are written by a background thread: wait until the wanted ones are on disk."""
    deadline = time.monotonic() + timeout
    while True:
        frame = read(root, datetime.now(UTC).date())
        if predicate(frame) or time.monotonic() > deadline:
            return frame
        time.sleep(0.1)


def test_without_a_champion_it_answers_503_then_serves_once_one_is_aliased(store: Store, tmp_path: Path):
    name = "late-model"
    gw = GatewayThread(_config(store, tmp_path, name=name)).start()
    try:
        assert httpx.get(f"{gw.url}/ping").status_code == 503
        resp = httpx.post(f"{gw.url}/invocations", json=split(data(2, 3)[0]))
        assert resp.status_code == 503 and resp.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "no model loaded yet" in resp.json()["message"]
        deadline = time.monotonic() + 10
        while "no 'champion' alias" not in str(httpx.get(f"{gw.url}/health").json()["last_error"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(f"{gw.url}/version").json() == {"model_name": name, "model_version": None,
                                                           "mlflow_version": mlflow.__version__}
        store.alias(store.register(train(5), name=name), name=name)
        assert gw.wait_for_version("1", timeout=30)
        assert httpx.get(f"{gw.url}/ping").status_code == 200
        assert httpx.post(f"{gw.url}/invocations", json=split(data(2, 3)[0])).status_code == 200
    finally:
        gw.stop()


def test_scoring_speaks_mlflows_protocol(gateway: GatewayThread, champion: Pipeline):
    rows, _ = data(6, 7)
    expected = champion.predict(rows).tolist()
    url = f"{gateway.url}/invocations"
    forms = [split(rows), {"dataframe_records": rows.to_dict("records")},
             {"instances": rows.to_dict("records")}, {"inputs": rows.to_dict("list")}]
    for payload in forms:
        resp = httpx.post(url, json=payload)
        assert resp.status_code == 200 and resp.json() == {"predictions": expected}, resp.text
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])
        assert resp.headers["X-Model-Version"] == "1" and resp.headers["X-Model-Slot"] == "champion"
    csv = httpx.post(url, content=rows.assign(extra=1).to_csv(index=False),
                     headers={"Content-Type": "text/csv"})
    assert csv.json() == {"predictions": expected}
    mine = httpx.post(url, json=split(rows), headers={"X-Request-ID": "order-42:a.b_c"})
    assert mine.headers["X-Request-ID"] == "order-42:a.b_c"


@pytest.mark.parametrize("kwargs,status,fragment", [
    ({"json": {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}}, 400,
     "missing required column(s) ['colour']"),
    ({"json": {"dataframe_records": [{"x": "tall", "colour": "red"}]}}, 400, "column 'x' must be numeric"),
    ({"content": b"{oops", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ({"json": {"rows": []}}, 400, "exactly one of the fields"),
    ({"content": b"x" * (65 * 1024), "headers": {"Content-Type": "text/csv"}}, 413, "exceeds the limit"),
    ({"content": b"x,colour\n1,red\n", "headers": {"Content-Type": "text/xml"}}, 415,
     "unsupported content type"),
    ({"json": {}, "headers": {"X-Request-ID": "not ok!"}}, 400, "X-Request-ID"),
    ({"content": b'{"inputs": {"x": [Infinity], "colour": ["red"]}}'}, 400,  # fits the schema, not the model
     "model v1 could not score the input: ValueError"),
])
def test_bad_requests_get_4xx_in_mlflows_error_shape(gateway: GatewayThread, kwargs: dict, status: int,
                                                     fragment: str):
    resp = httpx.post(f"{gateway.url}/invocations", **kwargs)
    assert resp.status_code == status
    body = resp.json()
    assert body["error_code"] == "BAD_REQUEST" and fragment in body["message"], body


def test_predictions_and_feedback_are_logged_and_counted(gateway: GatewayThread, champion: Pipeline):
    rows, labels = data(3, 11)
    rid = "req-logged-1"
    resp = httpx.post(f"{gateway.url}/invocations", json=split(rows), headers={"X-Request-ID": rid})
    assert resp.status_code == 200
    sent = httpx.post(f"{gateway.url}/feedback", json={"request_id": rid, "labels": labels.tolist()})
    assert sent.json() == {"accepted": 1}
    for other in ("req-other", "req-third"):
        served = httpx.post(f"{gateway.url}/invocations", json=split(data(1, 12)[0]), headers={"X-Request-ID": other})
        assert served.status_code == 200
    many = [{"request_id": "req-other", "labels": [1]}, {"request_id": "req-third", "label": 0}]
    assert httpx.post(f"{gateway.url}/feedback", json=many).json() == {"accepted": 2}
    for bad in ({"labels": [1]}, {"request_id": "x y", "labels": [1]}, {"request_id": "a", "labels": []},
                [{"request_id": "a", "labels": [1]}, 3]):
        resp = httpx.post(f"{gateway.url}/feedback", json=bad)
        assert resp.status_code == 400 and resp.json()["error_code"] == "BAD_REQUEST"
    assert httpx.post(f"{gateway.url}/feedback", content=b"{nope").status_code == 400

    root = gateway.config.log_root
    files = list((root / "predictions").glob("date=*/*.jsonl"))
    logged = _logged(read_predictions, root, lambda f: (f["request_id"] == rid).sum() == 3)
    mine = logged[logged["request_id"] == rid]
    assert mine["prediction"].tolist() == champion.predict(rows).tolist()
    assert mine["x"].tolist() == rows["x"].tolist() and set(mine["model_version"]) == {"1"}
    files = list((root / "predictions").glob("date=*/*.jsonl"))
    line = json.loads(next(ln for f in files for ln in f.read_text().splitlines() if rid in ln))
    assert set(line) >= {"request_id", "ts", "model_name", "model_version", "slot", "columns", "data",
                         "outputs", "latency_ms"}
    assert line["model_name"] == MODEL and line["slot"] == "champion" and line["columns"] == COLUMNS
    feedback = _logged(read_feedback, root, lambda f: len(f) == 5)
    assert feedback.loc[feedback["request_id"] == rid, "label"].tolist() == labels.tolist()

    metrics = httpx.get(f"{gateway.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert _metric(text, "mlops_requests_total", model_version="1", status="ok") == 3
    assert _metric(text, "mlops_predicted_rows_total", model_version="1") == 5
    assert _metric(text, "mlops_request_latency_seconds_bucket", model_version="1", le="+Inf") == 3
    assert _metric(text, "mlops_request_latency_seconds_count", model_version="1") == 3
    assert "# TYPE mlops_request_latency_seconds histogram" in text


def _metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of the /metrics text, whatever order the exposition writes its labels in."""
    return next((s.value for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == name and s.labels == labels), None)


def test_health_version_and_admin_reload(gateway: GatewayThread, store: Store, tmp_path: Path):
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["status"] == "ok" and health["model_name"] == MODEL and health["model_version"] == "1"
    assert health["last_error"] is None and health["loaded_at"]
    assert health["slots"] == {"champion": "1", "canary": None}
    assert httpx.get(f"{gateway.url}/version").json()["model_version"] == "1"

    url = f"{gateway.url}/admin/reload"
    assert httpx.post(url).status_code == 401
    wrong = httpx.post(url, headers={"Authorization": "Bearer wrong-token"})
    assert wrong.status_code == 401 and wrong.json()["error_code"] == "UNAUTHENTICATED"
    assert wrong.headers["WWW-Authenticate"] == "Bearer" and "wrong" in wrong.json()["message"]
    ok = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"model_version": "1", "last_error": None}

    closed = GatewayThread(_config(store, tmp_path / "closed", token=None)).start()
    try:
        resp = httpx.post(f"{closed.url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 403 and "disabled" in resp.json()["message"]
    finally:
        closed.stop()


def test_hot_swap_under_load_drops_no_request(gateway: GatewayThread, store: Store, champion: Pipeline):
    rows, _ = data(4, 21)
    successor = train(2, flip=True)
    outcomes: list[tuple[int, str | None, list]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            while not stop.is_set():
                resp = client.post("/invocations", json=split(rows))
                outcomes.append((resp.status_code, resp.headers.get("X-Model-Version"), resp.json()))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        version = store.register(successor)
        store.alias(version)
        assert gateway.wait_for_version(version, timeout=30)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert outcomes and all(status == 200 for status, _, _ in outcomes)
    assert {v for _, v, _ in outcomes} == {"1", version}
    answers = {"1": champion.predict(rows).tolist(), version: successor.predict(rows).tolist()}
    assert all(body["predictions"] == answers[v] for _, v, body in outcomes)
    store.alias("1")  # back to the module's champion for the tests after this one
    assert gateway.wait_for_version("1", timeout=30)


def _break(store: Store, fault: str) -> str:
    """A registered version that cannot serve: its artifact corrupted, or a signature naming a column the model
    does not take (so it fails on its own input example)."""
    if fault == "corrupt artifact":
        broken = store.register(train(3))
        store.model_file(broken).write_bytes(b"this is not a skops file")
        return broken
    return store.register(train(3), signature_columns={"colour": "shade"})


def _health_until(gateway: GatewayThread | GatewayProcess, done, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    health = httpx.get(f"{gateway.url}/health").json()
    while not done(health) and time.monotonic() < deadline:
        time.sleep(0.1)
        health = httpx.get(f"{gateway.url}/health").json()
    return health


@pytest.mark.parametrize("alias", ["champion", "canary"])
@pytest.mark.parametrize("fault,why", [("corrupt artifact", "failed to load: "),
                                       ("signature mismatch", "columns are missing: {'colour'}")])
def test_a_version_that_cannot_load_never_serves(gateway: GatewayThread, store: Store, alias: str, fault: str,
                                                 why: str):
    tracking = store.tracking()
    broken = _break(store, fault)
    if alias == "champion":
        tracking.promote(broken)
    else:
        tracking.start_canary(broken, percent=100.0, mode="canary")
    try:
        health = _health_until(gateway, lambda h: h["last_error"])
        assert f"v{broken} failed to load" in health["last_error"] and why in health["last_error"], health
        assert health["status"] == "ok" and health["slots"] == {"champion": "1", "canary": None}
        for _ in range(5):  # all traffic would go to a canary at 100%: the champion answers it all
            resp = httpx.post(f"{gateway.url}/invocations", json=split(data(2, 4)[0]))
            assert resp.status_code == 200 and resp.headers["X-Model-Version"] == "1"
        forced = httpx.post(f"{gateway.url}/admin/reload",
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert forced["model_version"] == "1" and f"v{broken} failed to load" in forced["last_error"]
    finally:
        if alias == "champion":
            store.alias("1")
        else:
            tracking.end_canary(promote=False)
    assert _health_until(gateway, lambda h: h["last_error"] is None)["last_error"] is None


def test_admin_traffic_sets_the_canary_share_in_the_registry(gateway: GatewayThread, store: Store):
    tracking = store.tracking()
    url, auth = f"{gateway.url}/admin/traffic", {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.put(url, json={"canary_percent": 50}).status_code == 401
    wrong = httpx.put(url, json={"canary_percent": 50}, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and wrong.json()["error_code"] == "UNAUTHENTICATED"
    idle = httpx.put(url, json={"canary_percent": 50}, headers=auth)
    assert idle.status_code == 409 and idle.json()["error_code"] == "RESOURCE_CONFLICT"
    assert "no canary is running" in idle.json()["message"]

    canary = store.register(train(4, flip=True))
    tracking.start_canary(canary, percent=0.0, mode="canary")
    rows = data(2, 31)[0]
    try:
        assert _health_until(gateway, lambda h: h["slots"]["canary"] == canary)["slots"]["canary"] == canary
        for body in ({"canary_percent": 101}, {"canary_percent": -1}, {"canary_percent": "50"},
                     {"canary_percent": True}, {"canary_percent": None}, {"percent": 50},
                     {"canary_percent": 5, "mode": "shadow"}, [50]):
            resp = httpx.put(url, json=body, headers=auth)
            assert resp.status_code == 400 and "canary_percent" in resp.json()["message"], (body, resp.text)
        for raw in (b'{"canary_percent": NaN}', b"{nope"):
            assert httpx.put(url, content=raw, headers=auth).status_code == 400
        assert httpx.put(url, content=b"x" * 5000, headers=auth).status_code == 413
        assert store.client.get_registered_model(MODEL).tags["mlops.canary_percent"] == "0.0"  # unchanged

        ok = httpx.put(url, json={"canary_percent": 100}, headers=auth)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"canary_version": canary, "canary_percent": 100.0,
                             "slots": {"champion": "1", "canary": canary}, "last_error": None}
        assert store.client.get_registered_model(MODEL).tags["mlops.canary_percent"] == "100.0"
        slots = {httpx.post(f"{gateway.url}/invocations", json=split(rows)).headers["X-Model-Slot"]
                 for _ in range(10)}
        assert slots == {"canary"}  # routed at once, not at the next poll
        assert httpx.put(url, json={"canary_percent": 0}, headers=auth).json()["canary_percent"] == 0.0
        slots = {httpx.post(f"{gateway.url}/invocations", json=split(rows)).headers["X-Model-Slot"]
                 for _ in range(10)}
        assert slots == {"champion"}

        tracking.start_canary(canary, percent=0.0, mode="shadow")
        shadow = httpx.put(url, json={"canary_percent": 30}, headers=auth)
        assert shadow.status_code == 409 and "shadow release" in shadow.json()["message"]
    finally:
        tracking.end_canary(promote=False)


def test_a_crashed_gateway_comes_back_to_the_registrys_state(store: Store, champion: Pipeline, tmp_path: Path):
    """Champion, canary and share live in the registry: a fresh process after a SIGKILL serves the same."""
    tracking = store.tracking()
    canary = store.register(train(6, flip=True))
    tracking.start_canary(canary, percent=10.0, mode="canary")
    gateway = GatewayProcess(store, tmp_path).start()
    keys = [f"customer-{i}" for i in range(40)]

    def slots() -> list[str]:
        with httpx.Client(base_url=gateway.url) as client:
            return [client.post("/invocations", json=split(data(2, 5)[0]),
                                headers={"X-Entity-ID": key}).headers["X-Model-Slot"] for key in keys]

    try:
        assert gateway.wait_for(slots={"champion": "1", "canary": canary})["canary_percent"] == 10.0
        share = httpx.put(f"{gateway.url}/admin/traffic", json={"canary_percent": 30},  # may wait for MLflow's
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)  # client, made after start-up
        assert share.status_code == 200, share.text
        state = {k: gateway.health()[k] for k in ("slots", "canary_percent", "release_mode", "model_version")}
        before = slots()
        assert before == ["canary" if route_to_canary(key, 30.0) else "champion" for key in keys]

        gateway.crash()
        gateway.start()
        after = gateway.wait_for(**state)
        assert {k: after[k] for k in state} == state and after["last_error"] is None
        assert slots() == before  # the same customers on the same slots
    finally:
        gateway.stop()
        tracking.end_canary(promote=False)


def test_canary_and_shadow_slots(gateway: GatewayThread, store: Store):
    canary = store.register(train(4, flip=True))
    model = store.client.get_registered_model(MODEL).name
    rows, _ = data(2, 31)
    try:
        store.client.set_registered_model_tag(model, "mlops.canary_percent", "100")
        store.client.set_registered_model_tag(model, "mlops.release_mode", "canary")
        store.alias(canary, alias="canary")
        deadline = time.monotonic() + 20
        while httpx.get(f"{gateway.url}/health").json()["slots"]["canary"] != canary:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        resp = httpx.post(f"{gateway.url}/invocations", json=split(rows))
        assert resp.headers["X-Model-Slot"] == "canary" and resp.headers["X-Model-Version"] == canary

        store.client.set_registered_model_tag(model, "mlops.release_mode", "shadow")
        while httpx.get(f"{gateway.url}/health").json()["release_mode"] != "shadow":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        resp = httpx.post(f"{gateway.url}/invocations", json=split(rows),
                          headers={"X-Request-ID": "shadowed"})
        assert resp.headers["X-Model-Slot"] == "champion" and resp.headers["X-Model-Version"] == "1"
        both = {"champion", "shadow"}
        logged = _logged(read_predictions, gateway.config.log_root,
                         lambda f: set(f.loc[f["request_id"] == "shadowed", "slot"]) == both)
        shadow = logged[(logged["request_id"] == "shadowed") & (logged["slot"] == "shadow")]
        assert set(shadow["model_version"]) == {canary} and len(shadow) == 2
    finally:
        store.client.delete_registered_model_alias(model, "canary")


def test_concurrent_requests_share_one_model_call_and_bad_rows_fail_alone(champion: Pipeline):
    schema = protocol.InputSchema(("x", "colour"), numeric=frozenset({"x"}))
    slot = Slot("1", champion, schema, "now")

    def rows(frame: pd.DataFrame) -> protocol.Rows:
        return protocol.validate(protocol.Table.from_frame(frame), schema)

    parts = [data(n, seed)[0] for seed, n in enumerate((1, 3, 2, 5))]
    bad = pd.DataFrame({"x": [np.inf], "colour": ["red"]})  # passes the schema, breaks StandardScaler

    async def run() -> tuple[list, int]:
        batcher = Batcher()
        try:
            results = await asyncio.gather(*(batcher.predict(slot, rows(p)) for p in [*parts, bad]),
                                           return_exceptions=True)
            return results, batcher.calls
        finally:
            batcher.close()

    results, calls = asyncio.run(run())
    assert calls == 1
    assert [r.outputs for r in results[:-1]] == [champion.predict(p).tolist() for p in parts]
    assert [r.probabilities for r in results[:-1]] == [champion.predict_proba(p).tolist() for p in parts]
    assert isinstance(results[-1], ValueError)


def test_the_lean_invocations_route_keeps_the_apps_answers(tmp_path: Path) -> None:
    """POST /invocations bypasses Starlette's stack: other methods still get 405, no model yet a 503, and a bug
    a 500 in MLflow's shape with the request id (its trace logged)."""
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    gw = GatewayThread(GatewayConfig(model_name=MODEL, tracking_uri=db, registry_uri=db, log_root=tmp_path,
                                     port=0, poll_seconds=3600)).start()
    try:
        assert httpx.get(f"{gw.url}/invocations").status_code == 405
        unavailable = httpx.post(f"{gw.url}/invocations", json={"inputs": {"x": 1}}, timeout=30)
        assert unavailable.status_code == 503 and unavailable.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        gw._server.config.app.gateway.manager.routing = None  # a bug in the handler: AttributeError
        broken = httpx.post(f"{gw.url}/invocations", json={"inputs": {"x": 1}}, headers={"X-Request-ID": "r-1"})
        assert broken.status_code == 500 and broken.json()["error_code"] == "INTERNAL_ERROR"
        assert "AttributeError" in broken.json()["message"] and broken.headers["X-Request-ID"] == "r-1"
    finally:
        gw.stop()
