"""Monitoring stage: daily drift reports of served traffic against the champion's training data, and live
performance from delivered labels. Both are partitioned by day so history can be backfilled."""

import base64
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import mlflow
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    MetadataValue,
    Output,
    asset,
)

from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.drift import DriftConfig, detect_drift
from mlops_assets.core.monitoring import decay_detected, join_feedback, live_metrics
from mlops_assets.core.plots import drift_overlays
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import markdown_table
from mlops_assets.partitions import daily_partitions
from resources import Alerter, DataStore, MlflowTracking, PredictionLog

REFERENCE_PREDICTIONS = 5000  # training rows the champion re-predicts as the reference output distribution


# Both monitoring assets: one partition per day, and a whole range in one run for CLI backfills.
DAILY_MONITORING: dict[str, Any] = {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run(),
                                    "group_name": "monitoring", "io_manager_key": "records"}


class DriftReportConfig(Config):
    drift_share: float = 0.5  # share of drifted feature columns that makes the data set drifted
    min_samples: int = 100
    bh_correction: bool = False
    # Training rows the day is compared with at most (a row-id hash sample, like training's): drift tests gain
    # nothing from more, and memory stays bounded whatever the data set's size. 0: every training row.
    reference_rows: int = 1_000_000


class LivePerformanceConfig(Config):
    min_labeled_rows: int = 100
    tolerance: float = 0.02  # how far below the offline holdout metric live performance may fall
    confidence: float = 0.95


def _champion_context(tracking: MlflowTracking) -> tuple[str | None, str | None, dict[str, float]]:
    champion = tracking.version_by_alias(CHAMPION)
    if champion is None:
        return None, None, {}
    return champion.version, champion.tags.get(contracts.LINEAGE_DATASET), champion.offline_metrics()


def _drift_for_day(day: date, config: DriftReportConfig, store: DataStore, tracking: MlflowTracking,
                   prediction_log: PredictionLog, alerts: Alerter) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = store.spec()
    version, dataset_id, _ = _champion_context(tracking)
    current = prediction_log.predictions(day)
    record: dict[str, Any] = {"day": day.isoformat(), "champion_version": version, "reference_dataset": dataset_id,
                              "current_rows": len(current)}
    if version is None or dataset_id is None:
        record.update(status="insufficient_data", detail="no champion serving yet", drifted_columns=[],
                      share_drifted=0.0, dataset_drift=False)
        return record, {"status": "insufficient_data", "detail": record["detail"], "dataset_drift": False}
    reference, _ = store.sample_features(dataset_id, "train", config.reference_rows)
    present = [c for c in spec.feature_names if c in current.columns]
    drift_config = DriftConfig(drift_share=config.drift_share, min_samples=config.min_samples,
                               bh_correction=config.bh_correction)
    report = detect_drift(reference[spec.feature_names], current[present] if present else current.iloc[:, 0:0],
                          columns=spec.feature_kinds, config=drift_config)
    record.update(status=report.status, share_drifted=report.share_drifted, drifted_columns=report.drifted_columns,
                  dataset_drift=report.dataset_drift, report=report.to_dict())
    outputs = _output_drift(day, spec, reference, current, drift_config, tracking, version, prediction_log)
    record.update(outputs)
    if report.dataset_drift:
        alerts.alert("drift", f"{day}: {len(report.drifted_columns)} of {len(report.columns)} columns drifted "
                              f"against champion v{version}'s training data", drifted=report.drifted_columns)
    worst = sorted((c for c in report.columns if c.statistic is not None and c.drifted),
                   key=lambda c: -(c.psi or 0.0))[:4]
    png = drift_overlays(reference, current, [c.column for c in worst], spec.feature_kinds) if worst else None
    metadata: dict[str, Any] = {
        "status": report.status, "dataset_drift": report.dataset_drift,
        "share_drifted": round(report.share_drifted, 4), "champion_version": version,
        "reference_dataset": dataset_id, "current_rows": len(current),
        "columns": MetadataValue.md(markdown_table(report.to_frame())),
        "prediction_drift": outputs["prediction_drift"]["status"],
        "target_drift": outputs["target_drift"]["status"],
    }
    if png:
        encoded = base64.b64encode(png).decode()
        metadata["distributions"] = MetadataValue.md(f"![drift](data:image/png;base64,{encoded})")
    return record, metadata


def _output_drift(day: date, spec: DatasetSpec, reference: pd.DataFrame, current: pd.DataFrame,
                  config: DriftConfig, tracking: MlflowTracking, version: str, prediction_log: PredictionLog,
                  ) -> dict[str, Any]:
    """Prediction drift (served outputs vs the champion's outputs on its training rows) and target drift
    (labels delivered for the day vs the training labels), each as a one-column drift test."""
    kind = "categorical" if spec.task == "classification" else "numeric"
    sample = reference.sample(min(len(reference), REFERENCE_PREDICTIONS), random_state=0)
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{version}")
    served = current["prediction"] if "prediction" in current else pd.Series(dtype=object)
    pred = detect_drift(pd.DataFrame({"prediction": model.predict(sample[spec.feature_names])}),
                        pd.DataFrame({"prediction": served.to_numpy()}), columns={"prediction": kind}, config=config)
    labels = join_feedback(current, prediction_log.feedback_for(day))["label"] if not current.empty \
        else pd.Series(dtype=object)
    target = detect_drift(pd.DataFrame({"label": reference[spec.target].to_numpy()}),
                          pd.DataFrame({"label": labels.to_numpy()}), columns={"label": kind}, config=config)
    return {"prediction_drift": pred.to_dict()["columns"][0], "target_drift": target.to_dict()["columns"][0]}


