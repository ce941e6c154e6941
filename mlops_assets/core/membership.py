"""Which stored batches form a dataset version, and why the others are left out.

A version is built from every batch the store holds, in the order they were accepted. A batch joins unless it
fails the current spec (checked again from its stored bytes when it was accepted under another one), repeats
the content of a batch already in the version, or carries ids already in it; with ``id_policy: upsert`` its
rows replace the older rows with the same ids instead. Each batch left out has its reason on record, so a
version with fewer batches than the store holds always says why.

Ids are compared in bounded memory: per batch only its sorted int64 id column, merged into one sorted array
of the version (12 bytes an id with the batch it belongs to), never the rows themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.ingestion import ingest_file
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.validation import BatchRejected

SAMPLE_IDS = 5
CROSS_BATCH_CHECK = "unique across the dataset version"


def revalidate(stored: Path, spec: DatasetSpec, scratch: Path) -> str | None:
    """Why a stored batch fails ``spec`` (None: it passes), checked from its Parquet file a chunk at a time with
    exactly the rules a landed file meets (``core.ingestion.ingest_file``); ``scratch`` is a file it may write."""
    try:
        ingest_file(stored, spec, scratch)
    except BatchRejected as rejected:
        return rejection_reason(rejected)
    finally:
        scratch.unlink(missing_ok=True)
    return None


def rejection_reason(rejected: BatchRejected) -> str:
    """A rejection as one line for a manifest: its reason and each failed rule, as the quarantine report says
    them (the rows are those of the stored batch)."""
    return "; ".join(line.strip().lstrip("- ") for line in str(rejected).splitlines()[1:]) or rejected.reason


def accepted_order(batches: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Batches oldest first (then by partition): the order in which newer rows win or are refused."""
    return sorted(batches, key=lambda b: (datetime.fromisoformat(b["accepted_at"]), b["partition"]))


@dataclass
class IdIndex:
    """The ids of a version's batches, sorted, each with the position of the batch that holds it now."""

    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    owner: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))

    def _hits(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of ``ids`` (sorted) would go, and which of them are already here."""
        pos = np.searchsorted(self.ids, ids)
        hit = pos < len(self.ids)
        hit[hit] = self.ids[pos[hit]] == ids[hit]
        return pos, hit

    def overlap(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``ids`` already here, and the batch position holding each."""
        pos, hit = self._hits(ids)
        return ids[hit], self.owner[pos[hit]]

    def add(self, ids: np.ndarray, owner: int) -> dict[int, int]:
        """Make batch ``owner`` the holder of ``ids`` (sorted); returns how many ids it took from each batch."""
        pos, hit = self._hits(ids)
        taken, counts = np.unique(self.owner[pos[hit]], return_counts=True)
        self.owner[pos[hit]] = owner
        self.ids = np.insert(self.ids, pos[~hit], ids[~hit])
        self.owner = np.insert(self.owner, pos[~hit], np.int32(owner))
        return dict(zip(taken.tolist(), counts.tolist(), strict=True))


@dataclass(frozen=True)
class Conflict:
    """Why a batch cannot join a version, with the failure record a quarantine report shows."""

    reason: str
    failures: list[dict[str, Any]]


def conflict(sha256: str, ids: np.ndarray | None, joined: Sequence[Mapping[str, Any]], index: IdIndex | None,
             *, id_column: str | None, id_policy: str) -> Conflict | None:
    """Whether a batch repeats the content of a batch in the version, or (policy ``reject``) any of its ids."""
    same = next((b for b in joined if b["sha256"] == sha256), None)
    if same is not None:
        return Conflict(f"duplicate of partition {same['partition']}: the same content (sha256 {sha256[:16]}) is "
                        "already in the dataset version", [])
    if id_policy != "reject" or index is None or ids is None:
        return None
    repeated, owners = index.overlap(ids)
    if not repeated.size:
        return None
    holders = sorted({joined[int(o)]["partition"] for o in owners})
    sample = [str(v) for v in repeated[:SAMPLE_IDS].tolist()]
    return Conflict(
        f"{repeated.size} id(s) in column {id_column!r} already in partition(s) {', '.join(holders)} of the dataset "
        f"version, e.g. {', '.join(sample)}; set `id_policy: upsert` in the spec to let newer rows replace them",
        # The stored batch is sorted by id, so there are no file lines to name: the ids themselves are the samples.
        [{"column": id_column, "check": CROSS_BATCH_CHECK, "count": int(repeated.size), "samples": [],
          "rule": f"{repeated.size} id(s) already in partition(s) {', '.join(holders)} of the dataset version, "
                  f"e.g. {', '.join(sample)}",
          "hint": "set `id_policy: upsert` in the spec to let newer rows replace the older ones"}])


@dataclass
class VersionPlan:
    """What a dataset version holds: the batches that join, those left out (with why), and with ``upsert`` the
    older rows newer batches replaced; ``index`` holds the version's ids (None without an id column)."""

    joined: list[Mapping[str, Any]]
    left_out: list[dict[str, Any]]
    superseded: list[dict[str, Any]]
    index: IdIndex | None


def plan_version(batches: Iterable[Mapping[str, Any]], failed: Mapping[str, str | None],
                 ids_of: Callable[[Mapping[str, Any]], np.ndarray] | None, *, id_column: str | None = None,
                 id_policy: str = "reject") -> VersionPlan:
    """Decide, oldest batch first, which batches join a version.

    ``failed`` maps a partition to why its stored batch fails the current spec (None or absent: it passes);
    ``ids_of`` gives a batch's sorted ids (None: the spec has no id column).
    """
    plan = VersionPlan([], [], [], IdIndex() if ids_of else None)
    for batch in accepted_order(batches):
        reason, ids = failed.get(batch["partition"]), None
        if reason is None:
            ids = ids_of(batch) if ids_of else None
            found = conflict(batch["sha256"], ids, plan.joined, plan.index, id_column=id_column, id_policy=id_policy)
            reason = found.reason if found else None
        if reason is not None:
            plan.left_out.append({"partition": batch["partition"], "sha256": batch["sha256"],
                                  "rows": int(batch["rows"]), "reason": reason})
            continue
        if plan.index is not None and ids is not None:
            for position, rows in plan.index.add(ids, len(plan.joined)).items():
                older = plan.joined[position]
                plan.superseded.append({"partition": older["partition"], "sha256": older["sha256"],
                                        "by": batch["partition"], "by_sha256": batch["sha256"], "rows": rows})
        plan.joined.append(batch)
    return plan


def superseding(manifest: Mapping[str, Any], partition: str) -> list[str]:
    """The batches (content hashes) whose rows replace some of ``partition``'s rows in a version."""
    return sorted({s["by_sha256"] for s in manifest.get("superseded", []) if s["partition"] == partition})


def drop_superseded(chunk: pd.DataFrame, id_column: str, replaced: np.ndarray) -> pd.DataFrame:
    """A chunk without the rows whose ids a newer batch of the version holds (``replaced``: sorted ids)."""
    if not replaced.size:
        return chunk
    keep = ~np.isin(chunk[id_column].to_numpy(dtype=np.int64), replaced, assume_unique=False)
    return chunk if keep.all() else chunk[keep].reset_index(drop=True)
