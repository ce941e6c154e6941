"""A registered model's files turned into what the gateway serves, without importing MLflow when it can.

Importing ``mlflow`` costs the gateway's start-up 1-3 s (more than the model takes to load), so a model whose
artifacts are on this machine's disk (a ``file:`` artifact root, the platform's default) is read in place: its
``MLmodel`` (YAML), the skops file its sklearn flavour names and its input example, exactly the files
``mlflow.sklearn.load_model`` and ``Model.load_input_example`` read. Artifacts anywhere else (an MLflow server's
artifact proxy, object stores) are downloaded by MLflow's own client, then read the same way.

skops is the only deserialiser: a model saved as a pickle is refused, and the skops file is loaded with exactly
the types its ``MLmodel`` trusts (what ``mlflow.sklearn.load_model`` does), so a file carrying anything else
refuses to load. File names inside ``MLmodel`` must stay inside the model's directory.
"""

from __future__ import annotations

import json
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_assets.core.contracts import TRUSTED_SKOPS_TYPES
from mlops_assets.serving import protocol

SKOPS = "skops"


class ModelFormatError(ValueError):
    """A registered model the gateway does not load: what is wrong with it and how to log it instead."""


@dataclass(frozen=True)
class ModelFiles:
    """What one model version's directory holds, read and checked: the fitted model, the columns its signature
    takes, and its input example (None when it was logged without a table example)."""

    model: Any
    schema: protocol.InputSchema
    example: pd.DataFrame | None


def local_dir(uri: str) -> Path | None:
    """The directory a ``file:`` URI (or a plain absolute path) names on this machine; None for anything else."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def load_version(download_uri: str, *, tracking_uri: str, registry_uri: str) -> ModelFiles:
    """The files of the version whose artifacts are at ``download_uri`` (what the registry answers for it): read
    in place when they are on this machine, else downloaded by MLflow with these URIs (never the process-global
    ones) into a temporary directory first."""
    local = local_dir(download_uri)
    if local is not None:
        return read_model_dir(local)
    import mlflow.artifacts  # only for artifacts elsewhere: MLflow's client speaks every artifact store

    with tempfile.TemporaryDirectory(prefix="mlops-gateway-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=download_uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=registry_uri
        )
        return read_model_dir(Path(path))


def read_model_dir(path: Path) -> ModelFiles:
    """Load the model of an MLflow model directory with skops and its trusted types, with signature and example."""
    meta = yaml.load((path / "MLmodel").read_text(encoding="utf-8"), Loader=_Loader) or {}
    flavor = (meta.get("flavors") or {}).get("sklearn")
    if not isinstance(flavor, dict):
        raise ModelFormatError(
            f"{path} has no sklearn flavour; the gateway serves scikit-learn models logged with "
            "mlflow.sklearn.log_model(..., serialization_format='skops')"
        )
    serialised = flavor.get("serialization_format", "pickle")  # MLflow's default when the field is absent
    if serialised != SKOPS:
        raise ModelFormatError(
            f"the model is saved as {serialised!r}; the gateway loads only skops files (a pickle "
            "runs whatever code it carries): log it with serialization_format='skops'"
        )
    schema = protocol.InputSchema.from_signature(meta.get("signature"))
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

    model = skops.io.load(_inside(path, flavor.get("pickled_model")), trusted=trusted)
    return ModelFiles(model, schema, _example(path, meta))


def _example(path: Path, meta: dict[str, Any]) -> pd.DataFrame | None:
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
