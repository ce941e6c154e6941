"""The data store: landing zone, quarantine, content-addressed batches and dataset versions.

Batches and manifests live under ``root``, a local path or any fsspec URL (``s3://bucket/mlops``), laid out
like a small DVC cache: ``objects/ab/abcdef....parquet`` (immutable, written once), ``batches/<key>.json``
(the accepted version of each partition) and ``datasets/<id>.json`` (manifests). Every write goes to a
temporary name first and is then moved into place, so a crash or a full disk never leaves a partial
object or manifest visible. The landing zone and quarantine are local directories the sensor watches.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from fsspec.implementations.local import LocalFileSystem
from pydantic import PrivateAttr

from mlops_assets.core import features as features_logic
from mlops_assets.core import ingestion, membership, versions
from mlops_assets.core import training as training_logic
from mlops_assets.core.spec import DatasetSpec, demo_spec, load_spec
from resources.dataset_membership import DatasetMembership

IGNORED_PREFIXES = (".", "_", "~")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


class LandingFileError(Exception):
    """A landing file the platform refuses to read (outside the zone, a link, not a regular file)."""


def settled_files(folder: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """The files of a watched folder ready to read: visible names, not temporary, unchanged for ``settle_seconds``."""
    now = time.time() if now is None else now
    ready = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES):
            continue
        if entry.is_dir() and not entry.is_symlink():
            continue
        try:
            if now - entry.lstat().st_mtime < settle_seconds:
                continue
        except FileNotFoundError:
            continue
        ready.append(entry)
    return ready


def resolve_zone_file(folder: Path, name: str, zone: str) -> Path:
    """A file of a watched folder by name, refusing traversal, links and anything not a regular file in it."""
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise LandingFileError(f"{name!r} is not a plain file name in the {zone}")
    path = folder / name
    if path.is_symlink():
        raise LandingFileError(f"{name} is a symbolic link; files in the {zone} must be regular files "
                               f"(links could point outside the {zone})")
    if not path.exists():
        raise LandingFileError(f"{name} is not in the {zone} {folder}")
    if not path.is_file():
        raise LandingFileError(f"{name} is not a regular file")
    if path.resolve().parent != folder.resolve():
        raise LandingFileError(f"{name} resolves outside the {zone}")
    return path


class DataStore(ConfigurableResource, DatasetMembership):
    """Where batches land, are quarantined, and are kept as immutable, versioned data."""

    root: str
    landing_dir: str
    quarantine_dir: str
    spec_path: str | None = None
    settle_seconds: float = 1.0

    _fs: Any = PrivateAttr(default=None)
    _base: str = PrivateAttr(default="")

    # --- plumbing -------------------------------------------------------------------------------
    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            fs, base = fsspec.core.url_to_fs(self.root)
            fs.makedirs(base, exist_ok=True)
            self._fs, self._base = fs, base.rstrip("/")
        return self._fs, self._base

    def _path(self, *parts: str) -> str:
        _, base = self._filesystem()
        return "/".join([base, *parts])

    def _atomic(self, rel: str, write: Callable[[Any, str], None]) -> None:
        """``write(fs, tmp)`` to a temporary name beside ``rel``, then move it into place: never a partial file."""
        fs, _ = self._filesystem()
        final = self._path(rel)
        fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{final}.{uuid.uuid4().hex}.tmp"
        try:
            write(fs, tmp)
            fs.mv(tmp, final)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)

    def _atomic_write(self, rel: str, payload: bytes) -> None:
        self._atomic(rel, lambda fs, tmp: fs.pipe_file(tmp, payload))

    def _atomic_put(self, rel: str, local: Path) -> None:
        """``_atomic_write`` of a local file's content; on a local store a rename, not a copy."""
        def put(fs: Any, tmp: str) -> None:
            if isinstance(fs, LocalFileSystem):
                shutil.move(local, tmp)
            else:
                fs.put_file(str(local), tmp)

        self._atomic(rel, put)

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        """A local scratch directory for a batch being written; on a local store it sits under the root, on
        the same disk, so accepting the batch moves no bytes."""
        fs, base = self._filesystem()
        parent = None
        if isinstance(fs, LocalFileSystem):
            parent = Path(base) / "tmp"
            parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ingest-", dir=parent) as tmp:
            yield Path(tmp)

    def _read_json(self, rel: str) -> dict[str, Any] | None:
        fs, _ = self._filesystem()
        path = self._path(rel)
        if not fs.exists(path):
            return None
        with fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def spec(self) -> DatasetSpec:
        return load_spec(self.spec_path) if self.spec_path else demo_spec()

    # --- landing zone ---------------------------------------------------------------------------
    @property
    def landing(self) -> Path:
        path = Path(self.landing_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def quarantine(self) -> Path:
        path = Path(self.quarantine_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def settled_landing_files(self, now: float | None = None) -> list[Path]:
        """Files ready to ingest: visible names, not temporary, unchanged for ``settle_seconds``.

        A file still being written is skipped this tick and picked up on a later one.
        """
        return settled_files(self.landing, self.settle_seconds, now)

    def resolve_landing(self, name: str) -> Path:
        return resolve_zone_file(self.landing, name, "landing zone")

    def quarantine_file(self, path: Path, report: dict[str, Any]) -> Path:
        """Move a rejected file out of the landing zone with a machine-readable report beside it."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = self.quarantine / f"{stamp}_{path.name}"
        report = {**report, "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "quarantined_as": target.name}
        if path.is_symlink():
            path.unlink()  # never follow it: keep the link target untouched, drop the link
        elif path.exists():
            shutil.move(str(path), target)
        Path(f"{target}.report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        return target

    def quarantine_reports(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.quarantine.glob("*.report.json"))]

    # --- batches --------------------------------------------------------------------------------
    def ingest(self, partition: str, path: Path, *, source_sha256: str, schema_hash: str,
               chunk_rows: int = ingestion.DEFAULT_CHUNK_ROWS) -> tuple[dict[str, Any], pd.DataFrame]:
        """Validate a landed file chunk by chunk and store it content-addressed, in bounded memory.

        Raises ``BatchRejected`` (nothing stored) for a file that fails, or that repeats the content or ids of the
        current dataset version (``check_joins``); returns the batch record and the first rows of the stored batch.
        """
        with self._staging() as tmp:
            batch = ingestion.ingest_file(path, self.spec(), tmp / "batch.parquet", chunk_rows=chunk_rows)
            self.check_joins(partition, path.name, batch)
            fs, _ = self._filesystem()
            obj = f"objects/{batch.sha256[:2]}/{batch.sha256}.parquet"
            if not fs.exists(self._path(obj)):
                self._atomic_put(obj, batch.path)
        record = self._accept(partition, batch.sha256, rows=batch.rows, size=batch.bytes, columns=batch.columns,
                              source=path.name, source_sha256=source_sha256, schema_hash=schema_hash)
        if batch.unseen:  # values a column's `unseen: accept` let in: shown with the batch, never silent
            record = {**record, "unseen_categories": batch.unseen}
        return record, batch.preview

    def _accept(self, partition: str, digest: str, *, rows: int, size: int, columns: list[str], source: str,
                source_sha256: str, schema_hash: str) -> dict[str, Any]:
        """Make a stored object the accepted version of its partition."""
        record = {"partition": partition, "sha256": digest, "rows": int(rows),
                  "bytes": size, "columns": columns, "source": source,
                  "source_sha256": source_sha256, "schema_hash": schema_hash,
                  "accepted_at": datetime.now(UTC).isoformat(timespec="microseconds")}
        previous = self.batch_record(partition)
        if previous and previous["sha256"] == digest:
            return previous  # idempotent: re-ingesting the same content changes nothing
        self._atomic_write(f"batches/{partition}.json", json.dumps(record, indent=2).encode())
        return record

    def batch_record(self, partition: str) -> dict[str, Any] | None:
        return self._read_json(f"batches/{partition}.json")

    def batch_records(self) -> list[dict[str, Any]]:
        return self._read_json_folder("batches")

    def _read_json_folder(self, folder: str) -> list[dict[str, Any]]:
        """Every JSON record of a store folder, in file-name order."""
        fs, _ = self._filesystem()
        path = self._path(folder)
        if not fs.exists(path):
            return []
        out = []
        for name in sorted(p for p in fs.ls(path, detail=False) if p.endswith(".json")):
            with fs.open(name, "rb") as fh:
                out.append(json.loads(fh.read()))
        return out

    def _object_blocks(self, digest: str) -> Iterator[bytes]:
        """A stored batch's bytes a block at a time; raises after the last block if they do not match its name."""
        fs, _ = self._filesystem()
        sha = hashlib.sha256()
        with fs.open(self._path(f"objects/{digest[:2]}/{digest}.parquet"), "rb") as fh:
            while block := fh.read(1 << 22):
                sha.update(block)
                yield block
        if sha.hexdigest() != digest:
            raise OSError(f"stored object {digest} is corrupt: its content hash does not match")

    def _verify_object(self, digest: str) -> str:
        """The path of a stored batch whose bytes were just checked against its name."""
        for _ in self._object_blocks(digest):
            pass
        return self._path(f"objects/{digest[:2]}/{digest}.parquet")

    def _iter_parquet(self, path: str, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        fs, _ = self._filesystem()
        with fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh, pre_buffer=False).iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()

    # --- features -----------------------------------------------------------------------------
    @contextmanager
    def feature_tables(self, dataset_id: str, names: tuple[str, ...]) -> Iterator[Callable[[str, pd.DataFrame], None]]:
        """Write a dataset version's feature tables chunk by chunk: yields ``write(name, chunk)``; on a clean
        exit every table is moved into place (derived data: rewriting it is harmless), on an error none is."""
        with self._staging() as tmp:
            writers: dict[str, pq.ParquetWriter] = {}

            def write(name: str, frame: pd.DataFrame) -> None:
                if name not in names:
                    raise KeyError(f"{name!r} is not one of the feature tables {names}")
                first = writers.get(name) or next(iter(writers.values()), None)
                table = ingestion.to_arrow(frame, first.schema if first else None)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(tmp / f"{name}.parquet", table.schema,
                                                     **ingestion.PARQUET_OPTIONS)
                writers[name].write_table(table, row_group_size=ingestion.ROW_GROUP_ROWS)

            try:
                yield write
            finally:
                for writer in writers.values():
                    writer.close()
            if not writers:
                raise ValueError(f"dataset version {dataset_id} has no rows to write as features")
            schema = next(iter(writers.values())).schema
            for name in names:
                if name not in writers:  # no row went to this side: an empty table of the same columns
                    pq.write_table(schema.empty_table(), tmp / f"{name}.parquet", **ingestion.PARQUET_OPTIONS)
                self._atomic_put(f"features/{dataset_id}/{name}.parquet", tmp / f"{name}.parquet")

    def iter_features(self, dataset_id: str, name: str, columns: list[str] | None = None,
                      chunk_rows: int = features_logic.CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """A feature table a chunk at a time (only ``columns``, when given)."""
        yield from self._iter_parquet(self._path(f"features/{dataset_id}/{name}.parquet"), columns, chunk_rows)

    def sample_features(self, dataset_id: str, name: str, max_rows: int | None) -> tuple[pd.DataFrame, int]:
        """At most about ``max_rows`` rows of a feature table, chosen by row-id hash (``core.training.sample_rows``),
        and the table's row count; memory is bounded by the sample."""
        fs, _ = self._filesystem()
        with fs.open(self._path(f"features/{dataset_id}/{name}.parquet"), "rb") as fh:
            total = pq.ParquetFile(fh).metadata.num_rows  # the footer alone
        return training_logic.sample_rows(lambda columns: self.iter_features(dataset_id, name, columns),
                                          self.spec(), max_rows, total)

    def holdout(self, dataset_id: str) -> pd.DataFrame:
        """The holdout rows every model of a dataset version is scored on (``DatasetSpec.max_holdout_rows``)."""
        return self.sample_features(dataset_id, "holdout", self.spec().max_holdout_rows)[0]

    # --- dataset versions -----------------------------------------------------------------------
    def save_dataset(self, manifest: dict[str, Any]) -> dict[str, Any]:
        existing = self.load_manifest(manifest["id"])
        if existing:
            return existing  # same content, same version: keep its original creation time
        self._atomic_write(f"datasets/{manifest['id']}.json", json.dumps(manifest, indent=2).encode())
        return manifest

    def load_manifest(self, dataset_id: str) -> dict[str, Any] | None:
        if not versions.PARTITION_KEY.match(dataset_id):
            raise ValueError(f"{dataset_id!r} is not a dataset version id")
        return self._read_json(f"datasets/{dataset_id}.json")

    def manifests(self) -> list[dict[str, Any]]:
        return sorted(self._read_json_folder("datasets"), key=lambda m: (m["created"], m["id"]))

    def iter_dataset(self, dataset_id: str, chunk_rows: int = features_logic.CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """A dataset version's rows a chunk at a time, batch after batch, each batch verified against its hash
        before it is read: what lets the features stage handle any size in bounded memory. Rows a newer batch
        replaced (``id_policy: upsert``) are left out."""
        manifest = self.load_manifest(dataset_id)
        if manifest is None:
            raise KeyError(f"dataset version {dataset_id} does not exist; list them with `mlops data versions`")
        for batch in manifest["batches"]:
            replaced = self.replaced_ids(manifest, batch["partition"])
            for chunk in self._iter_parquet(self._verify_object(batch["sha256"]), None, chunk_rows):
                if replaced is not None:
                    chunk = membership.drop_superseded(chunk, manifest["id_column"], replaced)
                if len(chunk):
                    yield chunk

    def checkout(self, dataset_id: str, target: Path) -> list[Path]:
        """Write a dataset version's batches, byte for byte, into a directory."""
        manifest = self.load_manifest(dataset_id)
        if manifest is None:
            raise KeyError(f"dataset version {dataset_id} does not exist; list them with `mlops data versions`")
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for batch in manifest["batches"]:
            out = target / f"{batch['partition']}.parquet"
            partial = out.with_name(f".{out.name}.partial")
            try:  # copied a block at a time and checked on the way: a corrupt object leaves no file behind
                with open(partial, "wb") as fh:
                    for block in self._object_blocks(batch["sha256"]):
                        fh.write(block)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise OSError(f"batch {batch['partition']}: {exc}") from exc
            partial.replace(out)
            written.append(out)
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return written
