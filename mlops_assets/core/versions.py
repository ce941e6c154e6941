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
import warnings
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
    """A schema's fingerprint. pandera's JSON leaves out custom checks (finite, share of nulls), so their names,
    which carry their limits, are added: a changed ``max_null_fraction`` is a changed spec."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only registered checks may be serialized")
        text = schema.to_json()
    custom = {name: sorted(str(c.name) for c in col.checks) for name, col in sorted(schema.columns.items())}
    return sha256_bytes((text + json.dumps(custom, sort_keys=True)).encode("utf-8"))[:16]


def build_manifest(batches: list[dict[str, Any]], *, spec_name: str, schema_digest: str,
                   left_out: list[dict[str, Any]] | None = None, superseded: list[dict[str, Any]] | None = None,
                   id_column: str | None = None) -> dict[str, Any]:
    """A dataset version: the sorted list of its batches' hashes; its id is the hash of that list.

    Only content goes into the id (not the time), so the same accepted batches always give the same id. Stored
    batches ``left_out`` (each with its reason) and older rows ``superseded`` by newer batches' ids are part of
    the content when there are any, so a version never hides a batch the store holds.
    """
    entries = sorted(({"partition": b["partition"], "sha256": b["sha256"], "rows": int(b["rows"])}
                      for b in batches), key=lambda e: e["partition"])
    content: dict[str, Any] = {"spec": spec_name, "schema_hash": schema_digest, "batches": entries}
    if left_out:
        content["left_out"] = sorted(left_out, key=lambda e: (e["partition"], e["sha256"]))
    if superseded:
        content["superseded"] = sorted(superseded, key=lambda e: (e["partition"], e["by"]))
        content["id_column"] = id_column
    digest = sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
    return {
        "id": digest[:16],
        "digest": digest,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": sum(e["rows"] for e in entries) - sum(int(s["rows"]) for s in superseded or []),
        "left_out": [],
        "superseded": [],
        **content,
    }


def left_out_lines(left_out: list[dict[str, Any]]) -> list[str]:
    """Each stored batch a version leaves out, with why, as one line."""
    return [f"{b['partition']} ({b['rows']} rows, sha256 {b['sha256'][:16]}): {b['reason']}" for b in left_out]


def stable_holdout_mask(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Rows go to the holdout by a hash of their id, so a row keeps its side across dataset versions
    and the champion and the challenger are always compared on rows neither trained on."""
    if spec.id_column:
        keys = pd.util.hash_pandas_object(frame[spec.id_column], index=False).to_numpy()
    else:
        keys = pd.util.hash_pandas_object(frame[spec.feature_names + [spec.target]], index=False).to_numpy()
    return (keys % 10_000) < int(spec.holdout_fraction * 10_000)
