"""Estimated performance: each day's served traffic judged before any label arrives (CBPE for classifiers, DLE
for regressors; ``core.estimation``), on the day's own rows and on a rolling chunk of the last N rows ending
with the day, each with its band and the ``estimated_decay`` verdict. The realized metric, once labels land,
confirms or clears it (``live_performance``; the performance sensor reads both)."""

import base64
import math
from datetime import date
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    asset,
)
from mlflow.exceptions import MlflowException

from mlops_assets.core import contracts
from mlops_assets.core.cbpe import CBPE
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.dle import DLE
from mlops_assets.core.estimation import Estimate, chunk_bounds, estimated_decay, explain_estimate, with_bands
from mlops_assets.core.metrics import aligned_proba, class_list
from mlops_assets.core.plots import estimated_vs_realized
from mlops_assets.core.probabilities import proba_column
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.windows import ChunkRule
from mlops_assets.monitoring import DAILY_MONITORING, DayResult, WindowConfig, Windows, monitor_days
from mlops_assets.retries import retry_transient
from resources import Alerter, DataStore, MlflowTracking, PredictionLog

PRIMARY = {"classification": "accuracy", "regression": "rmse"}  # the metric judged, as live_performance does


class EstimatedPerformanceConfig(WindowConfig):
    """The chunk rule (``chunk_rows`` / ``chunk_days`` / ``max_lookback_days``) is live_performance's own."""

    plot_chunks: int = 10  # the rolling chunk is cut into this many for the estimated-vs-realized plot
    min_rows: int = 100  # fewer rows are not judged
    tolerance: float = 0.02  # how far below the offline holdout metric the estimate may fall
    confidence: float = 0.95


def _reference(
    spec: DatasetSpec, store: DataStore, tracking: MlflowTracking, version: str, dataset_id: str, model: Any
) -> CBPE | DLE:
    """The champion's estimator, fitted on the holdout it was evaluated on. CBPE is plain JSON, cached as an
    artifact of the version's run (``estimation/v<N>/cbpe.json``) and fitted once per version; DLE's loss models
    are refitted from the bounded holdout each run rather than unpickled."""
    holdout = store.holdout(dataset_id)
    x, y = holdout[spec.feature_names], holdout[spec.target]
    if spec.task == "regression":
        return DLE.fit(x, model.predict(x), y)
    run_id = tracking.version_by_alias(CHAMPION).run_id
    path = f"estimation/v{version}/cbpe.json"
    try:
        return CBPE.from_dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}"))
    except (MlflowException, OSError):
        pass  # not fitted for this version yet
    labels = class_list(spec, model)
    cbpe = CBPE.fit(aligned_proba(model, x, labels), y, labels, model.predict(x))
    tracking.client().log_dict(run_id, cbpe.to_dict(), path)
    return cbpe


def _proba(frame: pd.DataFrame, classes: list[Any], model: Any, spec: DatasetSpec) -> np.ndarray:
    """The logged class probabilities when every row carries them, else the champion's on the logged inputs."""
    columns = [proba_column(c) for c in classes]
    if all(c in frame.columns for c in columns) and not frame[columns].isna().to_numpy().any():
        return frame[columns].to_numpy(dtype=float)
    return aligned_proba(model, frame[spec.feature_names], classes)


