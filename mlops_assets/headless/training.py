"""One training run in this process, on the platform's Dagster instance, and what it decided: what
``mlops train`` reports. The run is an ordinary ``training_job`` run, so it shows in the Dagster UI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import DagsterInstance, Definitions

from mlops_assets.core.contracts import RUN_KIND, TRIGGER, RunKind, Trigger

GATE_CHECK = "quality_gate"


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    success: bool
    metadata: dict[str, dict[str, Any]]  # asset -> metadata of its materialization in this run
    gate_passed: bool | None  # None: the gate did not judge (nothing new was trained, or the run failed first)
    gate_detail: str | None
    errors: list[str]

    @property
    def trained(self) -> bool:
        """False when the champion already fit this data, config and code (the candidate is marked skipped)."""
        return "candidate_model" in self.metadata and "skipped" not in self.metadata["candidate_model"]

    @property
    def dataset_id(self) -> str | None:
        return self.metadata.get("dataset", {}).get("dataset_version")


def run_training(defs: Definitions, instance: DagsterInstance, *, log_level: str = "CRITICAL") -> TrainingOutcome:
    """Execute ``training_job`` (dataset -> features -> train -> gate -> register -> deploy) and collect the
    verdicts from its events; Dagster's own log lines stay in the instance at ``log_level`` and below."""
    result = defs.resolve_job_def("training_job").execute_in_process(
        instance=instance, tags={TRIGGER: Trigger.MANUAL, RUN_KIND: RunKind.TRAINING}, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    metadata = {event.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in
                                                  event.materialization.metadata.items()}
                for event in result.get_asset_materialization_events()}
    gate = next((e for e in result.get_asset_check_evaluations() if e.check_name == GATE_CHECK), None)
    errors = [_first_line(event.step_failure_data.error)
              for event in result.all_events if event.is_step_failure and event.step_failure_data.error]
    judged = gate is not None and "skipped" not in gate.metadata  # a skipped gate judged nothing
    return TrainingOutcome(result.run_id, result.success, metadata, gate.passed if judged else None,
                           gate.description if judged else None, errors)


def _first_line(error: Any) -> str:
    """A step error's first line; after exhausted retries ("Exceeded max_retries of N") also the fault's own."""
    line = error.message.strip().splitlines()[0]
    if error.cause is not None and line.startswith("Exceeded max_retries"):
        return f"{line}: {_first_line(error.cause)}"
    return line
