"""Asset metadata read back from the Dagster instance.

Shared by the sensors, which decide on it, and the headless demo, which reports it; here rather than in
``sensors/`` so that a driver does not depend on the sensors package to read what an asset recorded.
"""

from typing import Any

from dagster import AssetKey, DagsterInstance


def latest_metadata(instance: DagsterInstance, asset: str) -> dict[str, Any]:
    """Metadata of the newest materialization of an asset (any partition), as plain values."""
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
