"""The prediction and feedback logs written by the serving gateway, read by monitoring."""

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource
from pydantic import PrivateAttr

from mlops_assets.core import labels as by_id
from mlops_assets.core import predictions as logs
from mlops_assets.core import retention
from mlops_assets.core.event_time import EventLog
from mlops_assets.core.spec import DatasetSpec

DELIVERY_TIMEOUT_SECONDS = 600.0  # a label delivery waits this long for its lines to be written


class PredictionLog(ConfigurableResource):
    root: str  # a local path or an fsspec URL (s3://bucket/mlops), the one the gateway writes to
    label_delay_days: int = 7  # labels by request id for a day's predictions are looked for this many days after it
    retention_days: int | None = None  # served days kept (settings.prediction_retention_days); None keeps all
    _id_join: by_id.LabelJoin | None = PrivateAttr(default=None)

    def predictions(self, day: date) -> pd.DataFrame:
        return logs.read_predictions(self.root, day)

    def feedback_for(self, day: date) -> pd.DataFrame:
        """The labels of a day's predictions: by request id (delivered within ``label_delay_days``) and by
        business id (delivered any time later, placed on the latest prediction of each id); when both label a
        row, the one by request id wins."""
        frames = [logs.read_feedback(self.root, day + timedelta(days=i)) for i in range(self.label_delay_days + 1)]
        keyed = self.id_join().for_day(day)
        frame = pd.concat([keyed, *frames] if len(keyed) else frames, ignore_index=True)  # dtypes of non-empty ones
        return frame.drop_duplicates(["request_id", "row"], keep="last")

    def id_join(self) -> by_id.LabelJoin:
        """Every label by business id on its prediction: read once per run (one resource instance), however
        many days the run covers."""
        if self._id_join is None:
            self._id_join = self._join(by_id.id_labels(logs.read_id_labels(self.root)))
        return self._id_join

    def deliver(self, labels: pd.DataFrame, id_column: str, source: str,
                timestamp_column: str | None = None) -> by_id.LabelJoin:
        """Store labels by business id (``id``, ``label``, optional ``label_ts``), then report how they joined:
        the predictions they reached (their serving days, and their event days by ``timestamp_column``) and the
        ids never predicted."""
        writer = logs.JsonlLog(self.root, logs.FEEDBACK)
        for line in by_id.feedback_lines(labels, id_column, source):
            writer.write(line)
        writer.close(timeout=DELIVERY_TIMEOUT_SECONDS)  # everything on disk before the join reads it back
        delivered = {key for key in map(by_id.id_key, labels["id"]) if key is not None}
        stored = by_id.id_labels(logs.read_id_labels(self.root)).get(id_column, {})
        self._id_join = None
        return self._join({id_column: {key: stored[key] for key in delivered if key in stored}}, timestamp_column)

    def deliver_file(self, path: str, spec: DatasetSpec) -> by_id.LabelJoin:
        """Deliver a CSV or Parquet label file (the spec's id_column and target); ``LabelFileError`` names the
        file and column when it cannot be."""
        frame = by_id.read_label_file(path, spec)
        return self.deliver(frame, spec.id_column, f"file:{Path(path).name}", spec.timestamp_column)

    def _join(self, labels: dict[str, dict], timestamp_column: str | None = None) -> by_id.LabelJoin:
        wanted = {column: set(keys) for column, keys in labels.items() if keys}
        if not wanted:
            return by_id.join_by_id(labels, {})
        lines = logs.iter_log(self.root, logs.PREDICTIONS, tuple(f'"{column}"' for column in wanted))
        return by_id.join_by_id(labels, by_id.latest_predictions(lines, wanted, timestamp_column))

    def rows_per_event_day(self, timestamp_column: str | None) -> dict[str, int]:
        """Rows logged per event day (ISO day -> rows), from the event-day index, which this brings up to date
        (a serving day is re-read only when its log files changed)."""
        return EventLog(self.root, timestamp_column).rows_per_event_day()

    def served_days(self) -> retention.Served:
        return retention.served_days(self.root)

    def delete_days(self, days: list[date]) -> retention.Removed:
        return retention.delete_days(self.root, days)
