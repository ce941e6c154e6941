"""The continuous-training policy the sensors apply (thresholds and switches, overridable from the env)."""

from dagster import ConfigurableResource


class ContinuousTraining(ConfigurableResource):
    retrain_on_new_data: bool = True
    retrain_on_drift: bool = True
    retrain_on_decay: bool = True
    # The drift sensor asks for a fresh drift report each time this many new predictions were served today.
    drift_every_rows: int = 200
