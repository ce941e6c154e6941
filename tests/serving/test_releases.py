"""Canary and shadow releases: the sticky split, the canary verdict, and both played out through the real
gateway, registry and canary sensor."""

import json
import time

import httpx
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.core.contracts import CANARY, CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.core.deployment import SlotStats, canary_decision, route_to_canary, slot_stats
from mlops_assets.core.predictions import read_predictions
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.serving.client import _records
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread

TOKEN = "test-admin-token"
POLICY = {"min_requests": 50, "min_labeled": 50, "max_error_rate_increase": 0.01, "max_latency_ratio": 3.0,
          "max_accuracy_drop": 0.02}


def test_split_is_sticky_and_close_to_the_share():
    keys = [f"customer-{i}" for i in range(4000)]
    routed = [route_to_canary(k, 25) for k in keys]
    assert routed == [route_to_canary(k, 25) for k in keys]
    assert 0.22 < sum(routed) / len(keys) < 0.28
    assert not any(route_to_canary(k, 0) for k in keys) and all(route_to_canary(k, 100) for k in keys)


def test_canary_verdicts():
    good = SlotStats(requests=500, errors=0, p95_latency_ms=4.0, labeled=300, correct=240)
    assert canary_decision(good, good, **POLICY).action == "promote"
    assert canary_decision(good, SlotStats(20, 0, 4.0, 0, 0), **POLICY).action == "wait"
    assert canary_decision(good, SlotStats(100, 0, 4.0, 10, 8), **POLICY).action == "wait"
    worse = canary_decision(good, SlotStats(300, 0, 4.0, 200, 120), **POLICY)
    assert worse.action == "rollback" and "accuracy 0.600 vs champion 0.800" in worse.reasons[0]
    noisy = canary_decision(good, SlotStats(300, 0, 4.0, 100, 76), **POLICY)  # 0.76 vs 0.80 on 100 rows: noise
    assert noisy.action == "promote"
    assert canary_decision(good, SlotStats(30, 3, 4.0, 0, 0), **POLICY).action == "rollback"  # errors: at once
    assert canary_decision(good, SlotStats(300, 0, 40.0, 300, 240), **POLICY).action == "rollback"


def test_slot_stats_from_log_rows():
    rows = pd.DataFrame({"request_id": ["a", "a", "b", "c"], "row": [0, 1, 0, 0], "latency_ms": [2.0, 2.0, 4.0, 6.0],
                         "error": [None, None, None, "boom"], "prediction": [1, 0, 1, None],
                         "label": [1, 1, None, 0]})
    stats = slot_stats(rows)
    assert (stats.requests, stats.errors, stats.labeled, stats.correct) == (3, 1, 2, 1)


@pytest.fixture
def released(defs, instance, lay, monkeypatch):
    """Champion v1 behind a running gateway, v2 trained on more data and released with the given strategy."""
    monkeypatch.setenv("MLOPS_GATEWAY_POLL_SECONDS", "0.3")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", TOKEN)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=1000, seed=61)
    runner.tick("new_data_sensor")
    assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    gateway = GatewayThread(GatewayConfig.from_env(port=0)).start()
    assert gateway.wait_for_version("1", timeout=30)
    monkeypatch.setenv("MLOPS_GATEWAY_URL", gateway.url)

    def release(strategy: str, **training: object) -> None:
        from mlops_assets.definitions import build_definitions

        write_batches(lay.landing, batches=1, rows=1000, seed=62)
        runner.tick("new_data_sensor")
        config = {"ops": {"deployment": {"config": {"strategy": strategy, "canary_percent": 50.0}},
                          "candidate_model": {"config": {**training}},
                          "model_evaluation": {"config": {"thresholds": {"roc_auc": 0.5}, "max_regression": 1.0}}}}
        result = build_definitions(lay).resolve_job_def("training_job").execute_in_process(
            instance=instance, run_config=config)
        assert result.success

    yield gateway, runner, release
    gateway.stop()


def _serve(gateway, features, n_requests: int, seed: int, *, labels: bool) -> list[httpx.Response]:
    frame = make_batch(n_requests * 2, seed=seed, start_id=70_000_000 + seed * 1000)
    responses = []
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for i in range(n_requests):
            part = frame.iloc[2 * i:2 * i + 2]
            resp = client.post("/invocations", headers={"X-Entity-ID": f"customer-{seed}-{i}"},
                               json={"dataframe_split": {"columns": features, "data": _records(part[features])}})
            assert resp.status_code == 200
            responses.append(resp)
            if labels:
                client.post("/feedback", json={"request_id": resp.headers["X-Request-ID"],
                                               "labels": part["default"].tolist()}).raise_for_status()
    time.sleep(0.5)  # background log writer
    return responses


