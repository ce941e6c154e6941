"""Guarded feedback over real HTTP: the feedback token, 404 for request ids never served (across a restart on
the same prediction log), and labels by the data's own id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.core import labels
from mlops_assets.core.predictions import PREDICTIONS, iter_log, read_feedback, read_id_labels
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.feedback import ServedRequests
from mlops_assets.serving.server import GatewayThread
from tests.support.tiny_models import MODEL, Store, data, split, train

FEEDBACK_TOKEN = "labelling-service-token"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store.create(tmp_path_factory.mktemp("mlflow"))
    store.alias(store.register(train(1)))
    return store


def _start(store: Store, home: Path) -> GatewayThread:
    config = GatewayConfig(model_name=MODEL, tracking_uri=store.uri, registry_uri=store.uri, log_root=home, port=0,
                           poll_seconds=0.2, feedback_token=FEEDBACK_TOKEN, id_column="loan_id")
    gw = GatewayThread(config).start()
    assert gw.wait_for_version("1", timeout=30)
    return gw


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Iterator[GatewayThread]:
    gw = _start(store, tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


def _counter(gw: GatewayThread, name: str, **labels: str) -> float:
    text = httpx.get(f"{gw.url}/metrics").text
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and s.labels == labels), 0.0)


AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


def test_feedback_needs_the_token_when_one_is_set(gateway: GatewayThread):
    rid = "req-guarded"
    assert httpx.post(f"{gateway.url}/invocations", json=split(data(2, 3)[0]),
                      headers={"X-Request-ID": rid}).status_code == 200
    body = {"request_id": rid, "labels": [1, 0]}
    refusals = [httpx.post(f"{gateway.url}/feedback", json=body, headers=headers) for headers in (
        {}, {"Authorization": "Bearer x"}, {"Authorization": "Bearer " + "y" * len(FEEDBACK_TOKEN)},
        {"Authorization": FEEDBACK_TOKEN})]
    assert [r.status_code for r in refusals] == [401] * 4
    assert all(r.headers["WWW-Authenticate"] == "Bearer" and "MLOPS_FEEDBACK_TOKEN" in r.json()["message"]
               for r in refusals)
    # A wrong token of any length gets the same answer: both sides are hashed before the constant-time compare.
    assert refusals[1].json() == refusals[2].json()
    assert _counter(gateway, "mlops_feedback_total", outcome="unauthorized") == 4
    assert httpx.post(f"{gateway.url}/feedback", json=body, headers=AUTH).json() == {"accepted": 1}
    assert _counter(gateway, "mlops_feedback_total", outcome="accepted") == 1


def test_labels_for_request_ids_never_served_are_refused_and_counted_across_a_restart(store: Store,
                                                                                      tmp_path: Path):
    first = _start(store, tmp_path)
    try:
        served = httpx.post(f"{first.url}/invocations", json=split(data(3, 5)[0]), headers={"X-Request-ID": "r-1"})
        assert served.status_code == 200
        unknown = httpx.post(f"{first.url}/feedback", headers=AUTH,
                             json=[{"request_id": "r-1", "labels": [1, 0, 1]}, {"request_id": "r-made-up", "label": 1}])
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert "'r-made-up'" in unknown.json()["message"] and "no label was stored" in unknown.json()["message"]
        assert _counter(first, "mlops_feedback_total", outcome="unknown_request") == 1
        assert _counter(first, "mlops_feedback_unknown_request_ids_total") == 1
    finally:
        first.stop()  # flushes the prediction log
    second = _start(store, tmp_path)  # a restart, or a replica on the same log root: it vouches from the log
    try:
        ok = httpx.post(f"{second.url}/feedback", headers=AUTH, json={"request_id": "r-1", "labels": [1, 0, 1]})
        assert ok.status_code == 200, ok.text
        assert httpx.post(f"{second.url}/feedback", headers=AUTH,
                          json={"request_id": "r-never", "labels": [1]}).status_code == 404
    finally:
        second.stop()
    labelled = read_feedback(tmp_path, datetime.now(UTC).date())
    assert labelled["request_id"].tolist() == ["r-1"] * 3  # nothing of a refused body was stored


def test_online_rows_log_the_datas_id_and_labels_by_that_id_join_them(gateway: GatewayThread):
    rows, _ = data(2, 9)
    sent = rows.assign(loan_id=["L-1", "L-2"])
    resp = httpx.post(f"{gateway.url}/invocations", json=split(sent), headers={"X-Request-ID": "r-ids"})
    plain = httpx.post(f"{gateway.url}/invocations", json=split(rows))
    assert resp.status_code == 200 and resp.json() == plain.json()  # the id never reaches the model
    body = {"labels": [{"id": "L-2", "label": 1}, {"id": 42, "label": 0}]}
    ok = httpx.post(f"{gateway.url}/feedback", headers=AUTH, json=body)
    assert ok.status_code == 200 and ok.json() == {"accepted": 2, "by_id": 2}
    bad = httpx.post(f"{gateway.url}/feedback", headers=AUTH, json={"labels": [{"id": None, "label": 1}]})
    assert bad.status_code == 400 and "'id' must be the data's id" in bad.json()["message"]

    root = gateway.config.log_root
    deadline = time.monotonic() + 10
    while not (lines := read_id_labels(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(r["id_column"], r["ids"], r["labels"], r["source"]) for r in lines] == \
        [("loan_id", ["L-2", 42], [1, 0], "gateway")]
    store = labels.id_labels(lines)
    joined = labels.join_by_id(store, labels.latest_predictions(
        iter_log(root, PREDICTIONS), {c: set(keys) for c, keys in store.items()}))
    assert joined.labels[["request_id", "row", "label"]].values.tolist() == [["r-ids", 1, 1]]
    assert joined.unknown == ["42"]


def test_the_served_record_reads_only_whole_lines_of_any_writer_and_forgets_the_oldest(tmp_path: Path):
    folder = tmp_path / "predictions" / f"date={datetime.now(UTC).date()}"
    folder.mkdir(parents=True)
    log = folder / "other-host-1.jsonl"
    log.write_text('{"request_id": "a-1", "ts": "t"}\n{"ts": "t", "slot": "batch", "request_id": "batch-9"}\n'
                   '{"request_id": "half-wri', encoding="utf-8")
    served = ServedRequests(tmp_path, capacity=3)
    assert served.unknown(["a-1", "batch-9", "half-written"]) == ["half-written"]
    with log.open("a", encoding="utf-8") as fh:
        fh.write('tten", "ts": "t"}\n')
    assert served.unknown(["half-written"]) == []
    for rid in ("n-1", "n-2", "n-3"):
        served.add(rid)
    assert served.forgotten(["a-1", "n-3"]) == ["a-1"]  # beyond the capacity: only the newest are held
