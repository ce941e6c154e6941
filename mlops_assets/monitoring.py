"""Monitoring stage: daily drift reports of served traffic against the champion's training data, and live
performance from delivered labels. Both are partitioned by day so history can be backfilled."""

import base64
from datetime import date
from typing import Any

from dagster import AssetExecutionContext, BackfillPolicy, Config, MetadataValue, Output, asset

from mlops_assets import tags
from mlops_assets.core.drift import DriftConfig, detect_drift
from mlops_assets.core.monitoring import decay_detected, join_feedback, live_metrics
from mlops_assets.core.plots import drift_overlays
from mlops_assets.core.tables import markdown_table
from mlops_assets.partitions import daily_partitions
from resources import CHAMPION, Alerter, DataStore, MlflowTracking, PredictionLog


class DriftReportConfig(Config):
    drift_share: float = 0.5  # share of drifted feature columns that makes the data set drifted
    min_samples: int = 100
    bh_correction: bool = False


class LivePerformanceConfig(Config):
    min_labeled_rows: int = 100
    tolerance: float = 0.02  # how far below the offline holdout metric live performance may fall
    confidence: float = 0.95


def _champion_context(tracking: MlflowTracking) -> tuple[str | None, str | None, dict[str, float]]:
    champion = tracking.version_by_alias(CHAMPION)
    if champion is None:
        return None, None, {}
    offline = {k.removeprefix("metric."): float(v) for k, v in champion.tags.items() if k.startswith("metric.")}
    return champion.version, champion.tags.get(tags.LINEAGE_DATASET), offline


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
    reference = store.load_features(dataset_id, "train")
    present = [c for c in spec.feature_names if c in current.columns]
    report = detect_drift(reference[spec.feature_names], current[present] if present else current.iloc[:, 0:0],
                          columns=spec.feature_kinds,
                          config=DriftConfig(drift_share=config.drift_share, min_samples=config.min_samples,
                                             bh_correction=config.bh_correction))
    record.update(status=report.status, share_drifted=report.share_drifted, drifted_columns=report.drifted_columns,
                  dataset_drift=report.dataset_drift, report=report.to_dict())
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
    }
    if png:
        encoded = base64.b64encode(png).decode()
        metadata["distributions"] = MetadataValue.md(f"![drift](data:image/png;base64,{encoded})")
    return record, metadata


def _per_partition(context: AssetExecutionContext, compute) -> Output:
    """One day per run from sensors and the UI; a whole range in one run for CLI backfills
    (``--partition-range`` needs a single-run backfill policy): then the value maps day -> record."""
    keys = context.partition_keys
    results = {key: compute(date.fromisoformat(key)) for key in keys}
    if len(keys) == 1:
        record, metadata = results[keys[0]]
        return Output(record, metadata=metadata)
    record, metadata = results[keys[-1]]
    return Output({k: r for k, (r, _) in results.items()}, metadata={**metadata, "days": len(keys)})


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="monitoring",
    io_manager_key="records",
    description="That day's served inputs (the prediction log) against the serving champion's training "
                "features: a per-column drift test (KS / Wasserstein / chi-square / Jensen-Shannon, "
                "Evidently-compatible defaults) and a dataset verdict from the share of drifted columns.",
)
def drift_report(context: AssetExecutionContext, config: DriftReportConfig, store: DataStore,
                 tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter) -> Output:
    return _per_partition(context, lambda day: _drift_for_day(day, config, store, tracking, prediction_log, alerts))


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
              **live.to_dict()}
    return record, {
        "metric": live.metric, "value": live.value, "ci_low": live.ci_low, "ci_high": live.ci_high,
        "labeled_rows": live.labeled_rows, "offline_baseline": baseline, "decayed": decayed,
        "champion_version": version or "none",
    }


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="monitoring",
    io_manager_key="records",
    description="That day's predictions joined with the labels delivered for them (POST /feedback): accuracy "
                "or RMSE with a confidence interval, compared with the champion's offline holdout metric.",
)
def live_performance(context: AssetExecutionContext, config: LivePerformanceConfig, store: DataStore,
                     tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter) -> Output:
    return _per_partition(context, lambda day: _live_for_day(day, config, store, tracking, prediction_log, alerts))
