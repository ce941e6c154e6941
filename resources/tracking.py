"""MLflow as a Dagster resource: the platform's experiment for tracking, the registry operations of
``mlops_assets.core.registry`` (aliases, lock, promote / canary / rollback) on its registered model, and the one
MLflow run that every step of a Dagster run shares (monitoring), built on dagster-mlflow's ``MlFlow``.

The tracking and registry URIs come from configuration (the standard ``MLFLOW_TRACKING_URI`` and
``MLFLOW_REGISTRY_URI`` when set, else a SQLite store under the home), credentials only from the
environment (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, read by MLflow itself).

Why not dagster-mlflow's ``mlflow_tracking`` resource as it is (docs/architecture.md, "One MLflow run per
Dagster run"): it knows no registry URI nor artifact location, and it finds "the run of this Dagster run" by a
search that two parallel steps both miss, so each creates a run of its own. Here the run is created once under a
lock and handed to ``MlFlow`` through its own ``mlflow_run_id`` setting; ``MlFlow`` then resumes it in the step
and sets dagster-mlflow's tags (``dagster_run_id``, the ``env_to_tag`` variables, extra tags).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
from dagster import BetaWarning, ConfigurableResource, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster_mlflow.resources import MlFlow
from mlflow.entities import RunStatus, ViewType
from mlflow.exceptions import MlflowException

from mlops_assets.core import contracts as c
from mlops_assets.core.code_version import code_version, git_commit
from mlops_assets.core.mlflow_links import MlflowLinks, ui_base_url
from mlops_assets.core.registry import RegistryOperations

SHARED_RUN_LOCK = "mlflow-shared-runs"  # one lock for every lookup-or-create: held for one search and one create
# How an ended Dagster run ends its shared MLflow run; any other status means the Dagster run is still going.
END_STATUS = {
    DagsterRunStatus.SUCCESS: RunStatus.to_string(RunStatus.FINISHED),
    DagsterRunStatus.FAILURE: RunStatus.to_string(RunStatus.FAILED),
    DagsterRunStatus.CANCELED: RunStatus.to_string(RunStatus.KILLED),
}


@dataclass(frozen=True)
class SharedRunContext:
    """What dagster-mlflow's ``MlFlow`` reads of its resource's init context, taken from a step's context."""

    log: Any
    dagster_run: DagsterRun
    run_id: str
    resource_config: dict[str, Any]


@dataclass(frozen=True)
class OpenSharedRun:
    """A shared MLflow run still RUNNING, and the Dagster run it belongs to."""

    mlflow_run_id: str
    dagster_run_id: str


def partition_of(dagster_run: DagsterRun) -> str | None:
    """The partition a Dagster run materializes: one key, or ``first..last`` for a single-run range."""
    tags = dagster_run.tags
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return f"{tags[ASSET_PARTITION_RANGE_START_TAG]}..{tags[ASSET_PARTITION_RANGE_END_TAG]}"
    return None