def _rows(windows: Windows, day: date, version: str, rule: ChunkRule) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's rows of event ``day`` and of the rolling chunk ending with it: the very windows
    ``live_performance`` judges (``Windows.of``), each row with its delivered label (NaN until it arrives)."""
    current, chunk, _ = windows.of(day, rule)

    def served(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows[(rows["model_version"] == str(version)) & rows["error"].isna()]
        labels = windows.labelled(rows)[["request_id", "row", "label"]]
        return rows.merge(labels, on=["request_id", "row"], how="left")

    return served(current), served(chunk)


def _judge(
    frame: pd.DataFrame, estimator: CBPE | DLE, spec: DatasetSpec, model: Any, config: EstimatedPerformanceConfig
) -> dict[str, Estimate]:
    """Estimated metrics of one chunk with their bands, and realized ones on its labelled rows."""
    labelled = frame[frame["label"].notna()]
    if isinstance(estimator, CBPE):
        proba = _proba(frame, estimator.classes, model, spec)
        values = estimator.estimate(proba, frame["prediction"].to_numpy())
        realized = (
            estimator.realized(
                proba[frame["label"].notna().to_numpy()],
                labelled["label"].to_numpy(),
                labelled["prediction"].to_numpy(),
            )
            if len(labelled)
            else None
        )
    else:
        values = estimator.estimate(frame[spec.feature_names], frame["prediction"].astype(float))
        realized = estimator.realized(labelled["prediction"], labelled["label"]) if len(labelled) else None
    return with_bands(values, estimator.unit_error, len(frame), config.confidence, realized, len(labelled))


def _summary(
    frame: pd.DataFrame,
    estimates: dict[str, Estimate],
    metric: str,
    baseline: float | None,
    config: EstimatedPerformanceConfig,
) -> dict[str, Any]:
    primary = estimates[metric]
    decayed = estimated_decay(primary, baseline, tolerance=config.tolerance, min_rows=config.min_rows)
    return {
        "rows": len(frame),
        "labeled_rows": primary.labeled_rows,
        "label_coverage": primary.labeled_rows / len(frame) if len(frame) else 0.0,
        "first_day": frame["event_day"].iloc[0] if len(frame) else None,
        "last_day": frame["event_day"].iloc[-1] if len(frame) else None,
        "estimated": {
            k: {"value": e.value, "band_low": e.band_low, "band_high": e.band_high} for k, e in estimates.items()
        },
        "realized": {k: e.realized for k, e in estimates.items()} if primary.labeled_rows else None,
        "estimated_decay": decayed,
        "why": explain_estimate(primary, baseline, tolerance=config.tolerance, min_rows=config.min_rows),
    }


def _estimate_day(
    day: date,
    config: EstimatedPerformanceConfig,
    store: DataStore,
    tracking: MlflowTracking,
    windows: Windows,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = windows.spec
    metric = PRIMARY[spec.task]
    champion = tracking.version_by_alias(CHAMPION)
    record: dict[str, Any] = {
        "day": day.isoformat(),
        "metric": metric,
        "tolerance": config.tolerance,
        "min_rows": config.min_rows,
        "chunk_rows": config.chunk_rows,
        "chunk_rule": config.rule().describe(),
        "estimated_decay": False,
    }
    dataset_id = champion.tags.get(contracts.LINEAGE_DATASET) if champion else None
    if champion is None or dataset_id is None:
        return {
            **record,
            "status": "insufficient_data",
            "detail": "no champion serving yet",
            "champion_version": None,
        }, []
    version = champion.version
    baseline = champion.offline_metrics().get(metric)
    record.update(champion_version=version, baseline=baseline, method="cbpe" if spec.task != "regression" else "dle")
    today, chunk = _rows(windows, day, version, config.rule())
    if today.empty:
        return {
            **record,
            "status": "insufficient_data",
            "detail": f"no predictions of champion v{version} logged for event day {day}",
        }, []
    model = tracking.load_version(version)
    estimator = _reference(spec, store, tracking, version, dataset_id, model)
    day_summary = _summary(today, _judge(today, estimator, spec, model, config), metric, baseline, config)
    chunk_summary = _summary(chunk, _judge(chunk, estimator, spec, model, config), metric, baseline, config)
    size = max(1, math.ceil(len(chunk) / config.plot_chunks))
    parts = []
    for a, b in chunk_bounds(len(chunk), size):
        part = chunk.iloc[a:b]
        judged = _judge(part, estimator, spec, model, config)[metric]
        first, last = (part["event_ts"].iloc[i].isoformat() for i in (0, -1))
        parts.append({"first_ts": first, "last_ts": last, **judged.to_dict()})
    record.update(
        status="ok",
        reference=estimator.reference,
        day_estimate=day_summary,
        chunk=chunk_summary,
        chunks=parts,
        estimated_decay=day_summary["estimated_decay"] or chunk_summary["estimated_decay"],
    )
    return record, parts


def _metadata(record: dict[str, Any], png: bytes | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "status": record["status"],
        "estimated_decay": record["estimated_decay"],
        "champion_version": record.get("champion_version") or "none",
        "metric": record["metric"],
    }
    if record["status"] != "ok":
        return {**metadata, "detail": record["detail"]}
    for name in ("day_estimate", "chunk"):
        part = record[name]
        estimate = part["estimated"][record["metric"]]
        prefix = "day" if name == "day_estimate" else "chunk"
        metadata.update(
            {
                f"{prefix}_estimate": estimate["value"],
                f"{prefix}_band_low": estimate["band_low"],
                f"{prefix}_band_high": estimate["band_high"],
                f"{prefix}_rows": part["rows"],
                f"{prefix}_label_coverage": round(part["label_coverage"], 4),
                f"{prefix}_why": part["why"],
            }
        )
    metadata["offline_baseline"] = record["baseline"] if record["baseline"] is not None else float("nan")
    if png:
        encoded = base64.b64encode(png).decode()
        metadata["estimated_vs_realized"] = MetadataValue.md(
            f"![estimated vs realized](data:image/png;base64,{encoded})"
        )
    return metadata


def _check(record: dict[str, Any]) -> AssetCheckResult:
    why = [record[k]["why"] for k in ("day_estimate", "chunk") if record.get(k, {}).get("estimated_decay")]
    return AssetCheckResult(
        check_name="no_estimated_decay",
        passed=not record["estimated_decay"],
        severity=AssetCheckSeverity.WARN,
        description="; ".join(why) if why else None,
        metadata={"day": record["day"], "status": record["status"]},
    )


@asset(
    **DAILY_MONITORING,
    check_specs=[
        AssetCheckSpec(
            "no_estimated_decay",
            asset="estimated_performance",
            description="Warns when the estimated performance band of the day or of its rolling "
            "chunk is entirely worse than the offline metric by more than the "
            "tolerance, before any label says so",
        )
    ],
    description="That day's served traffic judged before labels arrive: CBPE (calibrated probabilities, expected "
    "confusion matrix: accuracy, ROC AUC, F1) for classifiers, DLE (a model of the champion's error: "
    "MAE, RMSE) for regressors, on the day and on a rolling chunk of the last N rows, each with its "
    "band, the realized value where labels exist, and the estimated_decay verdict.",
)
@retry_transient
def estimated_performance(
    context: AssetExecutionContext,
    config: EstimatedPerformanceConfig,
    store: DataStore,
    tracking: MlflowTracking,
    prediction_log: PredictionLog,
    alerts: Alerter,
):
    def day_result(day: date, windows: Windows) -> DayResult:
        record, parts = _estimate_day(day, config, store, tracking, windows)
        png = (estimated_vs_realized(parts, record["metric"], record.get("baseline"), config.tolerance)
               if parts else None)
        if record["estimated_decay"]:
            alerts.alert("estimated_decay", f"{day}: estimated {record['metric']} of champion "
                         f"v{record['champion_version']} fell: {record['chunk']['why']}", severity="warning")
        return record, _metadata(record, png), png

    yield from monitor_days(context, store, tracking, prediction_log, day_result, _check)
