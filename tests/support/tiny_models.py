"""Tiny registered models without Dagster, for the gateway tests: a throw-away MLflow store driven through one
explicit client (the process-global tracking URI is never touched), scikit-learn Pipelines that train in
milliseconds, and the gateway as its own process (`mlops serve`) so a test can crash it for real.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import skops.io as sio
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from resources.tracking import MlflowTracking
from tests.support.servers import ServerProcess, free_port

MODEL = "gateway-test-model"
TOKEN = "test-admin-token"
COLUMNS = ["x", "colour"]


def data(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n).round(3),
                          "colour": rng.choice(["red", "green", "blue"], n)})
    return frame, ((frame["x"] + 1.5 * (frame["colour"] == "red")) > 0.4).astype(int)


def train(seed: int, flip: bool = False) -> Pipeline:
    """A tiny Pipeline; ``flip`` learns the opposite labels, so a swap is visible in the predictions."""
    x, y = data(400, seed)
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    pre = ColumnTransformer([("num", StandardScaler(), ["x"]), ("cat", onehot, ["colour"])])
    return Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(x, 1 - y if flip else y)


def wine() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_wine(return_X_y=True, as_frame=True)
    return x, y


def wine_model() -> Pipeline:
    """The platform's shape on real data: imputed and scaled columns before gradient-boosted trees (whose skops
    file carries types outside skops' defaults, trusted by name in its MLmodel)."""
    x, y = wine()
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    pre = ColumnTransformer([("num", numeric, list(x.columns))])
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    return Pipeline([("pre", pre), ("model", model)]).fit(x, y)


class Trap:
    """What a hand-registered pickle can carry: unpickling it calls ``Path.touch(marker)`` (any code could run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


def log_model(model: object, name: str, **kwargs: object) -> tuple[str, str]:
    """``model`` logged by ``mlflow.sklearn.log_model`` in a run of the mlflow module's current experiment and
    registered as the next version of ``name``, as anyone could do by hand: (its logged model URI, version)."""
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                        pip_requirements=["scikit-learn"], **kwargs)  # no requirement inference
    return info.model_uri, str(info.registered_model_version)


def split(frame: pd.DataFrame) -> dict:
    """A scoring request body in MLflow's ``dataframe_split`` form."""
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


@dataclass
class Store:
    """A throw-away MLflow tracking store and registry, driven through one explicit client."""

    uri: str
    client: mlflow.MlflowClient
    experiment_id: str
    root: Path

    @classmethod
    def create(cls, root: Path) -> Store:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = client.create_experiment("gateway-tests", artifact_location=(root / "artifacts").as_uri())
        return cls(uri, client, experiment_id, root)

    def register(self, model: Pipeline, name: str = MODEL, signature_columns: dict[str, str] | None = None,
                 example: pd.DataFrame | None = None) -> str:
        """A new version of ``name``; ``signature_columns`` renames columns in its signature and input example
        (a signature that does not match what the model needs). ``example``: rows of the model's own columns
        (default: the tiny models' columns)."""
        example = data(5, 99)[0] if example is None else example
        signature = infer_signature(example.rename(columns=signature_columns or {}), model.predict(example))
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, "model")
            mlflow.sklearn.save_model(model, local, serialization_format="skops",
                                      input_example=example.rename(columns=signature_columns or {}),
                                      signature=signature,
                                      skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(model)),
                                      pip_requirements=["scikit-learn", "skops"])  # skips a slow inference
            run = self.client.create_run(self.experiment_id)
            logged = self.client.create_logged_model(self.experiment_id, name="model",
                                                     source_run_id=run.info.run_id)
            self.client.log_model_artifacts(logged.model_id, str(local))
            self.client.set_terminated(run.info.run_id)
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        # The artifact location as source, with the run: a `models:/<id>` source makes MLflow's SQL registry
        # look the model up through the process-global tracking URI.
        return str(self.client.create_model_version(name, logged.artifact_location, run_id=run.info.run_id,
                                                    model_id=logged.model_id).version)

    def alias(self, version: str, alias: str = "champion", name: str = MODEL) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def model_file(self, version: str, name: str = MODEL) -> Path:
        uri = self.client.get_model_version_download_uri(name, version)
        return Path(uri.removeprefix("file://")) / "model.skops"

    def tracking(self, name: str = MODEL) -> MlflowTracking:
        """The platform's registry resource on this store: releases move through its functions."""
        return MlflowTracking(tracking_uri=self.uri, registry_uri=self.uri, experiment="gateway-tests",
                              model_name=name, lock_dir=str(self.root / "locks"))


class GatewayProcess(ServerProcess):
    """`mlops serve` on loopback in its own process and session: ``crash()`` kills it like a power cut, and
    ``start()`` again brings up a fresh process on the same port with nothing in memory."""

    def __init__(self, store: Store, home: Path, name: str = MODEL, workers: int = 1) -> None:
        port = free_port()
        env = {**os.environ, "MLOPS_HOME": str(home), "MLFLOW_TRACKING_URI": store.uri,
               "MLFLOW_REGISTRY_URI": store.uri, "MLOPS_MODEL_NAME": name, "MLOPS_ADMIN_TOKEN": TOKEN,
               "MLOPS_GATEWAY_POLL_SECONDS": "0.2"}
        env.pop("MLOPS_PREDICTION_LOG_URL", None)
        # Ready once it answers: its model may still be loading.
        super().__init__([sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port),
                          "--workers", str(workers)], env, port, "/version", poll=0.1)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=5).json()

    def wait_for(self, timeout: float = 30, **expected: object) -> dict:
        """Until /health shows every ``expected`` field; returns the last /health (the caller asserts on it)."""
        deadline = time.monotonic() + timeout
        health = self.health()
        while any(health.get(k) != v for k, v in expected.items()) and time.monotonic() < deadline:
            time.sleep(0.1)
            health = self.health()
        return health
