"""The serving gateway as seen from Dagster: where it listens and how to tell what it serves."""

from __future__ import annotations

import httpx
from dagster import ConfigurableResource

from mlops_assets.core.contracts import CANARY
from mlops_assets.core.waiting import wait_until

POLL_SECONDS = 0.25  # how often the waits below ask the gateway


class ServingGateway(ConfigurableResource):
    """Client of the running gateway; the gateway itself follows the registry's ``champion`` alias."""

    url: str
    timeout_seconds: float = 60.0

    def served_version(self) -> str | None:
        """The champion version the gateway serves now, or None when it is down or has no model."""
        try:
            resp = httpx.get(f"{self.url.rstrip('/')}/version", timeout=2.0)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        version = resp.json().get("model_version")
        return None if version is None else str(version)

    def is_up(self) -> bool:
        """The gateway process answers (it may still have no model: /version answers regardless)."""
        try:
            return httpx.get(f"{self.url.rstrip('/')}/version", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _health(self) -> dict:
        """The gateway's /health (it answers 503 with the same body while it has no model); {} when down."""
        try:
            body = httpx.get(f"{self.url.rstrip('/')}/health", timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def slot_version(self, slot: str) -> str | None:
        version = self._health().get("slots", {}).get(slot)
        return None if version is None else str(version)

    def reload(self, token: str) -> bool:
        """Ask the gateway to re-read the registry now instead of at its next poll; False if it did not."""
        try:
            resp = httpx.post(f"{self.url.rstrip('/')}/admin/reload", headers={"Authorization": f"Bearer {token}"},
                              timeout=self.timeout_seconds)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def wait_for_split(self, version: str, percent: float) -> bool:
        """Wait until the gateway sends ``percent`` of traffic to canary ``version``; False on timeout."""
        def split() -> bool:
            health = self._health()
            return health.get("slots", {}).get(CANARY) == str(version) and health.get("canary_percent") == percent

        return wait_until(split, self.timeout_seconds, POLL_SECONDS)

    def wait_for_slot(self, slot: str, version: str) -> bool:
        """Wait until the gateway has ``version`` loaded in ``slot`` (e.g. the canary slot)."""
        return wait_until(lambda: self.slot_version(slot) == str(version), self.timeout_seconds, POLL_SECONDS)

    def wait_for_version(self, version: str) -> bool:
        """Wait until the gateway serves ``version``; False on timeout."""
        return wait_until(lambda: self.served_version() == str(version), self.timeout_seconds, POLL_SECONDS)
