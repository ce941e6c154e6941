"""Deployment stage: smoke-test the registered version, move the `champion` alias (the old champion kept as
`previous`) and wait until the running gateway serves it; a gateway that cannot load it rolls back. With
``require_approval`` the smoke-tested version is held instead, and ``approved_release`` puts it out once a
person approved it. Every alias move lands in the registry's audit trail and in the materialization's metadata."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, Config, Failure, MetadataValue, Output, asset

from mlops_assets.core.audit import format_line
from mlops_assets.core.contracts import (
    APPROVAL_TAG,
    CANARY,
    CHAMPION,
    LINEAGE_DATASET,
    PREVIOUS,
    RELEASE_MODES,
    TRIGGER,
    ApprovalStatus,
    Trigger,
)
from mlops_assets.core.deployment import STRATEGIES, smoke_test
from mlops_assets.core.features import xy
from mlops_assets.evaluation import SMOKE_ROWS
from mlops_assets.records import CanaryReleaseRecord, DeploymentRecord, EvaluationRecord, RegisteredModelRecord
from mlops_assets.retries import retry_transient
from resources import Alerter, ContinuousTraining, DataStore, MlflowTracking, ServingGateway


class ReleaseConfig(Config):
    """How a version goes out. blue_green: all traffic moves at once after the smoke test. canary:
    ``canary_percent`` of traffic (sticky by entity id) goes to the new version until the canary sensor promotes or
    rolls it back. shadow: the new version gets a copy of all traffic; its answers are logged, never returned."""

    strategy: str = "blue_green"
    canary_percent: float = 10.0
    wait_for_gateway: bool = True


class DeploymentConfig(ReleaseConfig):
    """The release of the version the training run just registered."""


def release_asset(description: str) -> Callable[[Callable], AssetsDefinition]:
    """One declaration for the assets that move aliases: a record through the records IO manager, in the
    deployment group, transient faults (MLflow, the gateway) retried."""

    def declare(fn: Callable) -> AssetsDefinition:
        return asset(group_name="deployment", io_manager_key="records", description=description)(retry_transient(fn))

    return declare


@release_asset(
    "The registered version released to serving (blue-green): smoke-tested on holdout rows, then the `champion` "
    "alias moves atomically and the gateway hot-swaps to it without a restart. The previous champion stays aliased "
    "`previous` for a one-step rollback."
)
def deployment(context: AssetExecutionContext, config: DeploymentConfig, store: DataStore,
               tracking: MlflowTracking, gateway: ServingGateway, alerts: Alerter,
               continuous_training: ContinuousTraining, registered_model: RegisteredModelRecord,
               model_evaluation: EvaluationRecord) -> Output[DeploymentRecord]:
    _check_strategy(config.strategy, config.canary_percent)
    spec = store.spec()
    version = registered_model["version"]
    tracking.activate()
    holdout = store.holdout(registered_model["dataset_id"])
    x, _ = xy(holdout.head(SMOKE_ROWS), spec)
    try:
        model = tracking.load_version(version)
        online = list(model.predict(x))
    except Exception as exc:  # any load failure must stop the release, whatever its cause
        alerts.alert("deployment_failed", f"v{version} failed to load from the registry: {exc}", severity="error")
        raise Failure(description=f"v{version} cannot be loaded from the registry ({exc}); the champion is "
                                  "unchanged") from exc
    smoke = smoke_test(model_evaluation["smoke_predictions"], online)
    if not smoke.passed:
        alerts.alert("deployment_failed", f"v{version} smoke test failed: {smoke.detail}", severity="error")
        raise Failure(description=f"smoke test of v{version} failed: {smoke.detail}; the champion is unchanged")

    why = {**_run_why(context), "gate": gate_evidence(model_evaluation), "smoke_test": smoke.detail}
    serving = {v.version for v in (tracking.version_by_alias(CHAMPION), tracking.version_by_alias(CANARY)) if v}
    if continuous_training.require_approval and version not in serving:
        return _hold_for_approval(context, config, tracking, alerts, version, why, registered_model["dataset_id"])
    return _release(context, config, tracking, gateway, alerts, version, why, registered_model["dataset_id"])


def _check_strategy(strategy: str, canary_percent: float) -> None:
    if strategy not in STRATEGIES:
        raise Failure(description=f"unknown deployment strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy == CANARY and not 0 < canary_percent <= 100:
        raise Failure(description=f"canary_percent must be in (0, 100], got {canary_percent}")


def _run_why(context: AssetExecutionContext) -> dict[str, Any]:
    """The audit trail's "why" every move from a Dagster step carries: the run and what triggered it."""
    return {"dagster_run_id": context.run_id, "trigger": context.run.tags.get(TRIGGER, Trigger.MANUAL)}


