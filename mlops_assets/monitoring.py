"""Monitoring stage: daily drift reports of served traffic against the champion's training data, and live
performance from delivered labels. Both are partitioned by event day (the data's own timestamp, so a replay of
many days lands in the right days) and judge each day twice: on its own rows and on the rolling chunk ending
with it (``core.windows``). A range of days runs as one run, for CLI backfills (``mlops monitor run``).

Every step of one monitoring run logs into one MLflow run of its own (``MlflowTracking.dagster_run_mlflow``, kind
``monitoring``, tagged with the Dagster run and the model version watched): the day's figures as metrics, its
record as JSON, the drift plot. The champion's training run stays the model's lineage and gets none of it."""

import base64
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION, MONITORED_VERSION_TAG, RunKind
from mlops_assets.core.drift import DriftConfig, detect_drift
from mlops_assets.core.event_time import EventLog
from mlops_assets.core.model_files import ModelFormatError
from mlops_assets.core.monitoring import LiveMetrics, decay_detected, join_feedback, live_metrics
from mlops_assets.core.plots import drift_overlays
from mlops_assets.core.realized import IntervalRule, label_coverage, realized_metrics
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import markdown_table
from mlops_assets.core.windows import ChunkRule, chunk_event_days, describe_chunk, join_by_serving_day, take_chunk
from mlops_assets.partitions import daily_partitions
from mlops_assets.retries import retry_transient
from resources import Alerter, DataStore, MlflowTracking, PredictionLog

REFERENCE_PREDICTIONS = 5000  # training rows the champion re-predicts as the reference output distribution

# One day's result: its record (the asset's value), its Dagster metadata, and the drift plot (PNG) when there is one.
DayResult = tuple[dict[str, Any], dict[str, Any], bytes | None]


# Both monitoring assets: one partition per day, and a whole range in one run for CLI backfills.
DAILY_MONITORING: dict[str, Any] = {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run(),
                                    "group_name": "monitoring", "io_manager_key": "records"}


# Each monitoring asset's description, and its one asset check with the check's description.
DESCRIPTIONS: dict[str, tuple[str, str, str]] = {
    "drift_report": (
        "The inputs logged for that event day (and for the rolling chunk ending with it) against the serving "
        "champion's training features: a per-column drift test (KS / Wasserstein / chi-square / Jensen-Shannon, "
        "Evidently-compatible defaults) and a dataset verdict from the share of drifted columns.",
        "no_dataset_drift",
        "Warns when the share of drifted feature columns reaches the threshold in the day or in the chunk ending "
        "with it"),
    "live_performance": (
        "The predictions of that event day (and of the rolling chunk ending with it) joined with the labels "
        "delivered for them: accuracy, macro F1, ROC AUC, log loss and calibration (or RMSE and MAE) with intervals "
        "and label coverage, judged against the champion's offline holdout metric.",
        "no_performance_decay",
        "Fails when the whole confidence interval of live performance, in the day or in the chunk ending with it, "
        "is worse than the offline holdout metric by more than the tolerance"),
}


def _daily_asset(name: str) -> dict[str, Any]:
    """A monitoring asset's definition: daily partitions, its description and its one asset check."""
    description, check, check_description = DESCRIPTIONS[name]
    return {**DAILY_MONITORING, "description": description,
            "check_specs": [AssetCheckSpec(check, asset=name, description=check_description)]}


class WindowConfig(Config):
    chunk_rows: int = 5000  # each day's chunk: the last N rows by event time, reaching back over quiet days
    chunk_days: int = 0  # or, when > 0: every row of this many event days ending with the day
    max_lookback_days: int = 90  # a chunk never reaches back further (a short chunk says so)

    def rule(self) -> ChunkRule:
        return ChunkRule(self.chunk_rows, self.chunk_days, self.max_lookback_days)


class Windows:
    """One run's view of the prediction log by event day: the index is brought up to date once, parsed serving
    days and their labels are kept for the run's other days (a 300-day backfill reads each serving day once)."""

    def __init__(self, store: DataStore, prediction_log: PredictionLog) -> None:
        self.spec = store.spec()
        self.prediction_log = prediction_log
        self.events = EventLog(prediction_log.root, self.spec.timestamp_column)
        self._feedback: dict[date, pd.DataFrame] = {}

    def of(self, day: date, rule: ChunkRule) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """The day's own rows, the chunk ending with it, and where the chunk starts and ends."""
        rows = self.events.rows(chunk_event_days(day, self.events.rows_per_event_day(), rule))
        chunk = take_chunk(rows, rule)
        return rows[rows["event_day"] == day.isoformat()], chunk, describe_chunk(day, chunk, rule)

    def labelled(self, rows: pd.DataFrame) -> pd.DataFrame:
        return join_by_serving_day(rows, self._feedback_for, join_feedback)

    def _feedback_for(self, served: date) -> pd.DataFrame:
        if served not in self._feedback:
            self._feedback[served] = self.prediction_log.feedback_for(served)
        return self._feedback[served]


