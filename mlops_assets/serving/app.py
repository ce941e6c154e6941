"""The gateway's HTTP face: MLflow's scoring protocol, feedback, health, metrics and the admin endpoints.

Every prediction (champion, canary or shadow, answered or failed) is queued to the prediction log by a
background writer, so the disk never sits on the request path. Large bodies are decoded on a thread, keeping
the event loop responsive. The admin endpoints (``MLOPS_ADMIN_TOKEN``) re-read the registry now, or set the
canary's share there first: the registry stays the only state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.metadata import version as distribution_version

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlops_assets.core.contracts import CANARY, CHAMPION, SHADOW
from mlops_assets.core.deployment import route_to_canary
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog, prediction_line
from mlops_assets.core.registry_view import NoCanaryError, RegistryError
from mlops_assets.serving import protocol
from mlops_assets.serving.batching import Answer, Batcher
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.feedback import SERVED_WINDOW_DAYS, ServedRequests, parse_feedback
from mlops_assets.serving.metrics import Metrics
from mlops_assets.serving.models import ModelManager, Slot

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 256 * 1024  # bodies above this are decoded on a thread, keeping the event loop responsive
ADMIN_BODY_BYTES = 4096  # admin requests are a few fields
MLFLOW_VERSION = distribution_version("mlflow")  # from its package metadata: importing MLflow takes seconds


_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                409: "RESOURCE_CONFLICT",
                413: "BAD_REQUEST", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}


def _error(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    """MLflow's error shape, so MLflow clients report the message."""
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error_code": _ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": message},
                        status_code=status, headers=headers)


def _token_refusal(request: Request, expected: str, what: str) -> Response | None:
    """None when the request carries ``expected`` as its bearer token, else the 401 that refuses it."""
    auth = request.headers.get("authorization", "")
    token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else ""
    # Digests have one length, so the constant-time comparison does not reveal the token's length either.
    if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), hashlib.sha256(expected.encode()).digest()):
        refusal = _error(401, f"{what} need 'Authorization: Bearer <{_TOKEN_VARS[what]}>'; the token is "
                              f"{'wrong' if token else 'missing'}")
        refusal.headers["WWW-Authenticate"] = "Bearer"
        return refusal
    return None


_TOKEN_VARS = {"admin endpoints": "MLOPS_ADMIN_TOKEN", "labels": "MLOPS_FEEDBACK_TOKEN"}


def _admin_refusal(request: Request, expected: str | None) -> Response | None:
    """None when the request carries the admin token, else the answer that refuses it."""
    if not expected:
        return _error(403, "admin endpoints are disabled: set MLOPS_ADMIN_TOKEN to enable them")
    return _token_refusal(request, expected, "admin endpoints")


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



