"""The continuous-training loop played end to end, headless: what ``mlops demo`` runs.

It uses the same definitions, sensors and jobs the daemon runs, against a real Dagster instance, a real
MLflow store and the real serving gateway on loopback: land batches, ingest, train, gate, register,
deploy, serve traffic, detect drift, land drifted data, retrain and redeploy.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from dagster import DagsterInstance, Definitions

from mlops_assets import settings
from mlops_assets.asset_metadata import latest_metadata
from mlops_assets.core import audit, contracts
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.headless.sensor_runner import Runner, RunOutcome
from mlops_assets.serving.client import deliver_labels, send
from resources import MlflowTracking

SENSOR_ORDER = ("new_data_sensor", "drift_sensor", "new_dataset_sensor", "performance_sensor", "mlflow_run_sensor")


@dataclass
class DemoSummary:
    runs: list[RunOutcome] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    champion: str | None = None
    champion_dataset: str | None = None
    datasets: list[str] = field(default_factory=list)
    drift_detected: bool = False

    @property
    def failed_runs(self) -> list[RunOutcome]:
        return [r for r in self.runs if not r.success and not r.deduplicated]


def settle_until_quiet(runner: Runner, summary: DemoSummary, *, max_rounds: int = 6,
                       say: Callable[[str], None] = print) -> None:
    """Tick every sensor and run what they ask for, until a full round asks for nothing."""
    for _ in range(max_rounds):
        launched = 0
        for name in SENSOR_ORDER:
            tick = runner.tick(name)
            for run in tick.runs:
                if run.deduplicated:
                    continue
                launched += 1
                summary.runs.append(run)
                what = f"{run.job}{'[' + run.partition + ']' if run.partition else ''}"
                say(f"  {name} -> {what}: {'ok' if run.success else 'FAILED'}"
                    f" (trigger {run.tags.get('mlops/trigger', '-')})")
        if not launched:
            return


def run_demo(
    defs_factory: Callable[[], Definitions],
    instance: DagsterInstance,
    lay: settings.Layout,
    *,
    gateway_url: str,
    baseline_batches: int = 3,
    drift_batches: int = 2,
    rows: int = 2000,
    drift: float = 0.6,
    traffic_rows: int = 600,
    seed: int = 0,
    log_level: str = "WARNING",
    say: Callable[[str], None] = print,
) -> DemoSummary:
    defs = defs_factory()
    runner = Runner(defs, instance, lay.io / "sensor_cursors.json", log_level=log_level)
    store = defs.resources["store"]
    tracking = defs.resources["tracking"]
    summary = DemoSummary()
    settle = settings.settle_seconds()
    start = date.today() - timedelta(days=baseline_batches + drift_batches)

    say(f"1. landing {baseline_batches} baseline batches of {rows} rows in {lay.landing}")
    write_batches(Path(store.landing_dir), batches=baseline_batches, rows=rows, seed=seed + 1, start_day=start)
    time.sleep(settle + 0.1)
    settle_until_quiet(runner, summary, say=say)
    _champion_line(tracking, summary, say)

    spec = store.spec()
    say(f"2. serving {traffic_rows} requests' worth of rows like the training data through {gateway_url}")
    normal = make_batch(traffic_rows, seed=seed + 101, start_id=10_000_000)
    traffic = send(gateway_url, normal[spec.feature_names])
    deliver_labels(gateway_url, traffic, normal[spec.target])
    say(f"   {traffic.rows} predictions, {traffic.failures} failed requests; labels delivered")
    settle_until_quiet(runner, summary, say=say)

    say(f"3. the world drifts (strength {drift}): drifted traffic, then {drift_batches} drifted labelled batches")
    shifted = make_batch(traffic_rows, seed=seed + 202, drift=drift, start_id=20_000_000)
    traffic = send(gateway_url, shifted[spec.feature_names])
    deliver_labels(gateway_url, traffic, shifted[spec.target])
    say(f"   {traffic.rows} predictions, {traffic.failures} failed requests; labels delivered")
    settle_until_quiet(runner, summary, say=say)
    drift_meta = latest_metadata(instance, "drift_report")
    summary.drift_detected = bool(drift_meta.get("dataset_drift"))
    say(f"   drift report: {drift_meta.get('status', 'none')} (share of drifted columns "
        f"{drift_meta.get('share_drifted', '-')})")
    if summary.drift_detected and tracking.version_by_alias(CHAMPION).version == summary.champion:
        say(f"   retraining ran but the champion v{summary.champion} already fits every labelled batch there is; "
            "it keeps serving until labelled data from the new regime lands")
    write_batches(Path(store.landing_dir), batches=drift_batches, rows=rows, drift=drift, seed=seed + 2,
                  start_day=start + timedelta(days=baseline_batches))
    time.sleep(settle + 0.1)
    settle_until_quiet(runner, summary, say=say)
    _champion_line(tracking, summary, say)
    summary.datasets = [m["id"] for m in store.manifests()]
    _audit_table(tracking, say)
    return summary


def _audit_table(tracking: MlflowTracking, say: Callable[[str], None]) -> None:
    """The releases the demo made, as `mlops registry history` shows them (evidence cut to fit a line)."""
    trail = tracking.audit_trail()
    say(f"4. audit trail of the releases ({len(trail)} moves; all of it: mlops registry history)")
    say("   " + audit.HEADER)
    for entry in trail:
        line = audit.format_line({**entry, "why": {k: v for k, v in entry["why"].items() if k == "trigger"}})
        say(f"   {line}")


def _champion_line(tracking: MlflowTracking, summary: DemoSummary, say: Callable[[str], None]) -> None:
    champion = tracking.version_by_alias(CHAMPION)
    if champion is None:
        say("   no champion yet")
        return
    summary.champion = champion.version
    summary.champion_dataset = champion.tags.get(contracts.LINEAGE_DATASET)
    auc = champion.tags.get(f"{contracts.METRIC_TAG_PREFIX}roc_auc", "?")
    say(f"   champion: {tracking.model_name} v{champion.version} (dataset {summary.champion_dataset}, "
        f"holdout ROC AUC {auc})")