class DriftReportConfig(WindowConfig):
    drift_share: float = 0.5  # share of drifted feature columns that makes the data set drifted
    min_samples: int = 100
    bh_correction: bool = False
    # Training rows the day is compared with at most (a row-id hash sample, like training's): drift tests gain
    # nothing from more, and memory stays bounded whatever the data set's size. 0: every training row.
    reference_rows: int = 1_000_000


class LivePerformanceConfig(WindowConfig):
    min_labeled_rows: int = 100
    tolerance: float = 0.02  # how far below the offline holdout metric live performance may fall
    confidence: float = 0.95
    bootstrap_resamples: int = 200  # for the metrics without an exact interval (F1, ROC AUC, log loss, ECE, MAE)
    bootstrap_seed: int = 0  # fixed: the same rows always give the same interval


def _champion_context(tracking: MlflowTracking) -> tuple[str | None, str | None, dict[str, float]]:
    champion = tracking.version_by_alias(CHAMPION)
    if champion is None:
        return None, None, {}
    return champion.version, champion.tags.get(contracts.LINEAGE_DATASET), champion.offline_metrics()


def _drift_of(reference: pd.DataFrame, rows: pd.DataFrame, spec: DatasetSpec, config: DriftConfig):
    present = [c for c in spec.feature_names if c in rows.columns]
    return detect_drift(reference[spec.feature_names], rows[present] if present else rows.iloc[:, 0:0],
                        columns=spec.feature_kinds, config=config)


def _drift_for_day(day: date, windows: Windows, config: DriftReportConfig, store: DataStore,
                   tracking: MlflowTracking, alerts: Alerter) -> DayResult:
    spec = windows.spec
    version, dataset_id, _ = _champion_context(tracking)
    current, chunk, chunk_info = windows.of(day, config.rule())
    record: dict[str, Any] = {"day": day.isoformat(), "champion_version": version, "reference_dataset": dataset_id,
                              "current_rows": len(current)}
    if version is None or dataset_id is None:
        record.update(status="insufficient_data", detail="no champion serving yet", drifted_columns=[],
                      share_drifted=0.0, dataset_drift=False, drift=False)
        return record, {"status": "insufficient_data", "detail": record["detail"], "dataset_drift": False}, None
    reference, _ = store.sample_features(dataset_id, "train", config.reference_rows)
    drift_config = DriftConfig(drift_share=config.drift_share, min_samples=config.min_samples,
                               bh_correction=config.bh_correction)
    report = _drift_of(reference, current, spec, drift_config)
    whole_day = len(chunk) == len(current) and chunk_info["first_day"] in (None, day.isoformat())
    chunk_report = report if whole_day else _drift_of(reference, chunk, spec, drift_config)
    verdict = report.dataset_drift or chunk_report.dataset_drift
    record.update(status=report.status, share_drifted=report.share_drifted, drifted_columns=report.drifted_columns,
                  dataset_drift=report.dataset_drift, drift=verdict, report=report.to_dict(),
                  chunk={**chunk_info, "status": chunk_report.status, "dataset_drift": chunk_report.dataset_drift,
                         "share_drifted": chunk_report.share_drifted, "drifted_columns": chunk_report.drifted_columns,
                         "report": chunk_report.to_dict()})
    outputs = _output_drift(spec, reference, current, drift_config, tracking, version, windows)
    record.update(outputs)
    if verdict:
        where = report if report.dataset_drift else chunk_report
        alerts.alert("drift", f"{day}: {len(where.drifted_columns)} of {len(where.columns)} columns drifted in the "
                              f"{'day' if report.dataset_drift else 'chunk ending with it'} against champion "
                              f"v{version}'s training data", drifted=where.drifted_columns)
    worst = sorted((c for c in report.columns if c.statistic is not None and c.drifted),
                   key=lambda c: -(c.psi or 0.0))[:4]
    png = drift_overlays(reference, current, [c.column for c in worst], spec.feature_kinds) if worst else None
    metadata: dict[str, Any] = {
        "status": report.status, "dataset_drift": verdict, "day_drift": report.dataset_drift,
        "chunk_drift": chunk_report.dataset_drift, "chunk_rows": len(chunk),
        "share_drifted": round(report.share_drifted, 4), "champion_version": version,
        "reference_dataset": dataset_id, "current_rows": len(current),
        "columns": MetadataValue.md(markdown_table(report.to_frame())),
        "prediction_drift": outputs["prediction_drift"]["status"],
        "target_drift": outputs["target_drift"]["status"],
    }
    if png:
        encoded = base64.b64encode(png).decode()
        metadata["distributions"] = MetadataValue.md(f"![drift](data:image/png;base64,{encoded})")
    return record, metadata, png