def _per_partition(context: AssetExecutionContext, compute: Callable[[date], tuple[dict[str, Any], dict[str, Any]]],
                   judge: Callable[[dict[str, Any]], AssetCheckResult]) -> Iterator[Output | AssetCheckResult]:
    """One day per run from sensors and the UI; a whole range in one run for CLI backfills
    (``--partition-range`` needs a single-run backfill policy): then the value maps day -> record.
    The asset check judges the newest day's record."""
    keys = context.partition_keys
    results = {key: compute(date.fromisoformat(key)) for key in keys}
    record, metadata = results[keys[-1]]
    if len(keys) == 1:
        yield Output(record, metadata=metadata)
    else:
        yield Output({k: r for k, (r, _) in results.items()}, metadata={**metadata, "days": len(keys)})
    yield judge(record)


def _drift_check(record: dict[str, Any]) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="no_dataset_drift", passed=not record.get("dataset_drift", False),
        severity=AssetCheckSeverity.WARN,
        description=f"drifted columns: {record.get('drifted_columns')}" if record.get("dataset_drift") else None,
        metadata={"day": record["day"], "share_drifted": record.get("share_drifted", 0.0),
                  "status": record.get("status", "insufficient_data")})


def _decay_check(record: dict[str, Any]) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="no_performance_decay", passed=not record["decayed"], severity=AssetCheckSeverity.ERROR,
        description=(f"live {record['metric']} {record['value']:.3f} (CI {record['ci_low']:.3f}-"
                     f"{record['ci_high']:.3f}) is below the offline {record['baseline']:.3f}")
        if record["decayed"] else None,
        metadata={"day": record["day"], "labeled_rows": record["labeled_rows"]})


@asset(
    **DAILY_MONITORING,
    check_specs=[AssetCheckSpec("no_dataset_drift", asset="drift_report",
                                description="Warns when the share of drifted feature columns reaches the threshold")],
    description="That day's served inputs (the prediction log) against the serving champion's training "
                "features: a per-column drift test (KS / Wasserstein / chi-square / Jensen-Shannon, "
                "Evidently-compatible defaults) and a dataset verdict from the share of drifted columns.",
)
def drift_report(context: AssetExecutionContext, config: DriftReportConfig, store: DataStore,
                 tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter):
    yield from _per_partition(
        context, lambda day: _drift_for_day(day, config, store, tracking, prediction_log, alerts), _drift_check)


def _live_for_day(day: date, config: LivePerformanceConfig, store: DataStore, tracking: MlflowTracking,
                  prediction_log: PredictionLog, alerts: Alerter) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = store.spec()
    version, _, offline = _champion_context(tracking)
    predictions = prediction_log.predictions(day)
    if version is not None and not predictions.empty:
        predictions = predictions[predictions["model_version"] == str(version)]
    joined = join_feedback(predictions, prediction_log.feedback_for(day))
    live = live_metrics(joined, spec.task, config.confidence)
    baseline = offline.get(live.metric, float("nan"))
    decayed = decay_detected(live, baseline, tolerance=config.tolerance, min_rows=config.min_labeled_rows)
    if decayed:
        alerts.alert("performance_decay", f"{day}: live {live.metric} {live.value:.3f} "
                     f"[{live.ci_low:.3f}, {live.ci_high:.3f}] vs offline {baseline:.3f} for v{version}",
                     severity="error")
    record = {"day": day.isoformat(), "champion_version": version, "baseline": baseline, "decayed": decayed,
              "tolerance": config.tolerance, "min_labeled_rows": config.min_labeled_rows, **live.to_dict()}
    return record, {
        "metric": live.metric, "value": live.value, "ci_low": live.ci_low, "ci_high": live.ci_high,
        "labeled_rows": live.labeled_rows, "offline_baseline": baseline, "decayed": decayed,
        "champion_version": version or "none",
    }


@asset(
    **DAILY_MONITORING,
    check_specs=[AssetCheckSpec("no_performance_decay", asset="live_performance",
                                description="Fails when the whole confidence interval of live performance is "
                                            "worse than the offline holdout metric by more than the tolerance")],
    description="That day's predictions joined with the labels delivered for them (POST /feedback): accuracy "
                "or RMSE with a confidence interval, compared with the champion's offline holdout metric.",
)
def live_performance(context: AssetExecutionContext, config: LivePerformanceConfig, store: DataStore,
                     tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter):
    yield from _per_partition(
        context, lambda day: _live_for_day(day, config, store, tracking, prediction_log, alerts), _decay_check)
