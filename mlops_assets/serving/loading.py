"""A registered model's files turned into what the gateway serves, without importing MLflow when it can.

Importing ``mlflow`` costs the gateway's start-up 1-3 s (more than the model takes to load), so a model whose
artifacts are on this machine's disk (a ``file:`` artifact root, the platform's default) is read in place;
artifacts anywhere else are downloaded by MLflow's own client first. The reading itself (skops only, the types
its ``MLmodel`` trusts within the platform's allowlist, no file outside the model's directory) is the one every
stage uses, ``core.model_files``; what is the gateway's own here is the input schema it validates requests with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core import model_files
from mlops_assets.serving import protocol


@dataclass(frozen=True)
class ModelFiles:
    """What one model version's directory holds, read and checked: the fitted model, the columns its signature
    takes, and its input example (None when it was logged without a table example)."""

    model: Any
    schema: protocol.InputSchema
    example: pd.DataFrame | None


def load_version(download_uri: str, *, tracking_uri: str, registry_uri: str) -> ModelFiles:
    """The files of the version whose artifacts are at ``download_uri`` (what the registry answers for it): read
    in place when they are on this machine, else downloaded by MLflow with these URIs (never the process-global
    ones) into a temporary directory first."""
    with model_files.local_copy(download_uri, tracking_uri=tracking_uri, registry_uri=registry_uri) as path:
        return read_model_dir(path)


def read_model_dir(path: Path) -> ModelFiles:
    """The model of an MLflow model directory (skops, its trusted types), its signature's schema and its example;
    the schema is checked before the model loads, so a model the gateway cannot serve is not loaded at all."""
    meta = model_files.read_mlmodel(path)
    schema = protocol.InputSchema.from_signature(meta.get("signature"))
    return ModelFiles(model_files.load_skops(path, meta), schema, model_files.read_example(path, meta))
