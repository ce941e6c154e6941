"""What the gateway serves: the registry's ``champion`` (and ``canary``), loaded off the request path, hot-swapped.

The model is resolved from the registry alias (never from memory), downloaded and loaded completely off the
request path, warmed up on its input example, then swapped in with one reference assignment: a request sees
the old model or the new one, never half of each. A version that fails to load never replaces the serving
one; ``/health`` says why. A ``canary`` alias (with its split in registered-model tags) gets a share of the
traffic, or a copy of all of it in shadow mode. The registry stays the only state, so a restarted gateway comes
back as it was.

Speed: the raw scikit-learn pipeline is served (no pyfunc) and the signature is compiled once per model.
Start-up and polls never import MLflow on the platform's stores: aliases, tags and artifact locations are read
by ``core.registry_view`` (the SQLite registry read-only, an MLflow server through its REST API) and a model on
this machine's disk is read in place (``serving.loading``); other stores go through MLflow's client, as do
the canary-share writes. This is the one serving module that talks to the registry.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from mlops_assets import settings
from mlops_assets.core import registry_view
from mlops_assets.core.contracts import CANARY, CANARY_PERCENT_TAG, CHAMPION, RELEASE_MODE_TAG
from mlops_assets.core.probabilities import Predicted, Predictor
from mlops_assets.serving import protocol
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.fastpath import FastPipeline, compile_pipeline
from mlops_assets.serving.loading import load_version

RETRY_FAILED_SECONDS = 60.0  # a version that failed to load is tried again after this (the cause may pass)


@dataclass(frozen=True)
class Slot:
    """One loaded model version with its compiled signature and what it says about classes (``predictor``:
    probabilities once per call for classifiers), and its preprocessing compiled to numpy when it is one of the
    platform's shapes (``fast``); immutable, so sharing it needs no lock."""

    version: str
    model: Any
    schema: protocol.InputSchema
    loaded_at: str
    fast: FastPipeline | None = field(default=None, compare=False, repr=False)  # see serving/fastpath.py
    predictor: Predictor = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictor", Predictor.of(self.model))

    def predict(self, parts: Sequence[protocol.Rows]) -> Predicted:
        """The model's answer for the rows of requests checked against this slot's schema."""
        if self.fast is not None:
            return self.fast.predict(parts)
        return self.predictor.predict(protocol.Rows.concat(parts))


@dataclass(frozen=True)
class Routing:
    """What is served right now. Replaced as a whole, so a request reads one consistent view."""

    champion: Slot | None = None
    canary: Slot | None = None
    canary_percent: float = 0.0
    release_mode: str = CANARY  # "canary": answers a share of traffic; "shadow": sees a copy, never answers


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
        self._reader: registry_view.RegistryReader | None = None
        self._writes: Any = None  # core.registry.ModelRegistry, made on first use: it imports MLflow
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

    def _registry(self) -> registry_view.RegistryReader:
        """The MLflow-free reader when it answers as MLflow would, kept once found; else MLflow's client, and
        the fast reader is tried again at the next poll (a SQLite store that did not exist yet)."""
        if self._reader is None:
            self._reader = registry_view.fast_reader(
                self.config.registry_uri, self.config.model_name, auth=settings.mlflow_http_auth(),
                customised=settings.mlflow_http_customised())
        return self._reader or registry_view.ClientReader(self._registry_writes())

    def _registry_writes(self) -> Any:
        """The platform's own registry writes (under its lock), with this gateway's URIs."""
        if self._writes is None:
            from mlops_assets.core.registry import ModelRegistry  # imports MLflow: only when needed

            self._writes = ModelRegistry(
                tracking_uri=self.config.tracking_uri, registry_uri=self.config.registry_uri,
                model_name=self.config.model_name,
                lock_dir=self.config.lock_dir or str(Path(tempfile.gettempdir()) / "mlops-locks"))
        return self._writes

    def refresh(self, force: bool = False) -> str | None:
        """Load what the aliases point at if it is new; returns the champion version served afterwards.

        ``force`` retries a version that failed to load without waiting for its retry time.
        """
        with self._lock:
            try:
                state = self._registry().state()
            except Exception as exc:  # registry unreachable: keep serving what we have
                self._registry_error = f"registry unreachable: {type(exc).__name__}: {exc}"
                self._reader = None  # the next poll checks the store afresh (e.g. a schema migrated meanwhile)
                return self._served()
            self._registry_error = None
            champion, canary = state.aliases.get(CHAMPION), state.aliases.get(CANARY)
            tags = state.tags if canary else {}
            self._wanted = (champion, canary)
            current = self.routing
            new_champion = self._get(champion, force) if champion else None
            new_canary = self._get(canary, force) if canary and canary != champion else None
            self.routing = Routing(new_champion or current.champion, new_canary, _percent(tags),
                                   tags.get(RELEASE_MODE_TAG, CANARY))
            self._evict()
            return self._served()

    def set_canary_percent(self, percent: float) -> str:
        """Write the canary's share to the registry, then route by it here at once (other replicas follow at
        their next poll); returns the canary version. Raises NoCanaryError, ValueError for a bad share, or
        RegistryError when the registry refuses the write."""
        from mlflow.exceptions import MlflowException  # the registry writes are MLflow's client

        try:
            version = self._registry_writes().set_canary_percent(percent)
        except MlflowException as exc:
            raise registry_view.RegistryError(exc.error_code, exc.message) from exc
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
        """Load the raw sklearn model from where the registry keeps this version (read in place when on this
        machine, else downloaded with this gateway's own URIs), and prove it predicts on its own input example
        before it may serve."""
        files = load_version(self._registry().download_uri(version), tracking_uri=self.config.tracking_uri,
                             registry_uri=self.config.registry_uri)
        kept = (self.config.id_column, self.config.timestamp_column)  # logged with the rows when sent
        schema = replace(files.schema, logged=tuple(dict.fromkeys(c for c in kept if c)))
        slot = Slot(version, files.model, schema, datetime.now(UTC).isoformat(timespec="seconds"),
                    compile_pipeline(files.model, schema, files.example))
        if files.example is not None:  # the very call serving makes, on one thread as there (batching)
            with threadpool_limits(limits=1, user_api="openmp"):
                slot.predict([protocol.validate(protocol.Table.from_frame(files.example), schema)])
        return slot

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
                if self.config.admin_token and self._writes is None and self.routing.champion is not None:
                    # MLflow's client for the admin endpoints' writes, made once the model serves (start-up
                    # never waits for it): an operator's first write, e.g. a canary share to 0, answers at once.
                    self._registry_writes().client()
            except Exception as exc:  # a dead poller would silently end hot swaps: record and keep polling
                self._registry_error = f"poller: {type(exc).__name__}: {exc}"
            if self._stop.wait(self.config.poll_seconds):
                return


def _percent(tags: dict[str, str]) -> float:
    try:
        return float(tags.get(CANARY_PERCENT_TAG, 0) or 0)
    except ValueError:
        return 0.0
