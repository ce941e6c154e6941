"""The serving gateway over real HTTP on loopback, serving models the platform trained and registered."""

import shutil
import threading
import time
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.core.predictions import read_feedback, read_predictions
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.serving import protocol
from mlops_assets.serving.client import _records
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread

SCHEMA = protocol.InputSchema(("age", "region"), frozenset({"age"}))


# --- the protocol, as pure functions ----------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    b'{"dataframe_split": {"columns": ["age", "region"], "data": [[30, "north"], [40, null]]}}',
    b'{"dataframe_records": [{"age": 30, "region": "north"}, {"age": 40, "region": null}]}',
    b'{"instances": [{"age": 30, "region": "north"}, {"age": 40, "region": null}]}',
    b'{"inputs": {"age": [30, 40], "region": ["north", null]}}',
])
def test_every_json_form_gives_the_same_frame(body: bytes):
    frame = protocol.conform(protocol.parse(body, "application/json"), SCHEMA)
    assert frame["age"].tolist() == [30.0, 40.0]
    assert frame["region"].tolist() == ["north", None]


def test_csv_and_extra_columns():
    frame = protocol.conform(protocol.parse(b"region,age,extra\nsouth,51,1\n", "text/csv"), SCHEMA)
    assert list(frame.columns) == ["age", "region"] and frame.iloc[0].tolist() == [51.0, "south"]


@pytest.mark.parametrize("body,ctype,status,fragment", [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b'{"dataframe_split": {"data": [[1]]}, "instances": []}', "application/json", 400, "exactly one"),
    (b'{"columns": ["age"]}', "application/json", 400, "exactly one"),
    (b'[1, 2]', "application/json", 400, "must be an object"),
    (b'{"dataframe_records": [{"region": "north"}]}', "application/json", 400, "missing required column(s) ['age']"),
    (b'{"dataframe_records": [{"age": 1, "region": "n"}, {"age": "old", "region": "s"}]}', "application/json",
     400, "column 'age' must be numeric; row 1 has 'old'"),
    (b'{"dataframe_records": []}', "application/json", 400, "no rows"),
    (b"age\n1\n", "application/xml", 415, "unsupported content type"),
])
def test_bad_input_names_the_problem(body: bytes, ctype: str, status: int, fragment: str):
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.conform(protocol.parse(body, ctype), SCHEMA)
    assert err.value.status == status and fragment in err.value.message


# --- the gateway over HTTP ------------------------------------------------------------------------------
@pytest.fixture
def served(defs, instance, lay, monkeypatch):
    """A champion trained by the platform, and a gateway serving it."""
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "test-admin-token")
    monkeypatch.setenv("MLOPS_GATEWAY_POLL_SECONDS", "0.3")
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=1000, seed=31)
    runner.tick("new_data_sensor")
    assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    config = GatewayConfig.from_env(port=0)
    config.max_request_bytes = 64 * 1024
    gateway = GatewayThread(config).start()
    assert gateway.wait_for_version("1", timeout=30)
    yield gateway, runner
    gateway.stop()


def _rows(n: int, seed: int, spec_features: list[str]) -> pd.DataFrame:
    return make_batch(n, seed=seed, start_id=50_000 + seed * n)[spec_features]


