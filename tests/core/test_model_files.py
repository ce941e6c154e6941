"""The one model loader every stage uses: a skops model logged by MLflow into a real SQLite store loads as the same
fitted model by every kind of URI; a pickled one is refused with the reason and nothing in it runs; an MLmodel
that trusts more than the platform's allowlist, or points outside the model's directory, is refused."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import skops.io as sio
import yaml
from sklearn.pipeline import Pipeline

from mlops_assets.core import model_files
from mlops_assets.core.model_files import ModelFormatError
from mlops_assets.core.registry import ModelRegistry
from mlops_assets.core.scoring import choose_model
from mlops_assets.core.training import skops_trusted_types
from tests.support.tiny_models import Trap, log_model, wine, wine_model

NAME = "loader-test-model"


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A real SQLite tracking store and registry, the mlflow module pointed at it as the platform's steps do."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(
        experiment_id=mlflow.MlflowClient(uri).create_experiment(
            "loader-tests", artifact_location=(tmp_path / "artifacts").as_uri()
        )
    )
    return ModelRegistry(tracking_uri=uri, registry_uri=uri, model_name=NAME, lock_dir=str(tmp_path / "locks"))


def test_a_skops_model_loads_as_the_same_fitted_model_by_every_uri(registry: ModelRegistry, tmp_path: Path):
    model = wine_model()
    uri, version = log_model(
        model,
        NAME,
        serialization_format="skops",
        skops_trusted_types=skops_trusted_types(model),
        input_example=wine()[0].head(3),
    )
    download_uri = registry.client().get_model_version_download_uri(NAME, version)
    assert download_uri.startswith("file:") and uri.startswith("models:/m-")  # read in place / downloaded
    local = mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=str(tmp_path / "copy"))
    with mlflow.start_run() as plain:  # a model kept as a plain run artifact, as MLflow 2 logged models
        mlflow.log_artifacts(local, "plain")
    run_id = registry.client().get_model_version(NAME, version).run_id
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # the module's global store is not this registry
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    loaded = {
        "models:/name/version": registry.load_version(version),
        "the logged model's id": registry.load_model(uri),
        "runs:/ run artifact": registry.load_model(f"runs:/{plain.info.run_id}/plain"),
        "runs:/ logged model": registry.load_model(f"runs:/{run_id}/model"),
        "file: artifact URI": registry.load_model(download_uri),
        "local path": model_files.load_model(local, tracking_uri="", registry_uri=""),
    }
    rows = wine()[0].sample(40, random_state=1)
    reference = mlflow.sklearn.load_model(local)  # what the stages loaded before
    for how, got in loaded.items():
        assert type(got) is Pipeline and got.get_params().keys() == model.get_params().keys(), how
        assert got.predict(rows).tolist() == model.predict(rows).tolist() == reference.predict(rows).tolist(), how
        np.testing.assert_array_equal(got.predict_proba(rows), model.predict_proba(rows), err_msg=how)


def test_a_pickled_model_is_refused_with_the_reason_and_nothing_in_it_runs(registry: ModelRegistry, tmp_path: Path):
    marker = tmp_path / "the-pickle-ran"
    _, version = log_model(Trap(marker), NAME, serialization_format="pickle")
    assert not marker.exists()
    for load in (
        lambda: registry.load_version(version),
        lambda: model_files.load_model(
            f"models:/{NAME}/{version}", tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri
        ),
    ):
        with pytest.raises(
            ModelFormatError,
            match=rf"^models:/{NAME}/{version}: the model is saved as 'pickle'; "
            r"the platform loads only skops.*serialization_format='skops'",
        ):
            load()
        assert not marker.exists(), "the loader ran the pickle's code"

    with pytest.raises(ModelFormatError, match="saved as 'pickle'"):  # batch scoring pinned to it refuses it too
        choose_model(registry, version)
    assert not marker.exists()

    mlflow.sklearn.load_model(f"models:/{NAME}/{version}")  # the trap is live: MLflow's own loader runs it
    assert marker.exists()


def saved(model: Pipeline, path: Path, **kwargs: object) -> Path:
    """``model`` saved by MLflow as a model directory, with a signature and an input example."""
    mlflow.sklearn.save_model(model, path, input_example=wine()[0].head(3), pip_requirements=["scikit-learn"], **kwargs)
    return path


def load(path: Path) -> object:
    return model_files.load_model(str(path), tracking_uri="", registry_uri="")  # a local path: no store involved


def test_model_directories_the_platform_must_not_load_are_refused_with_the_reason(tmp_path: Path):
    model = wine_model()
    with pytest.raises(ModelFormatError, match="saved as 'cloudpickle'.*only skops"):
        load(saved(model, tmp_path / "pickled", serialization_format="cloudpickle"))

    trusted = sio.get_untrusted_types(data=sio.dumps(model))
    path = saved(model, tmp_path / "skops", serialization_format="skops", skops_trusted_types=trusted)
    assert load(path).predict(wine()[0]).tolist() == model.predict(wine()[0]).tolist()  # as saved, it loads
    mlmodel = path / "MLmodel"
    original = mlmodel.read_text()
    tampered = yaml.safe_load(original)  # an MLmodel that no longer trusts what the skops file carries
    tampered["flavors"]["sklearn"]["skops_trusted_types"] = ["numpy.dtype"]
    mlmodel.write_text(yaml.safe_dump(tampered))
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException, match="TreePredictor"):
        load(path)
    tampered["flavors"]["sklearn"]["skops_trusted_types"] = [*trusted, "builtins.exec"]  # asks to trust more
    mlmodel.write_text(yaml.safe_dump(tampered))
    with pytest.raises(ModelFormatError, match=r"asks to trust \['builtins.exec'\].*re-register"):
        load(path)
    mlmodel.write_text(original.replace("pickled_model: model.skops", "pickled_model: ../model.skops"))
    with pytest.raises(ModelFormatError, match="outside the model's directory"):
        load(path)
    escaping = original.replace("artifact_path: input_example.json", "artifact_path: ../../input_example.json")
    mlmodel.write_text(escaping)
    with pytest.raises(ModelFormatError, match="outside the model's directory"):
        model_files.read_example(path, model_files.read_mlmodel(path))
