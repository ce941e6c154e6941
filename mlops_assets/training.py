"""Training stage: the candidate model, tracked in MLflow, with a tuning loop when it misses its target."""

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
from dagster import AssetExecutionContext, Config, Failure, MetadataValue, Output, asset
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models import infer_signature
from mlflow.types import Schema

from mlops_assets.core import contracts
from mlops_assets.core import metrics as scoring
from mlops_assets.core import training as logic
from mlops_assets.core.code_version import code_version
from mlops_assets.core.contracts import CHAMPION, Trigger
from mlops_assets.core.features import xy
from mlops_assets.core.registry import VersionInfo, lineage_tags
from mlops_assets.core.tables import markdown_table
from mlops_assets.records import CandidateRecord, FeaturesRecord
from mlops_assets.retries import retry_transient
from resources import DataStore, MlflowTracking


class TrainingConfig(Config):
    """What to train; every field is logged to MLflow and part of the training fingerprint."""

    estimator: str = "hist_gradient_boosting"
    params: dict[str, Any] = {}
    seed: int = 42
    target_metric: str | None = None  # default: the task's primary metric (ROC AUC or RMSE)
    target_value: float | None = None  # default: ROC AUC 0.75 for classification, none for regression
    tuning_candidates: int = 12  # budget of the tuning loop; 0 disables it
    search_space: dict[str, list[Any]] = {}  # estimator param -> values; empty: the built-in space
    cv_folds: int = 3  # 0: no cross-validation (tuning off only): the holdout score alone, one fit
    max_train_rows: int = logic.DEFAULT_MAX_TRAIN_ROWS  # fit on at most about this many rows (hashed sample); 0: all


