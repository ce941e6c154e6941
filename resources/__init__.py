"""Dagster resources: the platform's only I/O boundary."""

from resources.alerts import Alerter
from resources.continuous_training import ContinuousTraining
from resources.gateway import ServingGateway
from resources.io_manager import JsonRecordIOManager
from resources.prediction_log import PredictionLog
from resources.scoring_zone import ScoringZone
from resources.store import DataStore, LandingFileError
from resources.tracking import MlflowTracking

__all__ = ["Alerter", "ContinuousTraining", "DataStore", "JsonRecordIOManager", "LandingFileError", "MlflowTracking",
           "PredictionLog", "ScoringZone", "ServingGateway"]
