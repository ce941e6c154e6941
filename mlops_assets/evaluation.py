"""Evaluation stage: candidate and champion scored on the same holdout rows; a blocking quality gate."""

import base64
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from mlops_assets.core import evaluation as logic
from mlops_assets.core.contracts import CHAMPION, LINEAGE_GATE
from mlops_assets.core.features import xy
from mlops_assets.core.metrics import compute_metrics, metric_notes, per_class_metrics
from mlops_assets.core.model_files import ModelFormatError
from mlops_assets.core.plots import evaluation_plots
from mlops_assets.core.tables import markdown_table
from mlops_assets.records import CandidateRecord, EvaluationRecord
from mlops_assets.retries import retry_transient
from mlops_assets.training import fitted_in_process
from resources import Alerter, DataStore, MlflowTracking

SMOKE_ROWS = 50


class GateConfig(Config):
    """Absolute thresholds per metric, and the largest allowed drop of the primary metric vs the champion."""

    thresholds: dict[str, float] = {}  # empty: ROC AUC >= 0.70 (classification), R2 >= 0 (regression)
    max_regression: float = 0.01
    slice_columns: list[str] = []


GATE_CHECK = "quality_gate"


@asset(
    group_name="evaluation",
    io_manager_key="records",
    output_required=False,
    check_specs=[AssetCheckSpec(GATE_CHECK, asset="model_evaluation", blocking=True,
                                description="Blocks registration unless every threshold holds and the candidate "
                                            "does not regress against the champion on the same holdout rows.")],
    description="The candidate and the current champion scored on the same holdout rows (overall and per slice), "
                "with plots and the gate's verdict. The blocking `quality_gate` check stops registration of a "
                "model that misses a threshold or regresses against the champion. When nothing was trained "
                "(the champion already fits this data, config and code) nothing is evaluated and the gate says so.",
)
@retry_transient
def model_evaluation(context: AssetExecutionContext, config: GateConfig, store: DataStore,
                     tracking: MlflowTracking, alerts: Alerter, candidate_model: CandidateRecord,
                     ):
    if candidate_model.get("skipped"):
        yield _skipped_gate(candidate_model["skipped"])
        return
    spec = store.spec()
    holdout = store.holdout(candidate_model["dataset_id"])
    tracking.activate()
    handed_over = fitted_in_process(candidate_model["model_uri"])
    if handed_over:  # trained by this process moments ago: the same object that was logged, already scored
        candidate, cand_metrics = handed_over[0], dict(handed_over[1])
        context.log.debug(f"candidate {candidate_model['model_uri']} handed over in process, not reloaded")
    else:
        candidate = _load(tracking, alerts, candidate_model, "candidate", candidate_model["model_uri"])
        cand_metrics = compute_metrics(candidate, holdout, spec)

    champion_version = tracking.version_by_alias(CHAMPION)
    champ_metrics = None
    if champion_version is not None:
        champion = _load(tracking, alerts, candidate_model, f"champion v{champion_version.version}",
                         f"models:/{tracking.model_name}/{champion_version.version}")
        champ_metrics = compute_metrics(champion, holdout, spec)
    thresholds = dict(config.thresholds) or logic.DEFAULT_THRESHOLDS[spec.task]
    notes = metric_notes(cand_metrics, holdout, spec)
    verdict = logic.gate(cand_metrics, champ_metrics, task=spec.task, thresholds=thresholds,
                         max_regression=config.max_regression, notes=notes)
    per_class = per_class_metrics(candidate, holdout, spec)
    table = logic.comparison(cand_metrics, champ_metrics)
    slices = logic.slice_metrics(candidate, holdout, spec, list(config.slice_columns))

    plots = evaluation_plots(candidate, holdout, spec)
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in plots.items():
            Path(tmp, name).write_bytes(png)
        mlflow.MlflowClient(tracking.tracking_uri).log_artifacts(candidate_model["run_id"], tmp, "plots")
    client = tracking.client()
    for k, v in cand_metrics.items():
        client.log_metric(candidate_model["run_id"], f"eval_{k}", v)
    client.set_tag(candidate_model["run_id"], LINEAGE_GATE, "passed" if verdict.passed else "failed")

    x, _ = xy(holdout.head(SMOKE_ROWS), spec)
    record: EvaluationRecord = {
        **{k: candidate_model[k] for k in ("run_id", "model_uri", "dataset_id", "fingerprint")},
        "candidate_metrics": cand_metrics,
        "champion_version": champion_version.version if champion_version else None,
        "champion_metrics": champ_metrics,
        "gate": verdict.to_dict(),
        "smoke_predictions": [v.item() if hasattr(v, "item") else v for v in candidate.predict(x)],
    }
    verdict_text = "PASSED" if verdict.passed else "FAILED: " + "; ".join(verdict.reasons)
    context.log.info(f"quality gate {verdict_text}")
    if not verdict.passed:
        reasons = "; ".join(verdict.reasons)
        alerts.alert("gate_failed", f"candidate from run {candidate_model['run_id']} not registered: {reasons}",
                     severity="error", dataset=candidate_model["dataset_id"])
    images = "\n\n".join(f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
                         for name, png in plots.items() if name in ("confusion_matrix.png", "roc_curve.png",
                                                                    "residuals.png", "feature_importance.png"))
    yield Output(record, metadata={
        "gate": verdict_text,
        "champion_version": record["champion_version"] or "none (first model)",
        "comparison": MetadataValue.md(markdown_table(table)),
        "slices": MetadataValue.md(markdown_table(slices)) if not slices.empty else "no slice columns configured",
        **({"per_class": MetadataValue.md(markdown_table(per_class))} if not per_class.empty else {}),
        **({"metric_notes": MetadataValue.md("\n".join(f"- {n}" for n in notes.values()))} if notes else {}),
        "plots": MetadataValue.md(images),
        "mlflow_run": MetadataValue.url(tracking.run_url(candidate_model["experiment_id"], candidate_model["run_id"])),
    })
    yield _gate_result(record)


def _load(tracking: MlflowTracking, alerts: Alerter, candidate_model: CandidateRecord, role: str, uri: str) -> Any:
    """A model the gate scores, skops only; one the platform refuses to load (a pickle, trusted types beyond the
    allowlist) fails the gate loudly with the reason instead of being compared or unpickled."""
    try:
        return tracking.load_model(uri)
    except ModelFormatError as exc:
        reason = f"the {role} cannot be loaded: {exc}"
        alerts.alert("gate_failed", f"candidate from run {candidate_model['run_id']} not registered: {reason}",
                     severity="error", dataset=candidate_model["dataset_id"])
        raise Failure(description=f"quality gate not evaluated, nothing registered: {reason}") from exc


def _gate_result(evaluation: EvaluationRecord) -> AssetCheckResult:
    gate = evaluation["gate"]
    return AssetCheckResult(
        check_name=GATE_CHECK,
        passed=gate["passed"],
        severity=AssetCheckSeverity.ERROR,
        description=None if gate["passed"] else "Not registered: " + "; ".join(gate["reasons"]),
        metadata={"rules": MetadataValue.md(markdown_table(gate["rules"])),
                  "champion_version": evaluation["champion_version"] or "none"},
    )


def _skipped_gate(reason: str) -> AssetCheckResult:
    """Nothing new to judge: the gate passes nothing on (registration and deployment are skipped) and says why.
    It refused nothing either, so the result is not a failure."""
    return AssetCheckResult(check_name=GATE_CHECK, passed=True, description=f"Not evaluated: {reason}",
                            metadata={"skipped": reason})
