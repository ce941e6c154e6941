"""The serving gateway: MLflow's scoring protocol over the registry's `champion`, hot-swapped in place.

The model is resolved from the registry alias (never from memory), downloaded and loaded completely off the
request path, warmed up on its input example, then swapped in with one reference assignment: a request sees
the old model or the new one, never half of each. A version that fails to load never replaces the serving
one; ``/health`` says why. A ``canary`` alias (with its split in registered-model tags) gets a share of the
traffic, or a copy of all of it in shadow mode. The admin endpoints (``MLOPS_ADMIN_TOKEN``) re-read the registry
now, or set the canary's share there first: the registry stays the only state, so a restarted gateway comes back
as it was.

Speed: the raw scikit-learn pipeline is called (no pyfunc), the signature is compiled once per model, and
concurrent requests are merged into one ``predict`` call on a worker thread, since a Pipeline costs about
the same per call for one row as for a hundred. Every prediction is queued to the prediction log by a
background writer, so the disk never sits on the request path.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import uvicorn
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlops_assets import settings
from mlops_assets.core.deployment import route_to_canary
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog
from mlops_assets.serving import protocol
from resources.tracking import CANARY_PERCENT_TAG, RELEASE_MODE_TAG, MlflowTracking, NoCanaryError

CHAMPION = "champion"
CANARY = "canary"
SHADOW = "shadow"
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds
MAX_BATCH_ROWS = 4096  # rows merged into one predict call; a bigger request still goes alone
BATCH_WINDOW_SECONDS = 0.002  # the longest a call waits for the requests it expects (see Batcher)
OFFLOAD_BYTES = 256 * 1024  # bodies above this are decoded on a thread, keeping the event loop responsive
RETRY_FAILED_SECONDS = 60.0  # a version that failed to load is tried again after this (the cause may pass)
ADMIN_BODY_BYTES = 4096  # admin requests are a few fields
_NO_ALIAS = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # MLflow's codes for a missing model/alias


@dataclass
class GatewayConfig:
    model_name: str
    tracking_uri: str
    registry_uri: str
    log_root: str | Path  # a local path or an fsspec URL (MLOPS_PREDICTION_LOG_URL)
    host: str = "127.0.0.1"
    port: int = 5005
    poll_seconds: float = 2.0
    admin_token: str | None = None
    max_request_bytes: int = 10 * 1024 * 1024
    lock_dir: str | None = None  # registry writes lock here, as the platform's runs do; None: the temp directory

    @classmethod
    def from_env(cls, host: str | None = None, port: int | None = None) -> GatewayConfig:
        lay = settings.layout()
        return cls(
            model_name=settings.model_name(),
            tracking_uri=settings.tracking_uri(lay),
            registry_uri=settings.registry_uri(lay),
            log_root=settings.prediction_log_url(lay),
            host=host or "127.0.0.1",
            port=5005 if port is None else port,
            poll_seconds=float(os.environ.get("MLOPS_GATEWAY_POLL_SECONDS", "2.0")),
            admin_token=os.environ.get("MLOPS_ADMIN_TOKEN") or None,
            lock_dir=str(lay.locks),
        )


@dataclass(frozen=True)
class Slot:
    """One loaded model version with its compiled signature; immutable, so sharing it needs no lock."""

    version: str
    model: Any
    schema: protocol.InputSchema
    loaded_at: str


@dataclass(frozen=True)
class Routing:
    """What is served right now. Replaced as a whole, so a request reads one consistent view."""

    champion: Slot | None = None
    canary: Slot | None = None
    canary_percent: float = 0.0
    release_mode: str = "canary"  # "canary": answers a share of traffic; "shadow": sees a copy, never answers


class ModelManager:
    """Follows the registry aliases (``champion``; ``canary`` with its split) and keeps good models loaded.

    Recently served versions stay loaded, so a rollback to the previous champion swaps instantly.
    """

    KEEP_LOADED = 3

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.routing = Routing()
        self._loaded: dict[str, Slot] = {}  # least recently wanted first
        self._errors: dict[str, tuple[str, float]] = {}  # version -> (why it failed, when to try again)
        self._wanted: tuple[str | None, str | None] = (None, None)
        self._registry_error: str | None = None
        self._client: mlflow.MlflowClient | None = None
        self._tracking = MlflowTracking(  # the platform's own registry writes, under its lock
            tracking_uri=config.tracking_uri, registry_uri=config.registry_uri,
            experiment=settings.experiment_name(), model_name=config.model_name,
            lock_dir=config.lock_dir or str(Path(tempfile.gettempdir()) / "mlops-locks"))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def last_error(self) -> str | None:
        """Why the gateway does not serve what the registry asks for, or None when it does."""
        if self._registry_error:
            return self._registry_error
        champion, canary = self._wanted
        for version in (champion, canary):
            if version in self._errors:
                return self._errors[version][0]
        if champion is None and self.routing.champion is None:
            return f"no '{CHAMPION}' alias for model {self.config.model_name!r} yet"
        return None

    def _registry(self) -> mlflow.MlflowClient:
        if self._client is None:
            self._client = mlflow.MlflowClient(tracking_uri=self.config.tracking_uri,
                                               registry_uri=self.config.registry_uri)
        return self._client

    def _alias(self, client: mlflow.MlflowClient, alias: str) -> str | None:
        try:
            return str(client.get_model_version_by_alias(self.config.model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in _NO_ALIAS:
                return None
            raise

    def refresh(self, force: bool = False) -> str | None:
        """Load what the aliases point at if it is new; returns the champion version served afterwards.

        ``force`` retries a version that failed to load without waiting for its retry time.
        """
        with self._lock:
            try:
                client = self._registry()
                champion = self._alias(client, CHAMPION)
                canary = self._alias(client, CANARY)
                tags = client.get_registered_model(self.config.model_name).tags if canary else {}
            except Exception as exc:  # registry unreachable: keep serving what we have
                self._registry_error = f"registry unreachable: {type(exc).__name__}: {exc}"
                return self._served()
            self._registry_error = None
            self._wanted = (champion, canary)
            current = self.routing
            new_champion = self._get(champion, force) if champion else None
            new_canary = self._get(canary, force) if canary and canary != champion else None
            self.routing = Routing(new_champion or current.champion, new_canary, _percent(tags),
                                   tags.get(RELEASE_MODE_TAG, "canary"))
            self._evict()
            return self._served()

    def set_canary_percent(self, percent: float) -> str:
        """Write the canary's share to the registry, then route by it here at once (other replicas follow at
        their next poll); returns the canary version. Raises NoCanaryError, or ValueError for a bad share."""
        version = self._tracking.set_canary_percent(percent)
        self.refresh()
        return version

    def _served(self) -> str | None:
        return self.routing.champion.version if self.routing.champion else None

    def _get(self, version: str, force: bool) -> Slot | None:
        """A loaded slot for ``version``: from memory, or loaded now; None (error recorded) if it fails."""
        if version in self._loaded:
            self._loaded[version] = self._loaded.pop(version)  # most recently wanted last
            return self._loaded[version]
        failed = self._errors.get(version)
        if failed and not force and time.monotonic() < failed[1]:
            return None
        try:
            slot = self._load(version)
        except Exception as exc:  # any load failure keeps the serving model; /health says why
            self._errors[version] = (f"v{version} failed to load: {type(exc).__name__}: {exc}",
                                     time.monotonic() + RETRY_FAILED_SECONDS)
            return None
        self._errors.pop(version, None)
        self._loaded[version] = slot
        return slot

    def _evict(self) -> None:
        keep = {s.version for s in (self.routing.champion, self.routing.canary) if s}
        spare = [v for v in self._loaded if v not in keep]
        for version in spare[: max(0, len(self._loaded) - self.KEEP_LOADED)]:
            del self._loaded[version]

    def _load(self, version: str) -> Slot:
        """Download with this gateway's own URIs (never the process-global ones), load the raw sklearn model,
        and prove it predicts on its own input example before it may serve."""
        client = self._registry()
        uri = client.get_model_version_download_uri(self.config.model_name, version)
        with tempfile.TemporaryDirectory(prefix="mlops-gateway-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                        tracking_uri=self.config.tracking_uri,
                                                        registry_uri=self.config.registry_uri)
            meta = Model.load(local)
            schema = protocol.InputSchema.from_signature(meta.signature)
            model = mlflow.sklearn.load_model(local)
            example = meta.load_input_example(local)
        if isinstance(example, pd.DataFrame):
            model.predict(protocol.conform(example, schema))
        return Slot(version, model, schema, datetime.now(UTC).isoformat(timespec="seconds"))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # a dead poller would silently end hot swaps: record and keep polling
                self._registry_error = f"poller: {type(exc).__name__}: {exc}"
            if self._stop.wait(self.config.poll_seconds):
                return


def _percent(tags: dict[str, str]) -> float:
    try:
        return float(tags.get(CANARY_PERCENT_TAG, 0) or 0)
    except ValueError:
        return 0.0


@dataclass
class _Job:
    slot: Slot
    rows: protocol.Rows
    future: asyncio.Future[list[Any]]


class Batcher:
    """Runs predictions on one worker thread, merging queued requests into one call per model.

    Each call takes every request that arrived while the previous one ran. As many clients as the last call
    served are expected again (each sends its next request once answered), so a call waits up to
    ``window`` seconds for them to arrive rather than splitting them over two calls. A lone client is never
    kept waiting: its calls take one request, so one is expected. Only the event loop touches the queue.
    """

    def __init__(self, max_rows: int = MAX_BATCH_ROWS, window: float = BATCH_WINDOW_SECONDS) -> None:
        self.max_rows = max_rows
        self.window = window
        self.calls = 0
        self._pending: list[_Job] = []
        self._expected = 1
        self._enough: asyncio.Future[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict")

    async def predict(self, slot: Slot, rows: protocol.Rows) -> list[Any]:
        loop = asyncio.get_running_loop()
        job = _Job(slot, rows, loop.create_future())
        self._pending.append(job)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        elif self._enough is not None and len(self._pending) >= self._expected:
            _settle(self._enough)
        return await job.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if len(self._pending) < self._expected:
                    self._enough = loop.create_future()
                    timer = loop.call_later(self.window, _settle, self._enough)
                    await self._enough
                    timer.cancel()
                    self._enough = None
                take, rows = 1, self._pending[0].rows.n
                while take < len(self._pending) and rows + self._pending[take].rows.n <= self.max_rows:
                    rows += self._pending[take].rows.n
                    take += 1
                jobs, self._pending = self._pending[:take], self._pending[take:]
                self._expected = take
                self.calls += len({id(job.slot) for job in jobs})
                try:
                    results = await loop.run_in_executor(self._executor, _predict_jobs, jobs)
                except RuntimeError as exc:  # the executor is shut down: the gateway is stopping
                    results = [exc] * len(jobs)
                for job, result in zip(jobs, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, Exception):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
        finally:
            self._drainer = None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _predict_jobs(jobs: Sequence[_Job]) -> list[list[Any] | Exception]:
    """Worker thread: one predict per model over all its jobs' rows, split back per job. If the merged call
    fails, each job is predicted alone, so only the request whose rows break the model gets the error."""
    results: list[list[Any] | Exception] = [[] for _ in jobs]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[id(job.slot)].append(i)
    for members in groups.values():
        model = jobs[members[0]].slot.model
        try:
            outputs = protocol.jsonable(model.predict(protocol.Rows.concat([jobs[i].rows for i in members])))
            if len(outputs) != sum(jobs[i].rows.n for i in members):
                raise ValueError(f"the model returned {len(outputs)} predictions for a batch of requests")
        except Exception as exc:
            if len(members) == 1:
                results[members[0]] = exc
                continue
            for i in members:
                try:
                    results[i] = protocol.jsonable(model.predict(jobs[i].rows.frame()))
                except Exception as single:  # this request's rows are what the model cannot score
                    results[i] = single
            continue
        start = 0
        for i in members:
            results[i] = outputs[start:start + jobs[i].rows.n]
            start += jobs[i].rows.n
    return results


@dataclass
class Metrics:
    """Prometheus counters and latency histograms per model version, written by hand (no dependency).

    Only the event loop thread updates them.
    """

    requests: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[str, list[int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def observe(self, version: str, status: str, seconds: float = 0.0, rows: int = 0) -> None:
        self.requests[(version, status)] += 1
        if status == "ok":
            counts = self.buckets.setdefault(version, [0] * (len(LATENCY_BUCKETS) + 1))
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # per bucket; cumulated when rendered
            self.latency_sum[version] += seconds
            self.rows[version] += rows

    def render(self, predict_calls: int) -> str:
        lines = ["# HELP mlops_requests_total Scoring requests by model version and outcome.",
                 "# TYPE mlops_requests_total counter"]
        for (version, status), n in sorted(self.requests.items()):
            lines.append(f'mlops_requests_total{{model_version="{version}",status="{status}"}} {n}')
        lines += ["# HELP mlops_predicted_rows_total Rows predicted by model version.",
                  "# TYPE mlops_predicted_rows_total counter"]
        lines += [f'mlops_predicted_rows_total{{model_version="{v}"}} {n}'
                  for v, n in sorted(self.rows.items())]
        lines += ["# HELP mlops_predict_calls_total Model calls: fewer than requests when they are batched.",
                  "# TYPE mlops_predict_calls_total counter", f"mlops_predict_calls_total {predict_calls}"]
        name = "mlops_request_latency_seconds"
        lines += [f"# HELP {name} Scoring latency of successful requests by model version.",
                  f"# TYPE {name} histogram"]
        for version, counts in sorted(self.buckets.items()):
            label = f'model_version="{version}"'
            cumulative = list(itertools.accumulate(counts))
            for bound, n in zip((*LATENCY_BUCKETS, "+Inf"), cumulative, strict=True):
                lines.append(f'{name}_bucket{{{label},le="{bound}"}} {n}')
            lines.append(f"{name}_sum{{{label}}} {self.latency_sum[version]}")
            lines.append(f"{name}_count{{{label}}} {cumulative[-1]}")
        return "\n".join(lines) + "\n"


_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 409: "RESOURCE_CONFLICT",
                413: "BAD_REQUEST", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}


def _error(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    """MLflow's error shape, so MLflow clients report the message."""
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error_code": _ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": message},
                        status_code=status, headers=headers)