class Gateway:
    """One gateway instance: its model manager, batcher, metrics and logs; the route handlers are its methods."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.manager = ModelManager(config)
        self.metrics = Metrics(config.metrics_dir)
        self.batcher = Batcher(on_calls=self.metrics.predict_calls)
        self.logs: dict[str, JsonlLog] = {}
        self.served = ServedRequests(config.log_root)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.logs[PREDICTIONS] = JsonlLog(self.config.log_root, PREDICTIONS)
        self.logs[FEEDBACK] = JsonlLog(self.config.log_root, FEEDBACK)
        self.manager.start()
        yield
        self.manager.stop()
        self.batcher.close()
        for log in self.logs.values():
            log.close()

    def log(self, rid: str, slot: Slot, name: str, rows: protocol.Rows, answer: Answer | None,
            started: float, error: Exception | None = None) -> None:
        """Queue the prediction line (encoded here: a few microseconds, less than handing it to a thread); a
        classifier's probabilities are logged whether or not they were asked for."""
        probabilities = answer.probabilities if answer else None
        self.logs[PREDICTIONS].write(prediction_line(
            rid, model_name=self.config.model_name, model_version=slot.version, slot=name,
            columns=rows.log_columns(), data=rows.records(), outputs=answer.outputs if answer else [],
            latency_ms=round((time.perf_counter() - started) * 1000, 3), probabilities=probabilities,
            classes=list(slot.predictor.classes) if probabilities is not None else None,
            error=f"{type(error).__name__}: {error}" if error is not None else None))
        self.served.add(rid)

    async def predict_as(self, slot: Slot, name: str, rid: str, table: protocol.Table, rows: protocol.Rows,
                         schema: protocol.InputSchema, started: float) -> Answer | None:
        """A canary's or shadow's answer; None if it fails (its failure is logged evidence, never the reply).

        ``rows`` were checked against ``schema`` (the champion's); a version with other columns re-checks.
        """
        try:
            own = rows if slot.schema == schema else protocol.validate(table, slot.schema)
            answer = await self.batcher.predict(slot, own)
        except Exception as exc:  # bad rows for this version or a failing model: both are evidence
            self.log(rid, slot, name, rows, None, started, exc)
            self.metrics.observe(slot.version, "error")
            return None
        self.log(rid, slot, name, own, answer, started)
        return answer

    async def shadow(self, rid: str, slot: Slot, table: protocol.Table, rows: protocol.Rows,
                     schema: protocol.InputSchema) -> None:
        """Runs after the response went out: the shadow's answer is logged, never returned."""
        await self.predict_as(slot, SHADOW, rid, table, rows, schema, time.perf_counter())

    async def invocations(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = request.headers.get("x-request-id") or os.urandom(16).hex()  # uuid4().hex's shape, a tenth the cost
        if not protocol.valid_request_id(rid):
            return _error(400, "X-Request-ID must be 1-128 characters of letters, digits, '.', '_', ':', '-'")
        routing = self.manager.routing
        champion = routing.champion
        if champion is None:
            self.metrics.observe("none", "unavailable")
            return _error(503, f"no model loaded yet: {self.manager.last_error or 'loading'}", rid)
        try:
            body = await _read_body(request, self.config.max_request_bytes)
            ctype = request.headers.get("content-type")
            if len(body) > OFFLOAD_BYTES:
                table = await asyncio.to_thread(protocol.read_table, body, ctype, champion.schema)
            else:
                table = protocol.read_table(body, ctype, champion.schema)
            rows = protocol.validate(table, champion.schema)
            proba = protocol.predict_method(table.params) == protocol.PREDICT_PROBA
            if proba and champion.predictor.classes is None:
                raise protocol.ProtocolError(400, f"model v{champion.version} gives no class probabilities (a "
                                                  "regressor, or a classifier without predict_proba); leave out "
                                                  f"'params.{protocol.PREDICT_METHOD}'")
        except protocol.ProtocolError as exc:
            self.metrics.observe(champion.version, "bad_request")
            return _error(exc.status, exc.message, rid)
        slot, name, answer = champion, CHAMPION, None
        canary = routing.canary
        if canary is not None and routing.release_mode == CANARY and \
                route_to_canary(request.headers.get("x-entity-id") or rid, routing.canary_percent):
            answer = await self.predict_as(canary, CANARY, rid, table, rows, champion.schema, started)
            if proba and answer is not None and answer.probabilities is None:
                answer = None  # this canary cannot give what was asked: the champion answers (both are logged)
            slot, name = (canary, CANARY) if answer is not None else (champion, CHAMPION)
        if answer is None:
            try:
                answer = await self.batcher.predict(champion, rows)
            except Exception as exc:  # like MLflow: the model could not score these rows, a 400 that says why
                self.log(rid, champion, CHAMPION, rows, None, started, exc)
                self.metrics.observe(champion.version, "model_error")
                return _error(400, f"model v{champion.version} could not score the input: "
                                   f"{type(exc).__name__}: {exc}", rid)
            self.log(rid, champion, CHAMPION, rows, answer, started)
        self.metrics.observe(slot.version, "ok", time.perf_counter() - started, rows.n)
        background = None
        if canary is not None and routing.release_mode == SHADOW:
            background = BackgroundTask(self.shadow, rid, canary, table, rows, champion.schema)
        headers = {"X-Request-ID": rid, "X-Model-Version": slot.version, "X-Model-Slot": name}
        body = {"predictions": answer.probabilities, "classes": list(slot.predictor.classes)} if proba else \
            {"predictions": answer.outputs}
        return Response(orjson.dumps(body), media_type="application/json", headers=headers, background=background)

    async def feedback(self, request: Request) -> Response:
        """Labels by request id (for requests this gateway served: else 404) or by the data's own id."""
        if self.config.feedback_token:
            refused = _token_refusal(request, self.config.feedback_token, "labels")
            if refused is not None:
                self.metrics.feedback("unauthorized")
                return refused
        try:
            payload = json.loads(await _read_body(request, self.config.max_request_bytes))
            by_request, by_id = parse_feedback(payload)
            if by_id and not self.config.id_column:
                raise protocol.ProtocolError(400, "labels by 'id' need the dataset spec's id_column, and this "
                                                  "gateway's spec names none; send labels by 'request_id'")
        except protocol.ProtocolError as exc:
            self.metrics.feedback("bad_request")
            return _error(exc.status, exc.message)
        except (ValueError, RecursionError) as exc:
            self.metrics.feedback("bad_request")
            return _error(400, f"body is not valid JSON: {exc}")
        unknown = self.served.forgotten([r["request_id"] for r in by_request])
        if unknown:  # not in memory: the log on disk may know them (a restart, another replica)
            unknown = await asyncio.to_thread(self.served.unknown, unknown)
        if unknown:
            self.metrics.feedback("unknown_request", len(unknown))
            return _error(404, f"{len(unknown)} request id(s) this gateway never served (within the last "
                               f"{SERVED_WINDOW_DAYS} days): {unknown[:5]}; no label was stored. Labels for older "
                               "or batch predictions go by the data's id: {\"id\": ..., \"label\": ...}")
        now = datetime.now(UTC).isoformat()
        for record in by_request:
            self.logs[FEEDBACK].write({**record, "ts": now})
        if by_id:
            ids, labels = zip(*by_id, strict=True)
            self.logs[FEEDBACK].write({"ts": now, "id_column": self.config.id_column, "ids": list(ids),
                                       "labels": list(labels), "source": "gateway"})
        self.metrics.feedback("accepted")
        body = {"accepted": len(by_request) + len(by_id)}
        if by_id:
            body["by_id"] = len(by_id)
        return JSONResponse(body)

    async def ping(self, request: Request) -> Response:
        ok = self.manager.routing.champion is not None
        return PlainTextResponse("\n" if ok else "no model loaded\n", status_code=200 if ok else 503)

    async def health(self, request: Request) -> Response:
        routing = self.manager.routing
        slot, canary = routing.champion, routing.canary
        version = slot.version if slot else None
        body = {"status": "ok" if slot else "unavailable", "model_name": self.config.model_name,
                "model_version": version, "loaded_at": slot.loaded_at if slot else None,
                "last_error": self.manager.last_error,
                "slots": {CHAMPION: version, CANARY: canary.version if canary else None},
                "release_mode": routing.release_mode if canary else None,
                "canary_percent": routing.canary_percent if canary else 0.0,
                "pid": os.getpid()}  # which worker answered, with `mlops serve --workers N`
        return JSONResponse(body, status_code=200 if slot else 503)

    async def version(self, request: Request) -> Response:
        slot = self.manager.routing.champion
        return JSONResponse({"model_name": self.config.model_name,
                             "model_version": slot.version if slot else None,
                             "mlflow_version": MLFLOW_VERSION})

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def reload(self, request: Request) -> Response:
        refused = _admin_refusal(request, self.config.admin_token)
        if refused is not None:
            return refused
        served = await asyncio.to_thread(self.manager.refresh, True)
        return JSONResponse({"model_version": served, "last_error": self.manager.last_error})

    async def traffic(self, request: Request) -> Response:
        """Set the running canary's share of traffic: in the registry first, then in this gateway's routing."""
        refused = _admin_refusal(request, self.config.admin_token)
        if refused is not None:
            return refused
        try:
            percent = _share(await _read_body(request, ADMIN_BODY_BYTES))
            version = await asyncio.to_thread(self.manager.set_canary_percent, percent)
        except protocol.ProtocolError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, str(exc))
        except NoCanaryError as exc:
            return _error(409, str(exc))
        except RegistryError as exc:  # e.g. a READ-only registry account: nothing changed
            return _error(502, f"the registry refused the change: {exc.message}")
        routing = self.manager.routing
        return JSONResponse({"canary_version": version, "canary_percent": routing.canary_percent,
                             "slots": {CHAMPION: routing.champion.version if routing.champion else None,
                                       CANARY: routing.canary.version if routing.canary else None},
                             "last_error": self.manager.last_error})

    async def server_error(self, request: Request, exc: Exception) -> Response:
        rid = request.headers.get("x-request-id")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", rid)


