"""The serving gateway: MLflow's scoring protocol over the registry's `champion`, hot-swapped without a restart.

The model is resolved from the registry alias (never from memory), loaded completely off the request path,
then swapped in with one reference assignment: a request sees the old model or the new one, never half of
each. A version that fails to load never replaces the serving one; ``/health`` says why. Every prediction is
queued to the prediction log by a background writer, so the disk never sits on the request path.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import uvicorn
from mlflow.exceptions import MlflowException
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlops_assets import settings
from mlops_assets.core.deployment import route_to_canary
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog
from mlops_assets.serving import protocol

CHAMPION = "champion"
CANARY = "canary"
CANARY_PERCENT_TAG = "mlops.canary_percent"  # written by resources.tracking.MlflowTracking.start_canary
RELEASE_MODE_TAG = "mlops.release_mode"
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


@dataclass
class GatewayConfig:
    model_name: str
    tracking_uri: str
    registry_uri: str
    log_root: Path
    host: str = "127.0.0.1"
    port: int = 5005
    poll_seconds: float = 2.0
    admin_token: str | None = None
    max_request_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_env(cls, host: str | None = None, port: int | None = None) -> GatewayConfig:
        lay = settings.layout()
        return cls(
            model_name=settings.model_name(),
            tracking_uri=settings.tracking_uri(lay),
            registry_uri=settings.registry_uri(lay),
            log_root=lay.home,
            host=host or "127.0.0.1",
            port=5005 if port is None else port,
            poll_seconds=float(os.environ.get("MLOPS_GATEWAY_POLL_SECONDS", "2.0")),
            admin_token=os.environ.get("MLOPS_ADMIN_TOKEN") or None,
        )


@dataclass(frozen=True)
class Slot:
    """One loaded model version: immutable, so swapping the reference is atomic."""

    version: str
    model: Any
    schema: protocol.InputSchema
    loaded_at: str


class ModelManager:
    """Follows the registry aliases (``champion``, and ``canary`` with its split) and keeps good models loaded.

    Recently served versions stay loaded, so a rollback to the previous champion swaps instantly.
    """

    KEEP_LOADED = 3

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.slot: Slot | None = None
        self.canary: Slot | None = None
        self.canary_percent: float = 0.0
        self.release_mode: str = "canary"
        self.last_error: str | None = None
        self._loaded: dict[str, Slot] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.config.tracking_uri, registry_uri=self.config.registry_uri)

    def _alias(self, client: mlflow.MlflowClient, alias: str) -> str | None:
        try:
            return str(client.get_model_version_by_alias(self.config.model_name, alias).version)
        except MlflowException:
            return None

    def refresh(self, force: bool = False) -> str | None:
        """Load what the aliases point at if it is new; returns the champion version served afterwards."""
        with self._lock:
            try:
                client = self._client()
                wanted = self._alias(client, CHAMPION)
                canary = self._alias(client, CANARY)
                tags = client.get_registered_model(self.config.model_name).tags if canary else {}
            except Exception as exc:  # registry unreachable: keep serving what we have
                self.last_error = f"registry unreachable: {exc}"
                return self.slot.version if self.slot else None
            if wanted is None:
                if self.slot is None:
                    self.last_error = f"no '{CHAMPION}' alias for model {self.config.model_name!r} yet"
                return self.slot.version if self.slot else None
            champion = self._get(wanted, force)
            if champion is not None:
                self.slot = champion
            self.canary = self._get(canary, force) if canary and canary != wanted else None
            self.canary_percent = float(tags.get(CANARY_PERCENT_TAG, 0) or 0)
            self.release_mode = tags.get(RELEASE_MODE_TAG, "canary")
            return self.slot.version if self.slot else None

    def _get(self, version: str, force: bool) -> Slot | None:
        """A loaded slot for ``version``: from memory, or loaded now; None (and last_error) if it fails."""
        if version in self._loaded:
            return self._loaded[version]
        if version in self._failed and not force:
            return None
        try:
            slot = self._load(version)
        except Exception as exc:  # any load failure keeps the serving model; health explains it
            self._failed.add(version)
            self.last_error = f"v{version} failed to load: {type(exc).__name__}: {exc}"
            return None
        self._failed.discard(version)
        self.last_error = None
        self._loaded[version] = slot
        while len(self._loaded) > self.KEEP_LOADED:
            oldest = next(v for v in self._loaded if v not in {version, getattr(self.slot, "version", None)})
            del self._loaded[oldest]
        return slot

    def _load(self, version: str) -> Slot:
        uri = f"models:/{self.config.model_name}/{version}"
        mlflow.set_registry_uri(self.config.registry_uri)
        mlflow.set_tracking_uri(self.config.tracking_uri)
        info = mlflow.models.get_model_info(uri)
        schema = protocol.InputSchema.from_signature(info.signature)
        model = mlflow.sklearn.load_model(uri)
        return Slot(version, model, schema, datetime.now(UTC).isoformat(timespec="seconds"))

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            self.refresh()


@dataclass
class Metrics:
    """Prometheus counters and latency histograms per model version, written by hand (no dependency)."""

    requests: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[str, list[int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def observe(self, version: str, status: str, latency_ms: float, rows: int) -> None:
        self.requests[(version, status)] += 1
        if status == "ok":
            counts = self.buckets.setdefault(version, [0] * (len(LATENCY_BUCKETS_MS) + 1))
            for i, bound in enumerate(LATENCY_BUCKETS_MS):
                if latency_ms <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.latency_sum[version] += latency_ms / 1000.0
            self.rows[version] += rows

    def render(self) -> str:
        lines = ["# HELP mlops_requests_total Scoring requests by model version and outcome.",
                 "# TYPE mlops_requests_total counter"]
        for (version, status), n in sorted(self.requests.items()):
            lines.append(f'mlops_requests_total{{model_version="{version}",status="{status}"}} {n}')
        lines += ["# HELP mlops_predicted_rows_total Rows predicted by model version.",
                  "# TYPE mlops_predicted_rows_total counter"]
        lines += [f'mlops_predicted_rows_total{{model_version="{v}"}} {n}' for v, n in sorted(self.rows.items())]
        lines += ["# HELP mlops_request_latency_seconds Scoring latency by model version.",
                  "# TYPE mlops_request_latency_seconds histogram"]
        name = "mlops_request_latency_seconds"
        for version, counts in sorted(self.buckets.items()):
            label = f'model_version="{version}"'
            for bound, n in zip(LATENCY_BUCKETS_MS, counts, strict=False):
                lines.append(f'{name}_bucket{{{label},le="{bound / 1000}"}} {n}')
            lines.append(f'{name}_bucket{{{label},le="+Inf"}} {counts[-1]}')
            lines.append(f"{name}_sum{{{label}}} {self.latency_sum[version]}")
            lines.append(f"{name}_count{{{label}}} {counts[-1]}")
        return "\n".join(lines) + "\n"


def _error(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    code = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
            413: "REQUEST_TOO_LARGE", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}.get(status, "INTERNAL_ERROR")
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise protocol.ProtocolError(413, f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise protocol.ProtocolError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: GatewayConfig, manager: ModelManager | None = None) -> Starlette:
    manager = manager or ModelManager(config)
    metrics = Metrics()
    logs: dict[str, JsonlLog] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logs["predictions"] = JsonlLog(config.log_root, PREDICTIONS)
        logs["feedback"] = JsonlLog(config.log_root, FEEDBACK)
        threading.Thread(target=manager.start, name="model-loader", daemon=True).start()
        yield
        manager.stop()
        for log in logs.values():
            log.close()

    def log(rid: str, slot: Slot, name: str, frame: Any, outputs: list | None, latency_ms: float,
            error: str | None = None) -> None:
        record = {"request_id": rid, "ts": datetime.now(UTC).isoformat(), "model_name": config.model_name,
                  "model_version": slot.version, "slot": name, "columns": list(frame.columns),
                  "data": protocol.rows_for_log(frame), "outputs": outputs or [], "latency_ms": round(latency_ms, 3)}
        if error:
            record["error"] = error
        logs["predictions"].write(record)

    def shadow_predict(rid: str, shadow: Slot, frame: Any) -> None:
        """The shadow model's answer is logged after the response went out; it is never returned."""
        started = time.perf_counter()
        try:
            outputs = protocol.jsonable(shadow.model.predict(frame))
            log(rid, shadow, "shadow", frame, outputs, (time.perf_counter() - started) * 1000)
        except Exception as exc:  # a failing shadow must never affect the served answer
            log(rid, shadow, "shadow", frame, None, (time.perf_counter() - started) * 1000, repr(exc))

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        if not protocol.REQUEST_ID.match(rid):
            return _error(400, "X-Request-ID must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
        champion, canary = manager.slot, manager.canary
        if champion is None:
            metrics.observe("none", "unavailable", 0.0, 0)
            return _error(503, f"no model loaded yet ({manager.last_error or 'loading'})", rid)
        try:
            body = await _read_body(request, config.max_request_bytes)
            frame = protocol.conform(protocol.parse(body, request.headers.get("content-type")), champion.schema)
        except protocol.ProtocolError as exc:
            metrics.observe(champion.version, "bad_request", 0.0, 0)
            return _error(exc.status, exc.message, rid)
        slot, name = champion, CHAMPION
        if canary is not None and manager.release_mode == "canary" and \
                route_to_canary(request.headers.get("x-entity-id") or rid, manager.canary_percent):
            try:
                outputs = protocol.jsonable(canary.model.predict(frame))
                slot, name = canary, CANARY
            except Exception as exc:  # the champion answers instead; the canary's failure is evidence
                log(rid, canary, CANARY, frame, None, (time.perf_counter() - started) * 1000, repr(exc))
                metrics.observe(canary.version, "error", 0.0, 0)
        if slot is champion:
            try:
                outputs = protocol.jsonable(champion.model.predict(frame))
            except Exception as exc:  # a model error is the server's fault: 500 in MLflow's shape, logged
                log(rid, champion, CHAMPION, frame, None, (time.perf_counter() - started) * 1000, repr(exc))
                metrics.observe(champion.version, "error", 0.0, 0)
                return _error(500, f"model v{champion.version} failed to predict: {exc}", rid)
        latency_ms = (time.perf_counter() - started) * 1000
        log(rid, slot, name, frame, outputs, latency_ms)
        metrics.observe(slot.version, "ok", latency_ms, len(frame))
        background = None
        if canary is not None and manager.release_mode == "shadow":
            background = BackgroundTask(shadow_predict, rid, canary, frame)
        return JSONResponse({"predictions": outputs}, background=background,
                            headers={"X-Request-ID": rid, "X-Model-Version": slot.version, "X-Model-Slot": name})

    async def feedback(request: Request) -> Response:
        try:
            body = await _read_body(request, config.max_request_bytes)
            payload = json.loads(body)
        except protocol.ProtocolError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        items = payload if isinstance(payload, list) else [payload]
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("request_id"), str) \
                    or not protocol.REQUEST_ID.match(item["request_id"]):
                return _error(400, f"feedback item {i}: needs a valid 'request_id'")
            labels = item.get("labels", [item["label"]] if "label" in item else None)
            if not isinstance(labels, list) or not labels:
                return _error(400, f"feedback item {i}: needs 'labels' (one per row of the request) or 'label'")
        for item in items:
            labels = item.get("labels", [item.get("label")])
            logs["feedback"].write({"request_id": item["request_id"], "labels": labels})
        return JSONResponse({"accepted": len(items)})

    async def ping(request: Request) -> Response:
        ok = manager.slot is not None
        return PlainTextResponse("\n" if ok else "no model loaded\n", status_code=200 if ok else 503)

    async def health(request: Request) -> Response:
        slot = manager.slot
        canary = manager.canary
        body = {"status": "ok" if slot else "unavailable", "model_name": config.model_name,
                "model_version": slot.version if slot else None, "loaded_at": slot.loaded_at if slot else None,
                "last_error": manager.last_error,
                "slots": {CHAMPION: slot.version if slot else None, CANARY: canary.version if canary else None},
                "release_mode": manager.release_mode if canary else None,
                "canary_percent": manager.canary_percent if canary else 0.0}
        return JSONResponse(body, status_code=200 if slot else 503)

    async def version(request: Request) -> Response:
        slot = manager.slot
        return JSONResponse({"model_name": config.model_name, "model_version": slot.version if slot else None,
                             "mlflow_version": mlflow.__version__})

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def reload(request: Request) -> Response:
        if not config.admin_token:
            return _error(403, "admin endpoints are disabled: set MLOPS_ADMIN_TOKEN to enable them")
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not token:
            return _error(401, "admin endpoints need 'Authorization: Bearer <MLOPS_ADMIN_TOKEN>'")
        if not hmac.compare_digest(token.encode(), config.admin_token.encode()):
            return _error(403, "invalid admin token")
        served = manager.refresh(force=True)
        return JSONResponse({"model_version": served, "last_error": manager.last_error})

    return Starlette(routes=[
        Route("/invocations", invocations, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/admin/reload", reload, methods=["POST"]),
    ], lifespan=lifespan)


def _server(config: GatewayConfig) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(create_app(config), host=config.host, port=config.port, log_level="warning",
                                         access_log=False, lifespan="on", timeout_graceful_shutdown=5))


class GatewayThread:
    """The gateway on a background thread (tests, the in-process demo); port 0 picks a free port."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((config.host, config.port))
        self._server = _server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 60) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the gateway did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def wait_for_version(self, version: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/version", timeout=2).json().get("model_version") == str(version):
                    return True
            time.sleep(0.1)
        return False


def run_gateway(config: GatewayConfig) -> None:
    """Foreground server for ``mlops serve``."""
    print(f"serving {config.model_name}@{CHAMPION} on http://{config.host}:{config.port}", flush=True)
    _server(config).run()
