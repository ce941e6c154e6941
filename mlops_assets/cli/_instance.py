"""What several commands share: the embedded Dagster instance and the platform's resources."""

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
    """The persistent Dagster instance under the home (the one `dagster dev` shows with the same DAGSTER_HOME)."""
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
