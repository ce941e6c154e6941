"""The gateway's start-up path: the champion is found and loaded without importing MLflow on a local store, and
is the same model, signature and answers as MLflow's client gives; an MLflow server (REST registry, artifacts
through its proxy) still serves. What the loader refuses (pickles, trust lists, paths) is tested where it lives,
tests/core/test_model_files.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
from sklearn.pipeline import Pipeline

from mlops_assets.serving import protocol
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.models import ModelManager
from tests.support.servers import MlflowServer
from tests.support.tiny_models import MODEL, Store, wine, wine_model

# Runs the gateway's model manager in a fresh process: what it serves, its answers, and what it imported.
PROBE = """
import json, sys
import pandas as pd
from mlops_assets.serving import protocol
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.models import ModelManager

uri, name, log_root, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
manager = ModelManager(GatewayConfig(model_name=name, tracking_uri=uri, registry_uri=uri, log_root=log_root))
served, slot = manager.refresh(), manager.routing.champion
frame = pd.DataFrame(rows["data"], columns=rows["columns"])
predicted = slot.predict([protocol.validate(protocol.Table.from_frame(frame), slot.schema)])
print(json.dumps({"served": served, "error": manager.last_error, "labels": predicted.labels.tolist(),
                  "proba": predicted.proba.tolist(), "schema": repr(slot.schema.kinds),
                  "compiled": slot.fast is not None,
                  "imported": sorted({m.split(".")[0] for m in sys.modules} & {"mlflow", "sqlalchemy", "alembic"})}))
"""


def mlflows_own(store: Store, version: str, tmp: Path) -> tuple[Pipeline, protocol.InputSchema]:
    """The reference: the version's model and signature as MLflow's client downloads and loads them."""
    uri = store.client.get_model_version_download_uri(MODEL, version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(tmp), tracking_uri=store.uri, registry_uri=store.uri
    )
    signature = mlflow.models.Model.load(local).signature
    return mlflow.sklearn.load_model(local), protocol.InputSchema.from_signature(signature)


def test_the_champion_is_loaded_without_mlflow_as_mlflows_client_loads_it(tmp_path: Path):
    store = Store.create(tmp_path / "mlflow")
    x, _ = wine()
    version = store.register(wine_model(), example=x.head(5))
    store.alias(version)
    rows = x.sample(40, random_state=1)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            store.uri,
            MODEL,
            str(tmp_path / "logs"),
            rows.to_json(orient="split", index=False),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["imported"] == [], f"the start-up path imported {got['imported']}"
    assert got["served"] == version and got["error"] is None and got["compiled"]

    model, schema = mlflows_own(store, version, tmp_path / "reference")
    assert got["schema"] == repr(schema.kinds)
    assert got["labels"] == model.predict(rows).tolist()
    np.testing.assert_allclose(got["proba"], model.predict_proba(rows), rtol=1e-12, atol=0)


def test_an_mlflow_server_still_serves_through_its_rest_api_and_artifact_proxy(tmp_path: Path):
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "served-artifacts").start()
    try:
        client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        store = Store(server.url, client, client.create_experiment("gateway-remote"), tmp_path)
        x, _ = wine()
        version = store.register(wine_model(), example=x.head(5))
        assert client.get_model_version_download_uri(MODEL, version).startswith("mlflow-artifacts:")
        store.alias(version)
        manager = ModelManager(
            GatewayConfig(
                model_name=MODEL, tracking_uri=server.url, registry_uri=server.url, log_root=tmp_path / "logs"
            )
        )
        assert manager.refresh() == version and manager.last_error is None
        slot = manager.routing.champion
        model, schema = mlflows_own(store, version, tmp_path / "reference")
        assert slot.schema == schema
        rows = x.sample(40, random_state=2)
        predicted = slot.predict([protocol.validate(protocol.Table.from_frame(rows), slot.schema)])
        assert predicted.labels.tolist() == model.predict(rows).tolist()

        server.crash()  # the registry goes away: the gateway keeps serving and says why
        assert manager.refresh() == version
        assert "registry unreachable" in manager.last_error and server.url in manager.last_error
    finally:
        server.stop()
