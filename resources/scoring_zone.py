"""The scoring zone: files of inputs waiting to be scored in batch, and where their results and reports go.

Files stay in ``incoming`` after they are scored, so a backfill can score them again with a pinned model
version; the sensor's cursor (size and modification time per name) keeps a file from being scored twice by itself.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from mlops_assets.core import ingestion
from resources.store import resolve_zone_file, settled_files

ZONE = "scoring zone"


class ScoringZone(ConfigurableResource):
    incoming_dir: str
    output_dir: str
    reports_dir: str
    settle_seconds: float = 1.0

    @property
    def incoming(self) -> Path:
        path = Path(self.incoming_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def settled_files(self, now: float | None = None) -> list[Path]:
        return settled_files(self.incoming, self.settle_seconds, now)

    def resolve(self, name: str) -> Path:
        return resolve_zone_file(self.incoming, name, ZONE)

    def file_for(self, batch_id: str) -> Path | None:
        """The file behind a batch id (its name without the suffix), for runs that name only the partition."""
        for candidate in self.settled_files(now=float("inf")):
            if candidate.suffix.lower() in ingestion.SUPPORTED_SUFFIXES and candidate.stem == batch_id:
                return self.resolve(candidate.name)
        return None

    def output_path(self, batch_id: str) -> Path:
        return Path(self.output_dir) / f"{batch_id}.parquet"

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir)
