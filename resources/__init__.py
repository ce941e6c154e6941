"""Dagster resources: the platform's only I/O boundary."""

from resources.alerts import Alerter
from resources.gateway import ServingGateway
from resources.io_manager import JsonRecordIOManager
from resources.policy import ContinuousTraining
from resources.prediction_log import PredictionLog
from resources.store import DataStore, LandingFileError
from resources.tracking import CANARY, CHALLENGER, CHAMPION, PREVIOUS, MlflowTracking

__all__ = ["CANARY", "CHALLENGER", "CHAMPION", "PREVIOUS", "Alerter", "ContinuousTraining", "DataStore",
           "JsonRecordIOManager", "LandingFileError", "MlflowTracking", "PredictionLog", "ServingGateway"]
