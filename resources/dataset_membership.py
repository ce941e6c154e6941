"""The store's dataset versions: which stored batches form the current version, checked and cached per spec.

A batch accepted under an older spec is checked again against the current one from its stored Parquet (no
re-landing), once per batch and spec: the verdict is kept at ``checks/<schema hash>/<sha256>.json``. A batch's
sorted ids are kept at ``ids/ab/<sha256>.<column hash>.npy``, so ids are compared across the version in bounded
memory (``core.membership``). Mixed into ``DataStore``, whose plumbing (``_path``, ``_atomic_write``, ...) it uses.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from mlops_assets.core import membership, validation, versions
from mlops_assets.core.ingestion import CanonicalBatch
from mlops_assets.core.spec import DatasetSpec

ID_CHUNK_ROWS = 1 << 20


class DatasetMembership:
    """``DataStore``'s dataset-version concerns: current version, re-validation under a new spec, ids."""

    def current_dataset(self) -> dict[str, Any] | None:
        """The dataset version the stored batches form under the current spec (not saved; None before the first
        batch; no batches when every one is left out): the one computation behind the ``dataset`` asset and the
        new-dataset sensor. Every stored batch either joins or is listed in ``left_out`` with its reason."""
        spec = self.spec()
        digest = versions.schema_hash(validation.raw_schema(spec))
        records = self.batch_records()
        if not records:
            return None
        plan = self._plan(spec, digest, records)
        manifest = versions.build_manifest(plan.joined, spec_name=spec.name, schema_digest=digest,
                                           left_out=plan.left_out, superseded=plan.superseded,
                                           id_column=spec.id_column)
        return {**manifest, "id_policy": spec.id_policy}

    def check_joins(self, partition: str, file: str, batch: CanonicalBatch) -> None:
        """Raise ``BatchRejected`` for a validated batch that repeats the content or (policy ``reject``) the ids of
        the current version's other batches; otherwise keep its ids for later checks."""
        spec = self.spec()
        digest = versions.schema_hash(validation.raw_schema(spec))
        records = [r for r in self.batch_records() if r["partition"] != partition]
        plan = self._plan(spec, digest, records)
        ids = _sorted_ids(pq.ParquetFile(batch.path), spec.id_column) if spec.id_column else None
        found = membership.conflict(batch.sha256, ids, plan.joined, plan.index, id_column=spec.id_column,
                                    id_policy=spec.id_policy)
        if found is not None:
            raise validation.BatchRejected(file, found.reason, found.failures)
        if ids is not None:
            self._atomic_write(_ids_path(batch.sha256, spec.id_column), _npy(ids))

    def replaced_ids(self, manifest: Mapping[str, Any], partition: str) -> np.ndarray | None:
        """The ids of a version's batch whose rows newer batches replace (upsert), sorted; None when none are."""
        newer = membership.superseding(manifest, partition)
        if not newer:
            return None
        return np.unique(np.concatenate([self.batch_ids(sha, manifest["id_column"]) for sha in newer]))

    def batch_ids(self, digest: str, id_column: str) -> np.ndarray:
        """A stored batch's ids, sorted (read once from its Parquet a chunk at a time, then kept beside it)."""
        rel = _ids_path(digest, id_column)
        fs, _ = self._filesystem()
        if fs.exists(self._path(rel)):
            with fs.open(self._path(rel), "rb") as fh:
                return np.load(io.BytesIO(fh.read()), allow_pickle=False)
        with fs.open(self._verify_object(digest), "rb") as fh:
            ids = _sorted_ids(pq.ParquetFile(fh, pre_buffer=False), id_column)
        self._atomic_write(rel, _npy(ids))
        return ids

    def _plan(self, spec: DatasetSpec, digest: str, records: list[dict[str, Any]]) -> membership.VersionPlan:
        failed = {r["partition"]: self._failure_under(spec, digest, r) for r in records
                  if r.get("schema_hash") != digest}
        ids_of = (lambda b: self.batch_ids(b["sha256"], spec.id_column)) if spec.id_column else None
        return membership.plan_version(records, failed, ids_of, id_column=spec.id_column, id_policy=spec.id_policy)

    def _failure_under(self, spec: DatasetSpec, digest: str, record: Mapping[str, Any]) -> str | None:
        """Why a batch accepted under another spec fails this one (None: it passes), checked once and cached."""
        rel = f"checks/{digest}/{record['sha256']}.json"
        cached = self._read_json(rel)
        if cached is not None:
            return cached["reason"]
        with self._local_object(record["sha256"]) as stored, self._staging() as tmp:
            reason = membership.revalidate(stored, spec, tmp / "check.parquet")
        verdict = {"sha256": record["sha256"], "spec": spec.name, "schema_hash": digest, "passed": reason is None,
                   "reason": reason}
        self._atomic_write(rel, json.dumps(verdict, indent=2).encode())
        return reason

    @contextmanager
    def _local_object(self, digest: str) -> Iterator[Path]:
        """A stored batch as a local file, its bytes checked against its name (copied when the store is remote)."""
        fs, _ = self._filesystem()
        if isinstance(fs, LocalFileSystem):
            yield Path(self._verify_object(digest))
            return
        with self._staging() as tmp:
            local = tmp / f"{digest}.parquet"
            with open(local, "wb") as fh:
                for block in self._object_blocks(digest):
                    fh.write(block)
            yield local


def _ids_path(digest: str, id_column: str) -> str:
    return f"ids/{digest[:2]}/{digest}.{versions.sha256_bytes(id_column.encode())[:8]}.npy"


def _sorted_ids(parquet: pq.ParquetFile, id_column: str) -> np.ndarray:
    """One column of a Parquet file as sorted int64, read a chunk at a time (8 bytes a row)."""
    parts = [batch.column(0).to_numpy().astype(np.int64, copy=False)
             for batch in parquet.iter_batches(batch_size=ID_CHUNK_ROWS, columns=[id_column])]
    ids = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    ids.sort()
    return ids


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