def _output_drift(spec: DatasetSpec, reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                  tracking: MlflowTracking, version: str, windows: Windows) -> dict[str, Any]:
    """Prediction drift (served outputs vs the champion's outputs on its training rows) and target drift
    (labels delivered for the day vs the training labels), each as a one-column drift test."""
    kind = "categorical" if spec.task == "classification" else "numeric"
    sample = reference.sample(min(len(reference), REFERENCE_PREDICTIONS), random_state=0)
    model = tracking.load_version(version)
    served = current["prediction"] if "prediction" in current else pd.Series(dtype=object)
    pred = detect_drift(pd.DataFrame({"prediction": model.predict(sample[spec.feature_names])}),
                        pd.DataFrame({"prediction": served.to_numpy()}), columns={"prediction": kind}, config=config)
    labels = windows.labelled(current)["label"] if not current.empty else pd.Series(dtype=object)
    target = detect_drift(pd.DataFrame({"label": reference[spec.target].to_numpy()}),
                          pd.DataFrame({"label": labels.to_numpy()}), columns={"label": kind}, config=config)
    return {"prediction_drift": pred.to_dict()["columns"][0], "target_drift": target.to_dict()["columns"][0]}


def _mlflow_metrics(name: str, metadata: dict[str, Any]) -> dict[str, float]:
    """The day's figures for MLflow: the numeric metadata (verdicts as 0/1), named ``<asset>.<key>``; undefined
    ones (NaN: no labels yet) are left out of the charts, the day's JSON record still has them."""
    return {f"{name}.{k}": float(v) for k, v in metadata.items()
            if isinstance(v, bool | int | float) and v == v}


def _log_day(run: Any, name: str, key: str, step: int, day: DayResult) -> None:
    record, metadata, png = day
    run.log_metrics(_mlflow_metrics(name, metadata), step=step)
    run.log_dict(record, f"{name}/{key}.json")
    if png:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, f"{key}.png")
            path.write_bytes(png)
            run.log_artifact(str(path), name)


def monitor_days(context: AssetExecutionContext, store: DataStore, tracking: MlflowTracking,
                 prediction_log: PredictionLog, compute: Callable[[date, Windows], DayResult],
                 judge: Callable[[dict[str, Any]], AssetCheckResult]) -> Iterator[Output | AssetCheckResult]:
    """One day per run from sensors and the UI; a whole range in one run for CLI backfills (single-run
    backfill policy): then the value maps day -> record. A champion refused by the loader fails the step
    with the reason. The asset check judges the newest day's record. Each
    day is logged into the monitoring run's MLflow run (step = the day's place in the range), linked here."""
    windows = Windows(store, prediction_log)
    name = context.asset_key.to_user_string()
    keys = context.partition_keys
    results: dict[str, DayResult] = {}
    with tracking.dagster_run_mlflow(context, RunKind.MONITORING) as run:
        for step, key in enumerate(keys):
            try:
                results[key] = compute(date.fromisoformat(key), windows)
            except ModelFormatError as exc:  # a champion the platform refuses to load: say why, no trace
                raise Failure(description=f"{name} for {key} not computed: the champion cannot be loaded: "
                                          f"{exc}") from exc
            _log_day(run, name, key, step, results[key])
        record, metadata, _ = results[keys[-1]]
        version = record.get("champion_version")
        links: dict[str, Any] = {"mlflow_run_id": run.mlflow_run_id, "mlflow_run": MetadataValue.url(
            tracking.run_url(run.experiment.experiment_id, run.mlflow_run_id))}
        if version is not None:
            run.set_tag(MONITORED_VERSION_TAG, str(version))
            links["monitored_model_version"] = MetadataValue.url(tracking.model_version_url(version))
    index = windows.events.index()
    metadata = {**metadata, **links, "serving_days_indexed": len(index),
                "rows_without_event_time": sum(e.fallback_rows for e in index.values())}
    if len(keys) == 1:
        yield Output(record, metadata=metadata)
    else:
        yield Output({k: r for k, (r, _, _) in results.items()}, metadata={**metadata, "days": len(keys)})
    yield judge(record)


def _drift_check(record: dict[str, Any]) -> AssetCheckResult:
    chunk = record.get("chunk") or {}
    drifted = record.get("drift", record.get("dataset_drift", False))
    where = "day" if record.get("dataset_drift") else "chunk ending with the day"
    columns = record.get("drifted_columns") if record.get("dataset_drift") else chunk.get("drifted_columns")
    return AssetCheckResult(
        check_name="no_dataset_drift", passed=not drifted, severity=AssetCheckSeverity.WARN,
        description=f"drifted columns in the {where}: {columns}" if drifted else None,
        metadata={"day": record["day"], "share_drifted": record.get("share_drifted", 0.0),
                  "chunk_share_drifted": chunk.get("share_drifted", 0.0),
                  "status": record.get("status", "insufficient_data")})


