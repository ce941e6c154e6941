"""The serving gateway as seen from Dagster: where it listens and how to tell what it serves."""

from __future__ import annotations

import time

import httpx
from dagster import ConfigurableResource


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

    def slot_version(self, slot: str) -> str | None:
        try:
            resp = httpx.get(f"{self.url.rstrip('/')}/health", timeout=2.0)
            version = resp.json().get("slots", {}).get(slot)
        except (httpx.HTTPError, ValueError):
            return None
        return None if version is None else str(version)

    def wait_for_slot(self, slot: str, version: str) -> bool:
        """Wait until the gateway has ``version`` loaded in ``slot`` (e.g. the canary slot)."""
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            if self.slot_version(slot) == str(version):
                return True
            time.sleep(0.25)
        return False

    def wait_for_version(self, version: str) -> bool:
        """Wait until the gateway serves ``version``; False on timeout."""
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            if self.served_version() == str(version):
                return True
            time.sleep(0.25)
        return False
