"""Sensors and schedules: the continuous-training loop."""

from sensors.approval import approval_sensor
from sensors.data import new_data_sensor, new_dataset_sensor
from sensors.deployment import canary_sensor
from sensors.labels import labels_sensor
from sensors.mlflow_runs import mlflow_run_sensor
from sensors.monitoring import champion_reevaluation_schedule, drift_sensor, performance_sensor
from sensors.retention import prediction_retention_schedule
from sensors.scoring import scoring_sensor

SENSORS = [new_data_sensor, new_dataset_sensor, drift_sensor, performance_sensor, canary_sensor, labels_sensor,
           scoring_sensor, approval_sensor, mlflow_run_sensor]
SCHEDULES = [champion_reevaluation_schedule, prediction_retention_schedule]

__all__ = ["SCHEDULES", "SENSORS", "approval_sensor", "canary_sensor", "drift_sensor", "labels_sensor",
           "mlflow_run_sensor", "new_data_sensor", "new_dataset_sensor", "performance_sensor", "scoring_sensor"]
