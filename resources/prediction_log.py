"""The prediction and feedback logs written by the serving gateway, read by monitoring."""

from datetime import date, timedelta

import pandas as pd
from dagster import ConfigurableResource

from mlops_assets.core import predictions as logs
from mlops_assets.core import retention


class PredictionLog(ConfigurableResource):
    root: str  # a local path or an fsspec URL (s3://bucket/mlops), the one the gateway writes to
    label_delay_days: int = 7  # labels for a day's predictions are looked for this many days after it
    retention_days: int | None = None  # served days kept (settings.prediction_retention_days); None keeps all

    def predictions(self, day: date) -> pd.DataFrame:
        return logs.read_predictions(self.root, day)

    def feedback_for(self, day: date) -> pd.DataFrame:
        frames = [logs.read_feedback(self.root, day + timedelta(days=i))
                  for i in range(self.label_delay_days + 1)]
        frame = pd.concat(frames, ignore_index=True)
        return frame.drop_duplicates(["request_id", "row"], keep="last")

    def count(self, day: date) -> int:
        return logs.count_predictions(self.root, day)

    def served_days(self) -> retention.Served:
        return retention.served_days(self.root)

    def delete_days(self, days: list[date]) -> retention.Removed:
        return retention.delete_days(self.root, days)