def _admin_refusal(request: Request, expected: str | None) -> Response | None:
    """None when the request carries the admin token, else the answer that refuses it."""
    if not expected:
        return _error(403, "admin endpoints are disabled: set MLOPS_ADMIN_TOKEN to enable them")
    auth = request.headers.get("authorization", "")
    token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else ""
    # Digests have one length, so the constant-time comparison does not reveal the token's length either.
    if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), hashlib.sha256(expected.encode()).digest()):
        refusal = _error(401, "admin endpoints need 'Authorization: Bearer <MLOPS_ADMIN_TOKEN>'; the token is "
                              f"{'wrong' if token else 'missing'}")
        refusal.headers["WWW-Authenticate"] = "Bearer"
        return refusal
    return None


def _share(body: bytes) -> float:
    """The canary share of an admin request, ``{"canary_percent": 0-100}``; the range is the registry's rule."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise protocol.ProtocolError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or set(payload) != {"canary_percent"}:
        got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise protocol.ProtocolError(400, f"the body must be an object with exactly the field 'canary_percent' "
                                          f"(a number from 0 to 100); got {got}")
    percent = payload["canary_percent"]
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise protocol.ProtocolError(400, f"'canary_percent' must be a number from 0 to 100, got {percent!r}")
    return float(percent)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        protocol.check_size(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        protocol.check_size(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: GatewayConfig) -> Starlette:
    manager = ModelManager(config)
    batcher = Batcher()
    metrics = Metrics()
    logs: dict[str, JsonlLog] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logs[PREDICTIONS] = JsonlLog(config.log_root, PREDICTIONS)
        logs[FEEDBACK] = JsonlLog(config.log_root, FEEDBACK)
        manager.start()
        yield
        manager.stop()
        batcher.close()
        for log in logs.values():
            log.close()

    def log(rid: str, slot: Slot, name: str, rows: protocol.Rows, outputs: list[Any] | None, started: float,
            error: Exception | None = None) -> None:
        record = {"request_id": rid, "ts": datetime.now(UTC).isoformat(), "model_name": config.model_name,
                  "model_version": slot.version, "slot": name, "columns": list(rows.arrays),
                  "data": rows.records(), "outputs": outputs or [],
                  "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        if error is not None:
            record["error"] = f"{type(error).__name__}: {error}"
        logs[PREDICTIONS].write(record)

    async def predict_as(slot: Slot, name: str, rid: str, table: protocol.Table, rows: protocol.Rows,
                         schema: protocol.InputSchema, started: float) -> list[Any] | None:
        """A canary's or shadow's answer; None if it fails (its failure is logged evidence, never the reply).

        ``rows`` were checked against ``schema`` (the champion's); a version with other columns re-checks.
        """
        try:
            own = rows if slot.schema == schema else protocol.validate(table, slot.schema)
            outputs = await batcher.predict(slot, own)
        except Exception as exc:  # bad rows for this version or a failing model: both are evidence
            log(rid, slot, name, rows, None, started, exc)
            metrics.observe(slot.version, "error")
            return None
        log(rid, slot, name, own, outputs, started)
        return outputs

    async def shadow(rid: str, slot: Slot, table: protocol.Table, rows: protocol.Rows,
                     schema: protocol.InputSchema) -> None:
        """Runs after the response went out: the shadow's answer is logged, never returned."""
        await predict_as(slot, SHADOW, rid, table, rows, schema, time.perf_counter())

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        if not protocol.valid_request_id(rid):
            return _error(400, "X-Request-ID must be 1-128 characters of letters, digits, '.', '_', ':', '-'")
        routing = manager.routing
        champion = routing.champion
        if champion is None:
            metrics.observe("none", "unavailable")
            return _error(503, f"no model loaded yet: {manager.last_error or 'loading'}", rid)
        try:
            body = await _read_body(request, config.max_request_bytes)
            ctype = request.headers.get("content-type")
            if len(body) > OFFLOAD_BYTES:
                table = await asyncio.to_thread(protocol.read_table, body, ctype, champion.schema)
            else:
                table = protocol.read_table(body, ctype, champion.schema)
            rows = protocol.validate(table, champion.schema)
        except protocol.ProtocolError as exc:
            metrics.observe(champion.version, "bad_request")
            return _error(exc.status, exc.message, rid)
        slot, name, outputs = champion, CHAMPION, None
        canary = routing.canary
        if canary is not None and routing.release_mode == CANARY and \
                route_to_canary(request.headers.get("x-entity-id") or rid, routing.canary_percent):
            outputs = await predict_as(canary, CANARY, rid, table, rows, champion.schema, started)
            slot, name = (canary, CANARY) if outputs is not None else (champion, CHAMPION)
        if outputs is None:
            try:
                outputs = await batcher.predict(champion, rows)
            except Exception as exc:  # like MLflow: the model could not score these rows, a 400 that says why
                log(rid, champion, CHAMPION, rows, None, started, exc)
                metrics.observe(champion.version, "model_error")
                return _error(400, f"model v{champion.version} could not score the input: "
                                   f"{type(exc).__name__}: {exc}", rid)
            log(rid, champion, CHAMPION, rows, outputs, started)
        metrics.observe(slot.version, "ok", time.perf_counter() - started, rows.n)
        background = None
        if canary is not None and routing.release_mode == SHADOW:
            background = BackgroundTask(shadow, rid, canary, table, rows, champion.schema)
        headers = {"X-Request-ID": rid, "X-Model-Version": slot.version, "X-Model-Slot": name}
        return JSONResponse({"predictions": outputs}, headers=headers, background=background)

    async def feedback(request: Request) -> Response:
        try:
            payload = json.loads(await _read_body(request, config.max_request_bytes))
        except protocol.ProtocolError as exc:
            return _error(exc.status, exc.message)
        except (ValueError, RecursionError) as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        items = payload if isinstance(payload, list) else [payload]
        records = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not protocol.valid_request_id(item.get("request_id")):
                return _error(400, f"feedback item {i}: needs a valid 'request_id' (the X-Request-ID of the "
                                   "prediction)")
            labels = item.get("labels", [item["label"]] if "label" in item else None)
            if not isinstance(labels, list) or not labels:
                return _error(400, f"feedback item {i}: needs 'labels' (one per row of its request)")
            records.append({"request_id": item["request_id"], "labels": labels,
                            "ts": datetime.now(UTC).isoformat()})
        for record in records:
            logs[FEEDBACK].write(record)
        return JSONResponse({"accepted": len(records)})

    async def ping(request: Request) -> Response:
        ok = manager.routing.champion is not None
        return PlainTextResponse("\n" if ok else "no model loaded\n", status_code=200 if ok else 503)

    async def health(request: Request) -> Response:
        routing = manager.routing
        slot, canary = routing.champion, routing.canary
        version = slot.version if slot else None
        body = {"status": "ok" if slot else "unavailable", "model_name": config.model_name,
                "model_version": version, "loaded_at": slot.loaded_at if slot else None,
                "last_error": manager.last_error,
                "slots": {CHAMPION: version, CANARY: canary.version if canary else None},
                "release_mode": routing.release_mode if canary else None,
                "canary_percent": routing.canary_percent if canary else 0.0}
        return JSONResponse(body, status_code=200 if slot else 503)

    async def version(request: Request) -> Response:
        slot = manager.routing.champion
        return JSONResponse({"model_name": config.model_name, "model_version": slot.version if slot else None,
                             "mlflow_version": mlflow.__version__})

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(batcher.calls), media_type="text/plain; version=0.0.4")

    async def reload(request: Request) -> Response:
        refused = _admin_refusal(request, config.admin_token)
        if refused is not None:
            return refused
        served = await asyncio.to_thread(manager.refresh, True)
        return JSONResponse({"model_version": served, "last_error": manager.last_error})

    async def traffic(request: Request) -> Response:
        """Set the running canary's share of traffic: in the registry first, then in this gateway's routing."""
        refused = _admin_refusal(request, config.admin_token)
        if refused is not None:
            return refused
        try:
            percent = _share(await _read_body(request, ADMIN_BODY_BYTES))
            version = await asyncio.to_thread(manager.set_canary_percent, percent)
        except protocol.ProtocolError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, str(exc))
        except NoCanaryError as exc:
            return _error(409, str(exc))
        except MlflowException as exc:  # e.g. a READ-only registry account: nothing changed
            return _error(502, f"the registry refused the change: {exc.message}")
        routing = manager.routing
        return JSONResponse({"canary_version": version, "canary_percent": routing.canary_percent,
                             "slots": {CHAMPION: routing.champion.version if routing.champion else None,
                                       CANARY: routing.canary.version if routing.canary else None},
                             "last_error": manager.last_error})

    async def server_error(request: Request, exc: Exception) -> Response:
        rid = request.headers.get("x-request-id")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", rid)

    return Starlette(routes=[
        Route("/invocations", invocations, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/admin/reload", reload, methods=["POST"]),
        Route("/admin/traffic", traffic, methods=["PUT"]),
    ], lifespan=lifespan, exception_handlers={Exception: server_error})


def _server(config: GatewayConfig) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(create_app(config), host=config.host, port=config.port,
                                         log_level="warning", access_log=False, lifespan="on",
                                         timeout_graceful_shutdown=5))


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
        """Returns once the socket accepts connections; the model may still be loading."""
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
        """Until ``/version`` reports ``version`` as the champion served; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{self.url}/version", timeout=2).json().get("model_version") == str(version):
                    return True
            time.sleep(0.1)
        return False


def run_gateway(config: GatewayConfig) -> None:
    """Foreground server for ``mlops serve``."""
    print(f"serving {config.model_name}@{CHAMPION} on http://{config.host}:{config.port}", flush=True)
    _server(config).run()