def _metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of the /metrics text, whatever order the exposition writes its labels in."""
    return next((s.value for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == name and s.labels == labels), None)


def test_endpoints_speak_mlflows_protocol(served, defs, lay):
    gateway, _ = served
    features = defs.resources["store"].spec().feature_names
    rows = _rows(5, 1, features)
    url = gateway.url
    assert httpx.get(f"{url}/ping").status_code == 200
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["model_version"] == "1" and health["last_error"] is None
    assert httpx.get(f"{url}/version").json()["mlflow_version"] == mlflow.__version__

    expected = mlflow.sklearn.load_model("models:/mlops-model/1").predict(rows).tolist()
    split = httpx.post(f"{url}/invocations", headers={"X-Request-ID": "req-split"},
                       json={"dataframe_split": {"columns": features, "data": _records(rows)}})
    assert split.status_code == 200 and split.json() == {"predictions": expected}
    assert split.headers["X-Request-ID"] == "req-split" and split.headers["X-Model-Version"] == "1"
    records = httpx.post(f"{url}/invocations", json={"dataframe_records": rows.astype(object).where(
        rows.notna(), None).to_dict(orient="records")})
    assert records.json()["predictions"] == expected
    csv = httpx.post(f"{url}/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert csv.json()["predictions"] == expected

    bad = httpx.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["age"], "data": [[1]]}})
    assert bad.status_code == 400 and bad.json()["error_code"] == "BAD_REQUEST" and "income" in bad.json()["message"]
    huge = httpx.post(f"{url}/invocations", content=b"x" * (128 * 1024), headers={"Content-Type": "text/csv"})
    assert huge.status_code == 413
    assert httpx.post(f"{url}/invocations", headers={"X-Request-ID": "bad id!"}, json={}).status_code == 400

    feedback = httpx.post(f"{url}/feedback", json={"request_id": "req-split", "labels": [0, 1, 0, 1, 0]})
    assert feedback.status_code == 200
    assert httpx.post(f"{url}/feedback", json={"labels": [1]}).status_code == 400

    metrics = httpx.get(f"{url}/metrics").text
    assert _metric(metrics, "mlops_requests_total", model_version="1", status="ok") == 3
    assert _metric(metrics, "mlops_request_latency_seconds_count", model_version="1") == 3
    assert 'status="bad_request"' in metrics

    time.sleep(0.6)  # the log writer flushes in the background
    logged = read_predictions(lay.home, pd.Timestamp.now(tz="UTC").date())
    assert (logged["request_id"] == "req-split").sum() == 5
    assert logged.loc[logged["request_id"] == "req-split", "prediction"].tolist() == expected
    labels = read_feedback(lay.home, pd.Timestamp.now(tz="UTC").date())
    assert labels["label"].tolist() == [0, 1, 0, 1, 0]


def test_admin_reload_needs_the_token(served):
    gateway, _ = served
    url = f"{gateway.url}/admin/reload"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.post(url, headers={"Authorization": "Bearer test-admin-token"})
    assert ok.status_code == 200 and ok.json()["model_version"] == "1"


def test_hot_swap_under_load_drops_no_request_and_bad_versions_never_serve(served, defs, lay):
    gateway, runner = served
    features = defs.resources["store"].spec().feature_names
    rows = _rows(4, 2, features)
    payload = {"dataframe_split": {"columns": features, "data": _records(rows)}}
    outcomes: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            while not stop.is_set():
                resp = client.post("/invocations", json=payload)
                outcomes.append((resp.status_code, resp.headers.get("X-Model-Version")))

    thread = threading.Thread(target=load)
    thread.start()
    try:
        write_batches(lay.landing, batches=1, rows=1000, seed=32)
        runner.tick("new_data_sensor")
        assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
        assert gateway.wait_for_version("2", timeout=30)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert outcomes and all(status == 200 for status, _ in outcomes)
    assert {v for _, v in outcomes} == {"1", "2"}

    # A version whose artifact is corrupt is registered and aliased: the gateway keeps serving v2.
    tracking = defs.resources["tracking"]
    client = tracking.client()
    v2 = client.get_model_version(tracking.model_name, "2")
    local = Path(mlflow.artifacts.download_artifacts(v2.source, dst_path=str(lay.home / "corrupt")))
    for model_file in local.rglob("model.skops"):
        model_file.write_bytes(b"not a model")
    bad = client.create_model_version(tracking.model_name, source=str(local), run_id=v2.run_id)
    client.set_registered_model_alias(tracking.model_name, CHAMPION, str(bad.version))
    deadline = time.monotonic() + 20
    health = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{gateway.url}/health").json()
        if health["last_error"]:
            break
        time.sleep(0.2)
    assert health["model_version"] == "2"
    assert f"v{bad.version} failed to load" in health["last_error"]
    assert httpx.post(f"{gateway.url}/invocations", json=payload).headers["X-Model-Version"] == "2"
    shutil.rmtree(lay.home / "corrupt")
