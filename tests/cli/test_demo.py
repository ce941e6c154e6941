"""`mlops demo` end to end: a real Dagster instance, MLflow store, gateway on loopback and the real sensors."""

import json
from datetime import UTC, datetime

import httpx
import mlflow
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.cli import main
from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import make_batch
from mlops_assets.core.predictions import read_feedback, read_predictions
from mlops_assets.definitions import build_definitions
from mlops_assets.serving.client import _records
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread


def test_demo_loop_retrains_on_drifted_data_and_redeploys(lay, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
    assert main(["demo", "--rows", "1500", "--traffic", "400"]) == 0
    out = capsys.readouterr().out
    assert "0 failed requests" in out and "FAILED" not in out

    tracking = build_definitions(lay).resources["tracking"]
    store = build_definitions(lay).resources["store"]
    champion = tracking.version_by_alias(CHAMPION)
    assert int(champion.version) >= 2
    assert tracking.version_by_alias(PREVIOUS).version == "1"
    manifest = store.load_manifest(champion.tags[contracts.LINEAGE_DATASET])
    assert sum(b["partition"].endswith("_drift") for b in manifest["batches"]) == 2
    assert f"champion: v{champion.version} trained on dataset {manifest['id']}" in out
    assert "drift detected on served traffic: yes" in out
    trail = tracking.audit_trail()  # the demo ends with the audit trail of its releases
    assert [(e["action"], e["alias"], e["to_version"]) for e in trail][:1] == [("promote", CHAMPION, "1")]
    table = out.split(f"audit trail of the releases ({len(trail)} moves", 1)[1].splitlines()[2:2 + len(trail)]
    assert [line.split()[:1] for line in table] == [[str(e["seq"])] for e in trail]
    assert f"champion v1 -> v{champion.version}" in "\n".join(table)

    # Every prediction was logged with its request id, and labels joined them.
    today = datetime.now(UTC).date()
    logged = read_predictions(lay.home, today)
    assert len(logged) == 800 and logged["request_id"].nunique() == 40
    assert set(logged["model_version"]) == {"1"}
    assert len(read_feedback(lay.home, today)) == 800

    # The Dagster UI has every stage materialized in the instance the demo used.
    with DagsterInstance.get() as instance:
        keys = {k.to_user_string() for k in instance.get_asset_keys()}
        assert {"raw_batches", "dataset", "features", "candidate_model", "model_evaluation", "registered_model",
                "deployment", "drift_report", "live_performance"} <= keys
        failed = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
        assert failed == []

    # A fresh gateway comes back into the last good state from the registry, not from memory.
    gateway = GatewayThread(GatewayConfig.from_env(port=0)).start()
    try:
        assert gateway.wait_for_version(champion.version, timeout=30)
        rows = make_batch(3, seed=5)[store.spec().feature_names]
        resp = httpx.post(f"{gateway.url}/invocations",
                          json={"dataframe_split": {"columns": list(rows.columns), "data": _records(rows)}})
        assert resp.status_code == 200 and resp.headers["X-Model-Version"] == champion.version
        expected = mlflow.sklearn.load_model(f"models:/{tracking.model_name}@champion").predict(rows)
        assert resp.json()["predictions"] == expected.tolist()
    finally:
        gateway.stop()
    alerts = {a["kind"] for a in (json.loads(line) for line in (lay.home / "alerts.jsonl").read_text().splitlines())}
    assert "drift" in alerts
