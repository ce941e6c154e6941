"""The labels sensor: ground truth files dropped in the labels zone are delivered to the id-keyed label store,
reported (joined, unknown ids) as a ``delivered_labels`` materialization, and the monitoring days they reached
are evaluated again."""

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetMaterialization,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from mlops_assets import settings
from mlops_assets.core.contracts import TRIGGER, Trigger
from mlops_assets.core.labels import LabelFileError
from mlops_assets.jobs import monitoring_job
from mlops_assets.partitions import daily_partitions
from resources import Alerter, DataStore, PredictionLog
from resources.store import IGNORED_PREFIXES, IGNORED_SUFFIXES

DELIVERED_LABELS = "delivered_labels"


def _settled(zone: Path, settle_seconds: float) -> list[Path]:
    """Label files ready to deliver: regular, visible, not temporary, unchanged for ``settle_seconds``."""
    now = time.time()
    return [p for p in sorted(zone.iterdir())
            if p.is_file() and not p.is_symlink() and not p.name.startswith(IGNORED_PREFIXES)
            and not p.name.lower().endswith(IGNORED_SUFFIXES) and now - p.stat().st_mtime >= settle_seconds]


def _file_away(path: Path, folder: Path, report: dict) -> Path:
    """Move a handled file out of the zone, its report beside it (a name delivered twice keeps both)."""
    target = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}_{path.name}"
    shutil.move(str(path), target)
    Path(f"{target}.report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return target


@sensor(job=monitoring_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Delivers each label file (CSV/Parquet: the spec's id_column and target) dropped in the labels "
                    "zone: labels join the latest prediction of each id however late; ids never predicted are "
                    "counted and reported. Then re-evaluates the monitoring days the labels reached.")
def labels_sensor(context: SensorEvaluationContext, store: DataStore, prediction_log: PredictionLog,
                  alerts: Alerter):
    lay = settings.layout()
    files = _settled(lay.labels_incoming, settings.settle_seconds())
    if not files:
        return SensorResult(skip_reason=f"no label files in {lay.labels_incoming}")
    spec, events, days = store.spec(), [], set()
    for path in files:
        try:
            joined = prediction_log.deliver_file(str(path), spec)
        except LabelFileError as exc:
            moved = _file_away(path, lay.labels_rejected, {"file": path.name, "reason": str(exc)})
            alerts.alert("labels_rejected", f"label file {path.name} not delivered: {exc}", file=path.name,
                         moved_to=str(moved))
            continue
        summary = {"file": path.name, **joined.summary()}
        _file_away(path, lay.labels_delivered, summary)
        if joined.unknown:
            alerts.alert("unknown_label_ids", f"{path.name}: {len(joined.unknown)} label(s) for ids never predicted, "
                         f"e.g. {joined.unknown[:5]}", file=path.name, unknown=len(joined.unknown))
        days.update(joined.event_days())  # monitoring's days: a replay's labels reach the replay's event days
        events.append(AssetMaterialization(DELIVERED_LABELS, description=f"labels of {path.name}", metadata={
            "file": path.name, "labels": joined.joined + len(joined.unknown), "joined": joined.joined,
            "unknown_ids": len(joined.unknown), "sample_unknown_ids": MetadataValue.json(joined.unknown[:5]),
            "days_reached": MetadataValue.json(sorted(days))}))
    requests = []
    keys = sorted(day for day in days if daily_partitions.has_partition_key(day))
    if keys:  # one run over the days the labels reached (the monitoring assets run a range in one go)
        requests.append(RunRequest(tags={TRIGGER: Trigger.LABELS, ASSET_PARTITION_RANGE_START_TAG: keys[0],
                                 ASSET_PARTITION_RANGE_END_TAG: keys[-1]}))
    return SensorResult(run_requests=requests, asset_events=events)
