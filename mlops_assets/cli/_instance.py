"""What several commands share: the embedded Dagster instance and the platform's resources, and the plain
registry and manifest readers the listing commands use instead (no Dagster import: they answer in about a second).
"""

import json
import os

from mlops_assets import settings
from mlops_assets.core import contracts

# The embedded default: SQLite storage in DAGSTER_HOME, no telemetry, and one training run at a time (a second
# retraining requested meanwhile waits in the queue, then finds the champion already trained on that data).
EMBEDDED_DAGSTER_YAML = f"""\
telemetry:
  enabled: false
run_queue:
  tag_concurrency_limits:
    - key: {contracts.RUN_KIND}
      value: {contracts.RunKind.TRAINING}
      limit: 1
"""


def embedded_instance(lay: settings.Layout):
    """The persistent Dagster instance under the home (the one `dg dev` shows with the same DAGSTER_HOME)."""
    from dagster import DagsterInstance

    home = settings.dagster_home(lay)
    os.environ["DAGSTER_HOME"] = str(home)  # where DagsterInstance.get() and child processes look
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_DAGSTER_YAML, encoding="utf-8")
    return DagsterInstance.get()


def platform_resources(lay: settings.Layout) -> dict:
    """The resources the code location builds (store, tracking, gateway, ...), for commands that use one."""
    from mlops_assets.definitions import build_resources

    return build_resources(lay)


def model_registry(lay: settings.Layout):
    """The platform's registered model through MLflow's client alone, configured as the ``tracking`` resource.
    MLflow's notes on creating its store (a fresh home) are not the command's answer: warnings only."""
    import logging

    from mlops_assets.core.registry import ModelRegistry

    logging.getLogger("mlflow").setLevel(logging.WARNING)

    return ModelRegistry(tracking_uri=settings.tracking_uri(lay), registry_uri=settings.registry_uri(lay),
                         model_name=settings.model_name(), lock_dir=str(lay.locks))


def dataset_manifests(lay: settings.Layout) -> list[dict]:
    """Every dataset version's manifest, oldest first, read straight from the store's ``datasets/`` folder."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(settings.store_url(lay))
    manifests = [json.loads(fs.cat_file(path)) for path in sorted(fs.glob(f"{base.rstrip('/')}/datasets/*.json"))]
    return sorted(manifests, key=lambda m: (m["created"], m["id"]))