class MlflowTracking(ConfigurableResource, RegistryOperations):
    """Tracking server, registry and the platform's experiment and registered model."""

    tracking_uri: str
    registry_uri: str
    experiment: str
    model_name: str
    artifact_location: str | None = None
    lock_dir: str
    ui_url: str = ui_base_url("")  # the MLflow UI links open (settings.mlflow_ui_url: local or the server's)
    env_to_tag: list[str] = []  # environment variables tagged on shared runs (settings.mlflow_env_tags)

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

    def shared_run_id(self, dagster_run: DagsterRun, kind: str) -> str:
        """The MLflow run of ``dagster_run``, created by the first step that asks. Lookup and creation happen
        under one file lock, so parallel step processes on this machine all get the same run (dagster-mlflow's
        own search-then-create lets two steps each create one)."""
        experiment_id = self.activate()
        client = self.client()
        with self._file_lock(SHARED_RUN_LOCK):
            found = client.search_runs(
                [experiment_id], max_results=1, run_view_type=ViewType.ACTIVE_ONLY,
                filter_string=f"tags.{c.DAGSTER_MLFLOW_RUN_TAG} = '{dagster_run.run_id}' "
                              f"and tags.`{c.MLFLOW_RUN_KIND}` = '{kind}'")
            if found:
                return found[0].info.run_id
            tags = {c.DAGSTER_MLFLOW_RUN_TAG: dagster_run.run_id, c.LINEAGE_RUN_ID: dagster_run.run_id,
                    c.MLFLOW_RUN_KIND: kind, c.DAGSTER_JOB_TAG: dagster_run.job_name,
                    c.LINEAGE_TRIGGER: dagster_run.tags.get(c.TRIGGER, c.Trigger.MANUAL),
                    c.LINEAGE_CODE: code_version(), c.LINEAGE_COMMIT: git_commit() or "unknown"}
            if (partition := partition_of(dagster_run)) is not None:
                tags[c.PARTITION_TAG] = partition
            return client.create_run(experiment_id, tags=tags, run_name=dagster_run.job_name).info.run_id

    @contextlib.contextmanager
    def dagster_run_mlflow(self, context: Any, kind: str) -> Iterator[MlFlow]:
        """This step inside the MLflow run its Dagster run shares: dagster-mlflow's ``MlFlow`` (every mlflow
        function, on that run) for the body, the step's outcome tagged ``mlops.step.<step>`` at the end.

        The run is left open for the other steps: MLflow can only leave a run by ending it, so it is "ended"
        as RUNNING; the ``mlflow_run_sensor`` ends it FINISHED, FAILED or KILLED when the Dagster run ends.
        Failing to tag the outcome or to leave (the server gone) is logged, never hides the step's own error."""
        run_id = self.shared_run_id(context.dagster_run, kind)
        step = str(context.node_handle)
        active = mlflow.active_run()
        if active is not None and active.info.run_id != run_id:
            raise RuntimeError(f"MLflow run {active.info.run_id} is active in this process: step {step} cannot "
                               f"log into the shared run {run_id} of its Dagster run")
        config = {"experiment_name": self.experiment, "mlflow_tracking_uri": self.tracking_uri,
                  "mlflow_run_id": run_id, "env_to_tag": self.env_to_tag, "extra_tags": None}

        def outcome(text: str) -> None:
            try:
                mlflow.set_tag(f"{c.STEP_TAG_PREFIX}{step}", text)
            except MlflowException as exc:
                context.log.warning(f"could not tag step {step} {text!r} on MLflow run {run_id}: {exc.message}")

        try:
            with warnings.catch_warnings():  # its beta notice tells an operator nothing: the pin and tests cover it
                warnings.simplefilter("ignore", BetaWarning)
                mlf = MlFlow(SharedRunContext(context.log, context.dagster_run, context.run_id, config))
            try:
                yield mlf
            except Exception as exc:
                outcome(f"failed: {type(exc).__name__}")
                raise
            outcome("succeeded")
        finally:
            self._leave(run_id, context.log)

    @staticmethod
    def _leave(run_id: str, log: Any) -> None:
        """Leave the shared run open (status RUNNING), so nothing stays active in this process."""
        still = mlflow.active_run()
        if still is None or still.info.run_id != run_id:
            return
        try:
            mlflow.end_run(status=RunStatus.to_string(RunStatus.RUNNING))  # MLflow pops it first, then writes
        except MlflowException as exc:
            log.warning(f"MLflow run {run_id} left without its RUNNING status written: {exc.message}")

    def open_shared_runs(self, limit: int = 500) -> list[OpenSharedRun]:
        """Shared runs still RUNNING in the platform's experiment (what the sensor may have to end); beyond
        ``limit``, the rest on the next call, once these are ended."""
        found = self.client().search_runs(
            [self.activate()], max_results=limit, run_view_type=ViewType.ACTIVE_ONLY,
            filter_string=f"attributes.status = 'RUNNING' and tags.{c.DAGSTER_MLFLOW_RUN_TAG} LIKE '%'")
        return [OpenSharedRun(r.info.run_id, r.data.tags[c.DAGSTER_MLFLOW_RUN_TAG]) for r in found]

    def end_finished_runs(self, instance: DagsterInstance) -> str:
        """End every shared run still RUNNING whose Dagster run has ended, as it ended; says what it ended and
        what it left open (runs going on, and runs ``instance`` does not know: another instance's, or deleted)."""
        ended, going, unknown = [], 0, []
        for run in self.open_shared_runs():
            dagster_run = instance.get_run_by_id(run.dagster_run_id)
            if dagster_run is None:
                unknown.append(run.mlflow_run_id)
                continue
            status = END_STATUS.get(dagster_run.status)
            if status is None:
                going += 1
                continue
            self.client().set_terminated(run.mlflow_run_id, status)
            ended.append(f"{run.mlflow_run_id} {status} (Dagster run {run.dagster_run_id} {dagster_run.status.value})")
        parts = [f"ended {len(ended)} MLflow run(s): {'; '.join(ended)}" if ended else "no shared MLflow run to end"]
        if going:
            parts.append(f"{going} still open while their Dagster runs go on")
        if unknown:
            parts.append(f"{len(unknown)} left open, their Dagster runs unknown to this instance: {', '.join(unknown)}")
        return "; ".join(parts)
