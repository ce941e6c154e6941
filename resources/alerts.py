"""Alerts: every alert goes to the platform's alert log and the Dagster log, and to a webhook when one is
configured (its URL is a secret: it comes only from the environment, ``MLOPS_ALERT_WEBHOOK``)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource

log = logging.getLogger("mlops.alerts")


class Alerter(ConfigurableResource):
    log_path: str
    webhook_url: str | None = None

    def alert(self, kind: str, message: str, *, severity: str = "warning", **details: Any) -> dict[str, Any]:
        record = {"ts": datetime.now(UTC).isoformat(timespec="seconds"), "kind": kind, "severity": severity,
                  "message": message, "details": details}
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        log.log(logging.ERROR if severity == "error" else logging.WARNING, "[%s] %s", kind, message)
        if self.webhook_url:
            try:
                httpx.post(self.webhook_url, json=record, timeout=5.0)
            except httpx.HTTPError as exc:  # an alert channel being down must not fail the pipeline
                log.warning("alert webhook failed: %s", exc)
        return record

    def history(self) -> list[dict[str, Any]]:
        path = Path(self.log_path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
