"""Partitions: one per landed batch (dynamic, added by the new-data sensor) and one per day for monitoring."""

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

batch_partitions = DynamicPartitionsDefinition(name="batches")

# end_offset=1 makes today's (still filling) window a partition too, so monitoring can run intra-day.
daily_partitions = DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)

# One per file landed in the scoring zone (dynamic, added by the scoring sensor or `mlops score --partition`).
scoring_partitions = DynamicPartitionsDefinition(name="scoring_batches")
