"""Sensors and schedules: the continuous-training loop."""

from sensors.approval import approval_sensor
from sensors.data import new_data_sensor, new_dataset_sensor
from sensors.deployment import canary_sensor
from sensors.monitoring import champion_reevaluation_schedule, drift_sensor, performance_sensor

SENSORS = [new_data_sensor, new_dataset_sensor, drift_sensor, performance_sensor, canary_sensor, approval_sensor]
SCHEDULES = [champion_reevaluation_schedule]

__all__ = ["SCHEDULES", "SENSORS", "approval_sensor", "canary_sensor", "drift_sensor", "new_data_sensor",
           "new_dataset_sensor", "performance_sensor"]
