"""Deployment stage: smoke-test the registered version, move the `champion` alias (the old champion kept as
`previous`) and wait until the running gateway serves it; a gateway that cannot load it rolls back."""

from datetime import UTC, datetime

import mlflow
from dagster import AssetExecutionContext, Config, Failure, MetadataValue, Output, asset

from mlops_assets.core.deployment import STRATEGIES, smoke_test
from mlops_assets.core.features import xy
from mlops_assets.evaluation import SMOKE_ROWS
from resources import CHAMPION, PREVIOUS, Alerter, DataStore, MlflowTracking, ServingGateway


class DeploymentConfig(Config):
    strategy: str = "blue_green"
    wait_for_gateway: bool = True


@asset(
    group_name="deployment",
    io_manager_key="records",
    description="The registered version released to serving (blue-green): smoke-tested on holdout rows, then "
                "the `champion` alias moves atomically and the gateway hot-swaps to it without a restart. "
                "The previous champion stays aliased `previous` for a one-step rollback.",
)
def deployment(context: AssetExecutionContext, config: DeploymentConfig, store: DataStore,
               tracking: MlflowTracking, gateway: ServingGateway, alerts: Alerter,
               registered_model: dict, model_evaluation: dict) -> Output[dict]:
    if config.strategy not in STRATEGIES:
        raise Failure(description=f"unknown deployment strategy {config.strategy!r}; choose one of {STRATEGIES}")
    spec = store.spec()
    version = registered_model["version"]
    tracking.activate()
    holdout = store.load_features(registered_model["dataset_id"], "holdout")
    x, _ = xy(holdout.head(SMOKE_ROWS), spec)
    try:
        model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{version}")
        online = list(model.predict(x))
    except Exception as exc:  # any load failure must stop the release, whatever its cause
        alerts.alert("deployment_failed", f"v{version} failed to load from the registry: {exc}", severity="error")
        raise Failure(description=f"v{version} cannot be loaded from the registry ({exc}); the champion is "
                                  "unchanged") from exc
    smoke = smoke_test(model_evaluation["smoke_predictions"], online)
    if not smoke.passed:
        alerts.alert("deployment_failed", f"v{version} smoke test failed: {smoke.detail}", severity="error")
        raise Failure(description=f"smoke test of v{version} failed: {smoke.detail}; the champion is unchanged")

    before_champion = tracking.version_by_alias(CHAMPION)
    before_previous = tracking.version_by_alias(PREVIOUS)
    old = tracking.promote(version)
    context.log.info(f"champion alias: v{old or '-'} -> v{version}")

    served = None
    if config.wait_for_gateway and gateway.is_up():
        served = gateway.wait_for_version(version)
        if not served:
            restored = before_champion.version if before_champion else None
            tracking.restore(restored, before_previous.version if before_previous else None)
            alerts.alert("deployment_failed", f"gateway did not switch to v{version}; aliases restored",
                         severity="error")
            raise Failure(description=f"the gateway at {gateway.url} did not serve v{version} within "
                                      f"{gateway.timeout_seconds}s (see its /health for the load error); the "
                                      f"champion alias was moved back to v{restored or '-'}")
    elif config.wait_for_gateway:
        context.log.warning(f"no gateway answering at {gateway.url}: it will serve v{version} when it starts")
    record = {"version": version, "previous": old, "strategy": config.strategy,
              "gateway_confirmed": bool(served), "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "dataset_id": registered_model["dataset_id"]}
    return Output(record, metadata={
        "champion": int(version), "previous": old or "none", "strategy": config.strategy,
        "smoke_test": smoke.detail, "gateway": MetadataValue.url(gateway.url) if served else "not running",
        "gateway_confirmed": bool(served),
    })