def fingerprint(dataset_id: str, config: TrainingConfig) -> str:
    """Same data, same config, same code: same model. A champion with this fingerprint needs no retraining."""
    payload = json.dumps({"dataset": dataset_id, "config": config.model_dump(), "code": code_version()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _pip_requirements() -> list[str]:
    """Pinned explicitly: MLflow's own inference of requirements starts a subprocess and takes seconds."""
    import skops

    return [f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}", f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"]


# The model this process just trained and logged, by model URI: the evaluation step of the same run in the same
# process (``mlops train``'s in-process execution) takes it and its holdout metrics from here instead of loading
# the artifact back and scoring it again; in any other process it loads the logged model. Only the latest is kept.
_FITTED: dict[str, tuple[Any, dict[str, float]]] = {}


def fitted_in_process(model_uri: str) -> tuple[Any, dict[str, float]] | None:
    """The pipeline logged as ``model_uri`` by this process and its holdout metrics, or None."""
    return _FITTED.get(model_uri)


def _tracked_dataset(frame: pd.DataFrame, name: str, target: str, digest: str) -> PandasDataset:
    """``mlflow.data.from_pandas`` with the schema MLflow would infer, from a few rows per column: its type (the
    dtype, or for text the set of distinct values) and whether a null is among them. MLflow's own inference
    scans text columns value by value: ~20 s for 10^6 rows."""
    dataset = mlflow.data.from_pandas(frame, name=name, targets=target, digest=digest)

    def few(col: pd.Series) -> pd.Series:
        return col.drop_duplicates() if col.dtype.kind == "O" else pd.concat([col.head(1), col[col.isna()].head(1)])

    columns = [infer_signature(few(frame[c]).to_frame()).inputs.inputs[0] for c in frame.columns]
    dataset.schema = Schema(columns)  # a cached property: set here, read by log_input
    return dataset


def _record_of_version(tracking: MlflowTracking, version: VersionInfo, dataset_id: str, fp: str) -> CandidateRecord:
    run = tracking.client().get_run(version.run_id)
    metrics = {k.removeprefix("holdout_"): v for k, v in run.data.metrics.items()
               if k.removeprefix("holdout_") in scoring.HIGHER_IS_BETTER}
    cv = {k: v for k, v in run.data.metrics.items() if k.startswith("cv_") and not k.endswith("_baseline")}
    metric, score = next(iter(cv.items())) if cv else ("", float("nan"))
    return {"run_id": version.run_id, "model_uri": version.source, "dataset_id": dataset_id, "fingerprint": fp,
            "metrics": metrics, "cv_score": score, "target_metric": metric.removeprefix("cv_"),
            "params": {k.removeprefix("config."): v for k, v in run.data.params.items() if k.startswith("config.")},
            "tuned": run.data.tags.get(contracts.TUNED_TAG) == "true", "experiment_id": run.info.experiment_id}


@asset(
    group_name="training",
    io_manager_key="records",
    output_required=False,
    description="A scikit-learn pipeline trained on the current features and tracked in MLflow (params, metrics, "
                "dataset input, code version, model with signature). Below its target, a budgeted successive-"
                "halving search runs, each trial a nested MLflow run. When the champion was already trained on the "
                "same data, config and code, it is the record (marked `skipped`, with the reason) and nothing trains.",
)
@retry_transient
def candidate_model(context: AssetExecutionContext, config: TrainingConfig, store: DataStore,
                    tracking: MlflowTracking, features: FeaturesRecord):
    if config.cv_folds == 0 and config.tuning_candidates > 0:
        raise Failure(description=f"cv_folds: 0 turns cross-validation off, which the tuning loop needs; set "
                                  f"tuning_candidates: 0 as well (it is {config.tuning_candidates}) or cv_folds >= 2")
    spec = store.spec()
    dataset_id = features["dataset_id"]
    fp = fingerprint(dataset_id, config)
    champion = tracking.version_by_alias(CHAMPION)
    if champion is not None and champion.tags.get(contracts.LINEAGE_FINGERPRINT) == fp:
        # Nothing to train; the champion stands in as the candidate, marked skipped, so that the evaluation step
        # runs and the blocking gate reports why it judged nothing (registration and deployment then skip).
        reason = (f"champion v{champion.version} was trained on dataset {dataset_id} with this config and code: "
                  "nothing to retrain")
        context.log.info(f"{reason}, downstream stages are skipped")
        yield Output({**_record_of_version(tracking, champion, dataset_id, fp), "skipped": reason}, metadata={
            "skipped": reason, "champion_version": int(champion.version), "dataset_version": dataset_id})
        return

    registered = [v for v in tracking.versions() if v.tags.get(contracts.LINEAGE_FINGERPRINT) == fp]
    if registered:
        # A run that registered this exact model and died before deploying it: reuse it, don't train again.
        reused = registered[-1]
        context.log.info(f"v{reused.version} was already trained with this fingerprint; reusing its model")
        yield Output(_record_of_version(tracking, reused, dataset_id, fp), metadata={
            "reused_version": int(reused.version), "mlflow_run_id": reused.run_id, "dataset_version": dataset_id,
            "mlflow_model_version": MetadataValue.url(tracking.model_version_url(reused.version))})
        return

    # The training table is streamed and only the rows to fit on are kept: memory follows max_train_rows.
    fit_rows, train_rows = store.sample_features(dataset_id, "train", config.max_train_rows)
    holdout = store.holdout(dataset_id)
    metric = config.target_metric or scoring.PRIMARY_METRIC[spec.task]
    target = config.target_value if config.target_value is not None else logic.DEFAULT_TARGET[spec.task]
    experiment_id = tracking.activate()
    run_tags = lineage_tags(dataset_id=dataset_id, dagster_run_id=context.run_id, fingerprint=fp,
                            trigger=context.run.tags.get(contracts.TRIGGER, Trigger.MANUAL))
    run_tags[contracts.MLFLOW_GIT_COMMIT] = run_tags[contracts.LINEAGE_COMMIT]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{dataset_id}-{context.run_id[:8]}",
                          tags=run_tags) as run:
        mlflow.log_params({"config." + k: json.dumps(v) if isinstance(v, dict) else v
                           for k, v in config.model_dump().items()})
        mlflow.log_params({"dataset.rows_train": train_rows, "dataset.rows_fit": len(fit_rows),
                           "dataset.rows_holdout": len(holdout), "dataset.version": dataset_id})
        mlflow.log_input(_tracked_dataset(fit_rows, f"{spec.name}-train", spec.target, dataset_id),
                         context="training")
        mlflow.log_input(_tracked_dataset(holdout, f"{spec.name}-holdout", spec.target, dataset_id),
                         context="holdout")

        result = logic.fit(fit_rows, spec, config.estimator, config.params, config.seed)
        if config.cv_folds == 0:
            score = float("nan")
            mlflow.log_params({"cv.folds": 0, "cv.note": "cross-validation off (cv_folds: 0)"})
            context.log.info(f"{config.estimator} fitted; cross-validation off (cv_folds: 0): holdout scores only")
        else:
            cv = logic.cv_score(result.model, fit_rows, spec, metric, config.cv_folds)
            score = cv.value
            mlflow.log_params({"cv.folds": cv.folds, "cv.note": cv.note or "as configured"})
            context.log.info(f"baseline {config.estimator}: cv {metric} = {score:.4f} (target {target})"
                             + (f"; {cv.note}" if cv.note else ""))
            mlflow.log_metric(f"cv_{metric}_baseline", score)
        below = (config.cv_folds > 0 and target is not None
                 and not logic.meets_target({metric: score}, metric, target))
        if below and config.tuning_candidates > 0:
            context.log.info(f"below target: tuning with a budget of {config.tuning_candidates} candidates")
            result = logic.tune(fit_rows, spec, config.estimator, config.params, config.seed,
                                n_candidates=config.tuning_candidates, cv=config.cv_folds,
                                space=dict(config.search_space) or None)
            for i, trial in enumerate(result.trials):
                with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{i:03d}", nested=True,
                                      tags={contracts.TRIAL_TAG: str(i), **run_tags}):
                    mlflow.log_params(trial["params"])
                    mlflow.log_metrics({"cv_score": trial["score"], "n_resources": trial["n_resources"],
                                        "iteration": trial["iteration"]})
            score = logic.cv_score(result.model, fit_rows, spec, metric, config.cv_folds).value
            context.log.info(f"tuned: cv {metric} = {score:.4f} with {result.params}")
        if config.cv_folds > 0:
            mlflow.log_metric(f"cv_{metric}", score)
        # Every scalar parameter of the fitted pipeline: preprocessing steps and estimator alike.
        mlflow.log_params({f"pipeline.{k}": v for k, v in result.model.get_params(deep=True).items()
                           if isinstance(v, str | int | float | bool | None)})
        mlflow.log_param("estimator.class", type(result.model.named_steps["model"]).__name__)
        mlflow.set_tag(contracts.TUNED_TAG, str(result.tuned).lower())

        metrics = scoring.compute_metrics(result.model, holdout, spec)
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items() if not np.isnan(v)})
        mlflow.log_metrics(scoring.per_class_metric_names(scoring.per_class_metrics(result.model, holdout, spec),
                                                          "holdout_"))
        example = xy(fit_rows, spec)[0].head(5)
        signature = infer_signature(example, result.model.predict(example))
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "dataset_manifest.json").write_text(
                json.dumps(store.load_manifest(dataset_id), indent=2), encoding="utf-8")
            Path(tmp, "spec.json").write_text(spec.model_dump_json(indent=2), encoding="utf-8")
            mlflow.log_artifacts(tmp, "lineage")
        info = mlflow.sklearn.log_model(result.model, name="model", signature=signature, input_example=example,
                                        serialization_format="skops", pip_requirements=_pip_requirements(),
                                        skops_trusted_types=logic.skops_trusted_types(result.model))
    _FITTED.clear()
    _FITTED[info.model_uri] = (result.model, metrics)
    record: CandidateRecord = {
        "run_id": run.info.run_id, "model_uri": info.model_uri, "dataset_id": dataset_id, "fingerprint": fp,
        "metrics": metrics, "cv_score": score, "target_metric": metric, "params": result.params,
        "tuned": result.tuned, "experiment_id": experiment_id,
    }
    yield Output(record, metadata={
        "mlflow_run_id": run.info.run_id,
        "mlflow_run": MetadataValue.url(tracking.run_url(experiment_id, run.info.run_id)),
        "dataset_version": dataset_id,
        "estimator": config.estimator,
        "tuned": result.tuned,
        f"cv_{metric}": score if config.cv_folds > 0 else "off (cv_folds: 0)",
        **{f"holdout_{k}": v for k, v in metrics.items()},
        "trials": MetadataValue.md(markdown_table(
            [{"trial": i, "score": t["score"], **t["params"]} for i, t in enumerate(result.trials)]))
        if result.trials else "none (met target)",
    })
