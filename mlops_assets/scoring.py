"""Batch scoring: each file landed in the scoring zone, scored by the champion or a pinned version.

A thin stage over ``core/scoring.py``: it picks the model, finds each partition's file, and records what was
scored, what was rejected and where both went. One run may score a range of partitions (a single-run backfill,
e.g. re-scoring history with a pinned version); the model is loaded once for all of them.
"""

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from mlops_assets.core import contracts
from mlops_assets.core import scoring as logic
from mlops_assets.core.tables import markdown_table
from mlops_assets.core.transient import is_transient
from mlops_assets.partitions import scoring_partitions
from mlops_assets.retries import FinalFailure, retry_transient
from resources import Alerter, DataStore, LandingFileError, MlflowTracking, PredictionLog, ScoringZone

REJECTION_POLICY = ("rows that break a rule of the raw schema (without the target) are not scored: they are "
                    "listed in the batch's report with their file lines, and written to <batch>.rejected.csv; "
                    "the other rows are scored")


class ScoringConfig(Config):
    model_version: str | None = Field(None, description="a registered version to score with; default: the "
                                                        "champion when the run starts")
    chunk_rows: int = Field(logic.DEFAULT_CHUNK_ROWS, ge=1, description="rows read and scored at a time")


@asset(
    partitions_def=scoring_partitions,
    group_name="deployment",
    deps=["deployment"],
    backfill_policy=BackfillPolicy.single_run(),
    description="Each file in the scoring zone scored in batch by the champion (or a pinned version): Parquet "
                "with id, event time, prediction, class probabilities, model version and batch id; every scored "
                "row is also logged like an online prediction (slot `batch`), so monitoring covers it.",
)
@retry_transient
def batch_predictions(context: AssetExecutionContext, config: ScoringConfig, scoring: ScoringZone,
                      store: DataStore, tracking: MlflowTracking, prediction_log: PredictionLog,
                      alerts: Alerter) -> MaterializeResult:
    try:
        version, predictor = logic.choose_model(tracking, config.model_version)
    except ValueError as exc:
        raise Failure(description=str(exc)) from exc
    spec = store.spec()
    keys = context.partition_keys
    scored, refused = [], []
    with logic.log_writer(prediction_log.root) as log:
        for key in keys:
            try:
                path = _file(context, scoring, key)
                result = logic.score_file(path, spec, predictor, model_name=tracking.model_name,
                                          model_version=version, batch_id=key, output=scoring.output_path(key),
                                          report_dir=scoring.reports, log=log, chunk_rows=config.chunk_rows)
            except (LandingFileError, logic.ScoringRejected) as exc:
                refused.append(f"{key}: {exc}" + (f"\n  report: {exc.report_path}"
                                                   if isinstance(exc, logic.ScoringRejected) else ""))
                continue
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # the model is loaded, MLflow done with: this fault may come after rows of the run were logged
                raise FinalFailure(description=f"scoring {key} stopped by {type(exc).__name__}: {exc}; not retried, "
                                               "since rows of this run may already be in the prediction log and a "
                                               "retry would log them twice: check the log, then re-run") from exc
            context.log.info(f"batch {key}: {result.scored} of {result.rows} rows scored by v{version} -> "
                             f"{result.output}")
            if result.rejected:
                context.log.warning(f"batch {key}: {result.rejected} row(s) rejected, see {result.report}")
                alerts.alert("scoring_rows_rejected", f"batch {key}: {result.rejected} of {result.rows} rows "
                                                      "not scored (they break the data set's rules)",
                             report=str(result.report))
            scored.append(result)
    if refused:
        alerts.alert("scoring_refused", f"{len(refused)} batch(es) could not be scored", batches=refused)
        raise Failure(description="could not score:\n" + "\n".join(refused)
                      + (f"\n(scored meanwhile: {', '.join(r.batch_id for r in scored)})" if scored else ""))
    rows = sum(r.scored for r in scored)
    metadata = {
        "model_version": version, "pinned": config.model_version is not None, "batches": len(scored),
        "rows": sum(r.rows for r in scored), "scored": rows, "rejected": sum(r.rejected for r in scored),
        "log_lines": sum(r.log_lines for r in scored), "classes": MetadataValue.json(list(predictor.classes or [])),
        "rejected_rows_policy": REJECTION_POLICY, "dagster/row_count": rows,
        "batch_results": MetadataValue.md(markdown_table(
            {"batch": r.batch_id, "file": r.file, "rows": r.rows, "scored": r.scored, "rejected": r.rejected,
             "output": str(r.output), "report": str(r.report or "")} for r in scored)),
    }
    if len(scored) == 1:
        metadata["output"] = MetadataValue.path(str(scored[0].output))
        if scored[0].report:
            metadata["report"] = MetadataValue.path(str(scored[0].report))
        metadata["ignored_columns"] = MetadataValue.json(scored[0].ignored_columns)
    return MaterializeResult(metadata=metadata)


def _file(context: AssetExecutionContext, scoring: ScoringZone, key: str):
    """The file of a partition: named by the sensor's run tag (one partition), else found by its stem."""
    name = context.run.tags.get(contracts.SOURCE_FILE)
    if name and len(context.partition_keys) == 1:
        return scoring.resolve(name)
    path = scoring.file_for(key)
    if path is None:
        raise LandingFileError(f"no file named {key}.csv or {key}.parquet in the scoring zone {scoring.incoming}")
    return path