def _decay_check(record: dict[str, Any]) -> AssetCheckResult:
    decayed = [w for w in (record, record.get("chunk") or {}) if w.get("window_decayed")]
    return AssetCheckResult(
        check_name="no_performance_decay", passed=not record["decayed"], severity=AssetCheckSeverity.ERROR,
        description="; ".join(f"{w['window']}: live {w['metric']} {w['value']:.3f} (CI {w['ci_low']:.3f}-"
                              f"{w['ci_high']:.3f}) is below the offline {record['baseline']:.3f}" for w in decayed)
        or None,
        metadata={"day": record["day"], "labeled_rows": record["labeled_rows"],
                  "chunk_labeled_rows": (record.get("chunk") or {}).get("labeled_rows", 0)})


@asset(**_daily_asset("drift_report"))
@retry_transient
def drift_report(context: AssetExecutionContext, config: DriftReportConfig, store: DataStore,
                 tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter):
    yield from monitor_days(context, store, tracking, prediction_log,
                        lambda day, windows: _drift_for_day(day, windows, config, store, tracking, alerts),
                        _drift_check)


def _judge_window(name: str, rows: pd.DataFrame, windows: Windows, config: LivePerformanceConfig,
                  baseline: float) -> tuple[LiveMetrics, dict[str, Any]]:
    """One window's realized metrics, label coverage and decay verdict (the primary metric's interval against
    the offline baseline); ``estimated`` stays None until performance estimation fills it."""
    spec = windows.spec
    joined = windows.labelled(rows)
    live = live_metrics(joined, spec.task, config.confidence)
    decayed = decay_detected(live, baseline, tolerance=config.tolerance, min_rows=config.min_labeled_rows)
    rule = IntervalRule(config.confidence, config.bootstrap_resamples, config.bootstrap_seed)
    return live, {
        **live.to_dict(), "window": name, "window_decayed": decayed, "baseline": baseline,
        "realized": realized_metrics(joined, spec.task, spec.classes, rule),
        "label_coverage": label_coverage(len(rows), len(joined), name),
        "estimated": None, "estimated_decay": None,
    }


def _live_for_day(day: date, windows: Windows, config: LivePerformanceConfig,
                  tracking: MlflowTracking, alerts: Alerter) -> DayResult:
    version, _, offline = _champion_context(tracking)
    metric = "accuracy" if windows.spec.task == "classification" else "rmse"
    baseline = offline.get(metric, float("nan"))
    current, chunk, chunk_info = windows.of(day, config.rule())
    if version is not None:
        current, chunk = (w[w["model_version"] == str(version)] for w in (current, chunk))
    live, own = _judge_window("day", current, windows, config, baseline)
    chunk_live, chunk_record = _judge_window("chunk", chunk, windows, config, baseline)
    decayed = own["window_decayed"] or chunk_record["window_decayed"]
    for w in (own, chunk_record):
        if w["window_decayed"] and (w is own or not own["window_decayed"]):  # one alert per day
            alerts.alert("performance_decay", f"{day} ({w['window']}): live {w['metric']} {w['value']:.3f} "
                         f"[{w['ci_low']:.3f}, {w['ci_high']:.3f}] vs offline {baseline:.3f} for v{version}",
                         severity="error")
    fallback = int(current["event_time_fallback"].sum()) if len(current) else 0
    record = {"day": day.isoformat(), "champion_version": version, "decayed": decayed,
              "tolerance": config.tolerance, "min_labeled_rows": config.min_labeled_rows, **own,
              "event_time": {"timestamp_column": windows.spec.timestamp_column, "rows_at_serving_time": fallback},
              "chunk": {**chunk_info, **chunk_record}}
    return record, {
        "metric": live.metric, "value": live.value, "ci_low": live.ci_low, "ci_high": live.ci_high,
        "labeled_rows": live.labeled_rows, "offline_baseline": baseline, "decayed": decayed,
        "day_decayed": own["window_decayed"], "chunk_decayed": chunk_record["window_decayed"],
        "chunk_value": chunk_live.value, "chunk_ci_low": chunk_live.ci_low, "chunk_ci_high": chunk_live.ci_high,
        "chunk_rows": len(chunk), "label_coverage": own["label_coverage"]["text"],
        "champion_version": version or "none",
    }, None


@asset(**_daily_asset("live_performance"))
@retry_transient
def live_performance(context: AssetExecutionContext, config: LivePerformanceConfig, store: DataStore,
                     tracking: MlflowTracking, prediction_log: PredictionLog, alerts: Alerter):
    yield from monitor_days(context, store, tracking, prediction_log,
                        lambda day, windows: _live_for_day(day, windows, config, tracking, alerts), _decay_check)
