"""MLflow as a Dagster resource: the platform's experiment for tracking, and the registry operations of
``mlops_assets.core.registry`` (aliases, lock, promote / canary / rollback) on its registered model.

The tracking and registry URIs come from configuration (the standard ``MLFLOW_TRACKING_URI`` and
``MLFLOW_REGISTRY_URI`` when set, else a SQLite store under the home), credentials only from the
environment (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, read by MLflow itself).
"""

from __future__ import annotations

import mlflow
from dagster import ConfigurableResource
from mlflow.exceptions import MlflowException

from mlops_assets.core.mlflow_links import MlflowLinks, ui_base_url
from mlops_assets.core.registry import RegistryOperations


class MlflowTracking(ConfigurableResource, RegistryOperations):
    """Tracking server, registry and the platform's experiment and registered model."""

    tracking_uri: str
    registry_uri: str
    experiment: str
    model_name: str
    artifact_location: str | None = None
    lock_dir: str
    ui_url: str = ui_base_url("")  # the MLflow UI links open (settings.mlflow_ui_url: local or the server's)

    @property
    def links(self) -> MlflowLinks:
        return MlflowLinks(self.ui_url)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return self.links.run(experiment_id, run_id)

    def model_version_url(self, version: str | int) -> str:
        return self.links.model_version(self.model_name, version)

    def activate(self) -> str:
        """Point the mlflow module at this store and make sure the experiment exists; returns its id."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        except MlflowException:  # created concurrently by another run
            return client.get_experiment_by_name(self.experiment).experiment_id