def gate_evidence(evaluation: EvaluationRecord) -> str:
    """The gate's verdict in one line: each rule with the candidate's value against what it required."""
    rules = evaluation["gate"]["rules"]
    return "; ".join(f"{r['rule']} {r['metric']} {r['candidate']:.4f} vs {r['required']:.4f}" for r in rules) or (
        "passed" if evaluation["gate"]["passed"] else "failed")


def _audit_metadata(context: AssetExecutionContext, tracking: MlflowTracking) -> dict[str, Any]:
    entries = tracking.audit_for_run(context.run_id)
    return {"audit": MetadataValue.md("\n".join(f"- `{format_line(e)}`" for e in entries) or "-"),
            "audit_entries": MetadataValue.json(entries)}


def _hold_for_approval(context: AssetExecutionContext, config: DeploymentConfig, tracking: MlflowTracking,
                       alerts: Alerter, version: str, why: dict[str, Any], dataset_id: str) -> Output[DeploymentRecord]:
    already = tracking.request_approval(version, {"strategy": config.strategy,
                                                  "canary_percent": config.canary_percent}, why)
    if already is None:
        alerts.alert("approval_required", f"v{version} passed the gate and waits for `mlops registry approve "
                     f"{version} --reason ...`", severity="info", version=version)
        context.log.info(f"v{version} held for approval ({config.strategy}); nothing moved")
    else:  # a rerun: the decision (or the wait) stands; the approval sensor releases an approved version
        context.log.info(f"v{version} was already held for approval (status {already}); nothing moved")
    champion = tracking.version_by_alias(CHAMPION)
    record: DeploymentRecord = {"pending_approval": version, "strategy": config.strategy,
                                "gateway_confirmed": False, "dataset_id": dataset_id,
                                "deployed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if champion is not None:
        record["version"] = champion.version
    return Output(record, metadata={"pending_approval": int(version), "strategy": config.strategy,
                                    "champion": int(champion.version) if champion else "none",
                                    **_audit_metadata(context, tracking)})


def _release(context: AssetExecutionContext, config: ReleaseConfig, tracking: MlflowTracking,
             gateway: ServingGateway, alerts: Alerter, version: str, why: dict[str, Any],
             dataset_id: str) -> Output[DeploymentRecord]:
    """Put ``version`` out with ``config.strategy``: blue-green (the gateway must follow, else the aliases go back)
    or into the canary slot."""
    if config.strategy in RELEASE_MODES:
        return _start_canary(context, config, tracking, gateway, version, why, dataset_id)

    before_champion = tracking.version_by_alias(CHAMPION)
    before_previous = tracking.version_by_alias(PREVIOUS)
    old = tracking.promote(version, why=why)
    context.log.info(f"champion alias: v{old or '-'} -> v{version}")

    served = None
    if config.wait_for_gateway and gateway.is_up():
        served = gateway.wait_for_version(version)
        if not served:
            restored = before_champion.version if before_champion else None
            tracking.restore(restored, before_previous.version if before_previous else None,
                             why={**_run_why(context), "failed": f"gateway did not serve v{version}"})
            alerts.alert("deployment_failed", f"gateway did not switch to v{version}; aliases restored",
                         severity="error")
            raise Failure(description=f"the gateway at {gateway.url} did not serve v{version} within "
                                      f"{gateway.timeout_seconds}s (see its /health for the load error); the "
                                      f"champion alias was moved back to v{restored or '-'}")
    elif config.wait_for_gateway:
        context.log.warning(f"no gateway answering at {gateway.url}: it will serve v{version} when it starts")
    record: DeploymentRecord = {"version": version, "previous": old, "strategy": config.strategy,
              "gateway_confirmed": bool(served), "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "dataset_id": dataset_id}
    return Output(record, metadata={
        "champion": int(version), "previous": old or "none", "strategy": config.strategy,
        "mlflow_model_version": MetadataValue.url(tracking.model_version_url(version)),
        "smoke_test": why.get("smoke_test", "-"), "gateway_confirmed": bool(served),
        "gateway": MetadataValue.url(gateway.url) if served else "not running", **_audit_metadata(context, tracking),
    })


def _start_canary(context: AssetExecutionContext, config: ReleaseConfig, tracking: MlflowTracking,
                  gateway: ServingGateway, version: str, why: dict[str, Any],
                  dataset_id: str) -> Output[DeploymentRecord]:
    if tracking.version_by_alias(CHAMPION) is None:
        raise Failure(description=f"a {config.strategy} release needs a champion to compare with; deploy the first "
                                  "model with strategy blue_green")
    percent = config.canary_percent if config.strategy == CANARY else 0.0
    tracking.start_canary(version, percent=percent, mode=config.strategy, why=why)
    context.log.info(f"v{version} in the canary slot ({config.strategy}, {percent}% of traffic)")
    served = gateway.wait_for_slot(CANARY, version) if config.wait_for_gateway and gateway.is_up() else None
    record: DeploymentRecord = {"version": tracking.version_by_alias(CHAMPION).version, "canary": version,
              "strategy": config.strategy, "canary_percent": percent, "gateway_confirmed": bool(served),
              "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"), "dataset_id": dataset_id}
    return Output(record, metadata={"strategy": config.strategy, "canary": int(version),
                                    "canary_percent": percent, "smoke_test": why.get("smoke_test", "-"),
                                    "gateway_confirmed": bool(served), **_audit_metadata(context, tracking)})


class ApprovedReleaseConfig(ReleaseConfig):
    """Set by the approval sensor from the version's approval tags: the strategy its training run asked for."""

    version: str


@release_asset(
    "A version held for approval (require_approval) released after `mlops registry approve`: launched by the "
    "approval sensor, with the strategy its training run was configured with. The smoke test ran before it was "
    "held; a gateway that cannot load it rolls back."
)
def approved_release(context: AssetExecutionContext, config: ApprovedReleaseConfig, tracking: MlflowTracking,
                     gateway: ServingGateway, alerts: Alerter) -> Output[DeploymentRecord]:
    _check_strategy(config.strategy, config.canary_percent)
    tracking.activate()
    mv = tracking.client().get_model_version(tracking.model_name, config.version)
    status = mv.tags.get(APPROVAL_TAG)
    if status != ApprovalStatus.APPROVED:
        raise Failure(description=f"v{config.version} is not approved (status: {status or 'none'}); only "
                                  "`mlops registry approve` releases a held version")
    why = {**_run_why(context), "approval": ApprovalStatus.APPROVED}
    return _release(context, config, tracking, gateway, alerts, config.version, why,
                    mv.tags.get(LINEAGE_DATASET, "unknown"))


class CanaryReleaseConfig(Config):
    action: str  # "promote" | "rollback"
    version: str
    evidence: list[str] = []


@release_asset(
    "The end of a canary or shadow release, decided by the canary sensor from live evidence: the canary version is "
    "promoted to champion, or withdrawn. Each decision is one materialization carrying its evidence."
)
def canary_release(context: AssetExecutionContext, config: CanaryReleaseConfig, tracking: MlflowTracking,
                   gateway: ServingGateway, alerts: Alerter) -> Output[CanaryReleaseRecord]:
    if config.action not in ("promote", "rollback"):
        raise Failure(description=f"action must be promote or rollback, got {config.action!r}")
    tracking.activate()
    current = tracking.version_by_alias(CANARY)
    if current is None or current.version != config.version:
        context.log.info(f"canary slot no longer holds v{config.version}: nothing to do")
        return Output({"action": "none", "version": config.version}, metadata={"action": "none"})
    tracking.end_canary(promote=config.action == "promote",
                        why={**_run_why(context), "evidence": "; ".join(config.evidence) or "-"})
    champion = tracking.version_by_alias(CHAMPION).version
    if config.action == "rollback":
        alerts.alert("canary_rolled_back", f"canary v{config.version} withdrawn: " + "; ".join(config.evidence),
                     severity="error")
    served = gateway.wait_for_version(champion) if gateway.is_up() else None
    record: CanaryReleaseRecord = {"action": config.action, "version": config.version, "champion": champion,
              "evidence": list(config.evidence), "gateway_confirmed": bool(served),
              "decided_at": datetime.now(UTC).isoformat(timespec="seconds")}
    return Output(record, metadata={"action": config.action, "canary": int(config.version),
                                    "champion": int(champion), "evidence": MetadataValue.md(
                                        "\n".join(f"- {e}" for e in config.evidence) or "-"),
                                    **_audit_metadata(context, tracking)})
