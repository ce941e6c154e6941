"""Asset values are small JSON records (ids, URIs, metrics); the data itself lives in the store and MLflow.

Keeping records as JSON, not pickles, means nothing the platform loads can execute code. Each record is kept
twice: as the asset's latest value and under the run that produced it. A step reads its upstream's record of
its own run when there is one, so two runs going at once (two training runs, say) never hand each other's
candidate down the chain; an upstream materialized by an earlier run is read as its latest value.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, DagsterInvariantViolationError, InputContext, OutputContext

RUN_RECORDS_KEPT_SECONDS = 7 * 24 * 3600  # a run's own copies outlive any run; older ones are pruned


class JsonRecordIOManager(ConfigurableIOManager):
    base_dir: str

    def _path(self, context: InputContext | OutputContext, partition: str = "__all__",
              run_id: str | None = None) -> Path:
        folder = Path(self.base_dir, *context.asset_key.path)
        return (folder / "runs" / run_id if run_id else folder) / f"{partition}.json"

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """One file per partition; a run over several partitions (a single-run backfill) hands in a
        mapping of partition key to record."""
        if obj is None:
            return
        if not context.has_asset_partitions:
            items = {"__all__": obj}
        else:
            keys = context.asset_partition_keys
            items = {keys[0]: obj} if len(keys) == 1 else {k: obj[k] for k in keys}
        run_id = _run_id(context)
        for partition, record in items.items():
            payload = json.dumps(record, indent=2, default=str)
            if run_id:
                _write_atomically(self._path(context, partition, run_id), payload)
            _write_atomically(self._path(context, partition), payload)
        _prune_runs(self._path(context).parent / "runs")

    def load_input(self, context: InputContext) -> Any:
        partition = context.asset_partition_key if context.has_asset_partitions else "__all__"
        run_id = _run_id(context.upstream_output)
        own = self._path(context, partition, run_id) if run_id else None
        path = own if own is not None and own.exists() else self._path(context, partition)
        if not path.exists():
            raise FileNotFoundError(f"no record for {context.asset_key.to_user_string()} at {path}: "
                                    "materialize it first")
        return json.loads(path.read_text(encoding="utf-8"))

    def latest_record(self, asset: str, partition: str = "__all__") -> Any | None:
        """The newest record of an asset partition, for readers outside a run (``mlops monitor show``)."""
        path = Path(self.base_dir, asset, f"{partition}.json")
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _run_id(context: OutputContext | None) -> str | None:
    """The run that produced an output (None when the context was built without one, as in unit tests)."""
    try:
        return context.run_id if context is not None else None
    except DagsterInvariantViolationError:
        return None


def _write_atomically(path: Path, payload: str) -> None:
    """A temporary name of this writer's own, then a rename: concurrent writers never mix their bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(payload, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _prune_runs(folder: Path) -> None:
    cutoff = time.time() - RUN_RECORDS_KEPT_SECONDS
    for run in folder.iterdir() if folder.is_dir() else ():
        try:
            if run.stat().st_mtime < cutoff:
                for f in run.iterdir():
                    f.unlink(missing_ok=True)
                run.rmdir()
        except OSError:
            continue  # pruned by a concurrent writer, or still being written: the next write tries again