def test_a_canary_that_holds_up_is_promoted(released, defs, lay, monkeypatch):
    gateway, runner, release = released
    monkeypatch.setenv("MLOPS_CANARY_MIN_REQUESTS", "40")
    monkeypatch.setenv("MLOPS_CANARY_MIN_LABELED", "60")
    from mlops_assets.definitions import build_definitions

    release("canary")
    tracking = defs.resources["tracking"]
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert tracking.version_by_alias(CANARY).version == "2"
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["slots"] == {"champion": "1", "canary": "2"} and health["canary_percent"] == 50.0

    features = defs.resources["store"].spec().feature_names
    responses = _serve(gateway, features, 150, seed=1, labels=True)
    slots = [r.headers["X-Model-Slot"] for r in responses]
    assert 0.35 < slots.count("canary") / len(slots) < 0.65
    again = _serve(gateway, features, 150, seed=1, labels=False)  # the same customers: the same slots
    assert [r.headers["X-Model-Slot"] for r in again] == slots

    runner = Runner(build_definitions(lay), runner.instance, runner.cursor_file)  # with the new policy
    tick = runner.tick("canary_sensor")
    assert [(r.job, r.success) for r in tick.runs] == [("canary_job", True)], tick.skip_message
    assert tracking.version_by_alias(CHAMPION).version == "2"
    assert tracking.version_by_alias(CANARY) is None
    assert gateway.wait_for_version("2", timeout=20)
    assert httpx.get(f"{gateway.url}/health").json()["slots"]["canary"] is None
    assert runner.tick("canary_sensor").runs == []


def test_a_worse_canary_is_rolled_back(released, defs, lay, monkeypatch):
    gateway, runner, release = released
    monkeypatch.setenv("MLOPS_CANARY_MIN_REQUESTS", "40")
    monkeypatch.setenv("MLOPS_CANARY_MIN_LABELED", "60")
    from mlops_assets.definitions import build_definitions

    # So regularised it answers the majority class: clearly worse, but past a gate opened wide for the test.
    release("canary", estimator="logistic_regression", params={"C": 1e-6}, tuning_candidates=0)
    features = defs.resources["store"].spec().feature_names
    _serve(gateway, features, 500, seed=2, labels=True)
    runner = Runner(build_definitions(lay), runner.instance, runner.cursor_file)
    tick = runner.tick("canary_sensor")
    assert [(r.job, r.success) for r in tick.runs] == [("canary_job", True)], tick.skip_message
    tracking = defs.resources["tracking"]
    decision = json.loads((lay.io / "canary_release" / "__all__.json").read_text())
    assert decision["action"] == "rollback", decision
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert tracking.version_by_alias(CANARY) is None
    assert "canary_rolled_back" in [a["kind"] for a in defs.resources["alerts"].history()]
    deadline = time.monotonic() + 10
    while httpx.get(f"{gateway.url}/health").json()["slots"]["canary"] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_shadow_sees_all_traffic_and_never_answers(released, defs, lay):
    gateway, _, release = released
    release("shadow")
    features = defs.resources["store"].spec().feature_names
    responses = _serve(gateway, features, 30, seed=3, labels=False)
    assert {r.headers["X-Model-Slot"] for r in responses} == {"champion"}
    assert {r.headers["X-Model-Version"] for r in responses} == {"1"}
    logged = read_predictions(lay.home, pd.Timestamp.now(tz="UTC").date())
    shadow = logged[logged["slot"] == "shadow"]
    assert set(shadow["model_version"]) == {"2"}
    assert set(shadow["request_id"]) == {r.headers["X-Request-ID"] for r in responses}


def test_the_canary_share_is_set_from_the_cli_and_the_gateway_follows(released, defs, monkeypatch, capsys):
    gateway, _, release = released
    assert main(["deploy", "traffic", "30"]) == 2
    assert "no canary is running" in capsys.readouterr().err
    release("canary")
    assert main(["deploy", "traffic", "150"]) == 2
    assert "from 0 to 100" in capsys.readouterr().err

    assert main(["deploy", "traffic", "20"]) == 0
    out = capsys.readouterr()
    assert "canary v2 now gets 20% of traffic" in out.out and not out.err  # the gateway took the reload
    assert f"gateway at {gateway.url} serves canary v2 at 20%" in out.out
    tracking = defs.resources["tracking"]
    assert tracking.client().get_registered_model(tracking.model_name).tags["mlops.canary_percent"] == "20.0"
    features = defs.resources["store"].spec().feature_names
    slots = [r.headers["X-Model-Slot"] for r in _serve(gateway, features, 60, seed=4, labels=False)]
    assert slots == ["canary" if route_to_canary(f"customer-4-{i}", 20.0) else "champion" for i in range(60)]

    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "not-the-token")  # refused reload: the gateway follows by polling
    assert main(["deploy", "traffic", "100"]) == 0
    out = capsys.readouterr()
    assert "refused the reload" in out.err and "serves canary v2 at 100%" in out.out
    assert {r.headers["X-Model-Slot"] for r in _serve(gateway, features, 10, seed=5, labels=False)} == {"canary"}
