"""Dataset versions: content hashes, manifests of them, and the train/holdout split that outlives versions.

A batch is kept under the hash of its canonical bytes (``core.ingestion``); a dataset version is a manifest
of its batches' hashes, and its id is the hash of that manifest, so the same accepted data always gives the
same id. Rows are split by a hash of their id, so a row keeps its side in every version. (Model versions are
``core.registry``'s; the code version is ``core.code_version``'s.)
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_assets.core.spec import DatasetSpec

if TYPE_CHECKING:
    import pandera.pandas as pa

# What a batch's partition key and a dataset version id may look like: both name files in the store.
PARTITION_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def schema_hash(schema: pa.DataFrameSchema) -> str:
    return sha256_bytes(schema.to_json().encode("utf-8"))[:16]


def build_manifest(batches: list[dict[str, Any]], *, spec_name: str, schema_digest: str) -> dict[str, Any]:
    """A dataset version: the sorted list of its batches' hashes; its id is the hash of that list.

    Only content goes into the id (not the time), so the same accepted batches always give the same id.
    """
    entries = sorted(({"partition": b["partition"], "sha256": b["sha256"], "rows": int(b["rows"])}
                      for b in batches), key=lambda e: e["partition"])
    content = {"spec": spec_name, "schema_hash": schema_digest, "batches": entries}
    digest = sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
    return {
        "id": digest[:16],
        "digest": digest,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": sum(e["rows"] for e in entries),
        **content,
    }


def stable_holdout_mask(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Rows go to the holdout by a hash of their id, so a row keeps its side across dataset versions
    and the champion and the challenger are always compared on rows neither trained on."""
    if spec.id_column:
        keys = pd.util.hash_pandas_object(frame[spec.id_column], index=False).to_numpy()
    else:
        keys = pd.util.hash_pandas_object(frame[spec.feature_names + [spec.target]], index=False).to_numpy()
    return (keys % 10_000) < int(spec.holdout_fraction * 10_000)