class _LeanInvocations:
    """``POST /invocations`` straight to its handler, past Starlette's middleware stack and router (a tenth of
    a request's time under load, measured by ``benchmarks/serving.py``); every other request, and the
    lifespan, goes through the Starlette app. An unexpected error is answered and logged as the app does."""

    def __init__(self, app: Starlette, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/invocations" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.gateway.invocations(request)
        except Exception as exc:  # a bug, not a bad request: the 500 in MLflow's shape, and the trace in the log
            log.exception("unexpected error in /invocations")
            response = await self.gateway.server_error(request, exc)
        await response(scope, receive, send)


def create_app(config: GatewayConfig) -> ASGIApp:
    gateway = Gateway(config)
    app = Starlette(routes=[
        Route("/invocations", gateway.invocations, methods=["POST"]),
        Route("/feedback", gateway.feedback, methods=["POST"]),
        Route("/ping", gateway.ping, methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/version", gateway.version, methods=["GET"]),
        Route("/metrics", gateway.prometheus, methods=["GET"]),
        Route("/admin/reload", gateway.reload, methods=["POST"]),
        Route("/admin/traffic", gateway.traffic, methods=["PUT"]),
    ], lifespan=gateway.lifespan, exception_handlers={Exception: gateway.server_error})
    return _LeanInvocations(app, gateway)
