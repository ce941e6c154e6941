"""The one way every stage loads a model: an MLflow model directory read with skops and nothing else.

``mlflow.sklearn.load_model`` unpickles a model saved as a pickle (MLflow's default format), so a version
registered by hand under the platform's name would run its code inside whichever stage loaded it. Here a model
loads only when its ``MLmodel`` says skops, and only with the types that ``MLmodel`` trusts, which must lie within
``core.contracts.TRUSTED_SKOPS_TYPES``; file names read from ``MLmodel`` must stay inside the model's directory.
Reading is what ``mlflow.sklearn.load_model`` and ``Model.load_input_example`` do for a skops model (the same
fitted object), without importing MLflow: the gateway's start-up imports this module, and a model on this
machine's disk (a ``file:`` artifact root, the platform's default) is read in place. Anything else (``models:/``,
``runs:/``, an MLflow server's artifact proxy, object stores) is downloaded by MLflow's own client first.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_assets.core.contracts import TRUSTED_SKOPS_TYPES

SKOPS = "skops"
HOW_TO_LOG = "log it with mlflow.sklearn.log_model(..., serialization_format='skops')"


class ModelFormatError(ValueError):
    """A model the platform does not load: what is wrong with it and how to log it instead."""


def load_model(uri: str, *, tracking_uri: str, registry_uri: str) -> Any:
    """The fitted model at an MLflow URI (``models:/name/version``, ``models:/name@alias``, ``runs:/id/path``, an
    artifact URI or a local path), loaded with skops only. Remote artifacts are downloaded with these URIs, never
    the process-global ones. Raises ``ModelFormatError`` naming ``uri`` for a model the platform does not load."""
    try:
        with local_copy(uri, tracking_uri=tracking_uri, registry_uri=registry_uri) as path:
            return load_skops(path, read_mlmodel(path))
    except ModelFormatError as exc:
        raise ModelFormatError(f"{uri}: {exc}") from None


@contextlib.contextmanager
def local_copy(uri: str, *, tracking_uri: str, registry_uri: str) -> Iterator[Path]:
    """The model directory ``uri`` names on this machine: in place when it is already here, else downloaded by
    MLflow into a temporary directory that is removed when the block ends."""
    if urllib.parse.urlparse(uri).scheme in ("models", "runs"):
        uri = artifact_location(uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
    local = local_dir(uri)
    if local is not None:
        yield local
        return
    import mlflow.artifacts  # only for artifacts elsewhere: MLflow's client speaks every store and URI scheme

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        yield Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        )


def artifact_location(uri: str, *, tracking_uri: str, registry_uri: str) -> str:
    """Where the artifacts of a ``models:/`` URI (a registered version or alias, a logged model's id) or a
    ``runs:/<run id>/<name>`` URI (the model a run logged under that name, else the run's own artifact) are, asked
    of this store and registry with MLflow's own URI parsers: MLflow's artifact repositories for such URIs look
    logged models up in the process-global registry, whatever URIs they are given."""
    import posixpath

    from mlflow import MlflowClient
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    if ModelsArtifactRepository.is_models_uri(uri):
        base, sub_path = ModelsArtifactRepository.split_models_uri(uri)
        found = get_model_name_and_version(client, base)
        if len(found) == 1:  # models:/<model id>: a logged model, registered or not
            location = client.get_logged_model(found[0]).artifact_location
        else:
            location = client.get_model_version_download_uri(*found)
    else:
        run_id, path = RunsArtifactRepository.parse_runs_uri(uri)
        run = client.get_run(run_id)
        name, _, rest = (path or "").partition("/")
        logged = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
            max_results=1,
        )
        location, sub_path = (logged[0].artifact_location, rest) if logged else (run.info.artifact_uri, path)
    return posixpath.join(location, sub_path) if sub_path else location


def local_dir(uri: str) -> Path | None:
    """The directory a ``file:`` URI or a plain path names on this machine; None for anything else."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def read_mlmodel(path: Path) -> dict[str, Any]:
    """The ``MLmodel`` of a model directory (safe YAML), refused unless its sklearn flavour is saved with skops."""
    meta = yaml.load((path / "MLmodel").read_text(encoding="utf-8"), Loader=_Loader) or {}
    flavor = (meta.get("flavors") or {}).get("sklearn")
    if not isinstance(flavor, dict):
        raise ModelFormatError(
            f"{path} has no sklearn flavour; the platform loads scikit-learn models only: {HOW_TO_LOG}"
        )
    serialised = flavor.get("serialization_format", "pickle")  # MLflow's default when the field is absent
    if serialised != SKOPS:
        raise ModelFormatError(
            f"the model is saved as {serialised!r}; the platform loads only skops files (a pickle runs whatever "
            f"code it carries): {HOW_TO_LOG}"
        )
    return meta


def load_skops(path: Path, meta: dict[str, Any]) -> Any:
    """The fitted model of a directory whose ``MLmodel`` passed ``read_mlmodel``, loaded with exactly the types it
    trusts, refused when those go beyond the platform's allowlist."""
    flavor = meta["flavors"]["sklearn"]
    trusted = flavor.get("skops_trusted_types") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise ModelFormatError(f"skops_trusted_types in {path / 'MLmodel'} must be a list of type names")
    if unknown := sorted(set(trusted) - TRUSTED_SKOPS_TYPES):
        raise ModelFormatError(
            f"skops_trusted_types in {path / 'MLmodel'} asks to trust {unknown}, outside the types the platform's "
            "models need (core.contracts.TRUSTED_SKOPS_TYPES): the artifact was not logged by the platform's "
            "training or was altered; re-register the model from a training run"
        )
    import skops.io  # imports every scikit-learn estimator: ~1 s, paid here rather than at the gateway's import

    return skops.io.load(_inside(path, flavor.get("pickled_model")), trusted=trusted)


def read_example(path: Path, meta: dict[str, Any]) -> pd.DataFrame | None:
    """The input example as MLflow reads a table example (``split`` JSON, optionally under ``inputs`` beside
    ``params``); None when the model was logged without one or with another kind (arrays, JSON objects)."""
    info = meta.get("saved_input_example_info")
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return None
    example = json.loads(_inside(path, info.get("artifact_path")).read_text(encoding="utf-8"))
    if info.get("params"):
        example = example["inputs"]
    if not isinstance(example, dict) or "data" not in example:
        raise ModelFormatError(f"the input example in {path} is not a table in 'split' form (columns, data)")
    return pd.DataFrame(data=example["data"], columns=example.get("columns"), index=example.get("index"))


def _inside(root: Path, name: object) -> Path:
    """``root / name`` for a file name read from ``MLmodel``, refused when it points outside the model."""
    if not isinstance(name, str) or not name:
        raise ModelFormatError(f"{root / 'MLmodel'} names no file where it must name one")
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ModelFormatError(f"{root / 'MLmodel'} names {name!r}, outside the model's directory")
    return target


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader when installed, else the Python one
