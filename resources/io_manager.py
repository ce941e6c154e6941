"""Asset values are small JSON records (ids, URIs, metrics); the data itself lives in the store and MLflow.

Keeping records as JSON, not pickles, means nothing the platform loads can execute code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext


class JsonRecordIOManager(ConfigurableIOManager):
    base_dir: str

    def _path(self, context: InputContext | OutputContext, partition: str = "__all__") -> Path:
        return Path(self.base_dir) / "/".join(context.asset_key.path) / f"{partition}.json"

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
        for partition, record in items.items():
            path = self._path(context, partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
            tmp.replace(path)

    def load_input(self, context: InputContext) -> Any:
        path = self._path(context, context.asset_partition_key if context.has_asset_partitions else "__all__")
        if not path.exists():
            raise FileNotFoundError(f"no record for {context.asset_key.to_user_string()} at {path}: "
                                    "materialize it first")
        return json.loads(path.read_text(encoding="utf-8"))
