"""The model registry as the platform uses it: aliases, versions, lineage and the release moves (promote, canary,
rollback, approval), over MLflow's client and with no Dagster import, so the serving gateway and the CLI use it
directly.

Alias moves happen under a file lock per model, so two runs finishing together never leave two champions; each
move is appended to the audit trail (``core.audit``) under the same lock, with who made it and why.
Credentials come only from the environment (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, read by MLflow itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlops_assets import settings
from mlops_assets.core import audit, model_files
from mlops_assets.core import contracts as c
from mlops_assets.core.code_version import code_version, git_commit
from mlops_assets.core.contracts import AuditAction
from mlops_assets.core.records import AuditEntry
from mlops_assets.core.registry_view import NoCanaryError

Why = Mapping[str, Any] | None  # the audit trail's "why": Dagster run id, trigger, gate or canary evidence


@dataclass(frozen=True)
class VersionInfo:
    """A registry version with its number as a string (MLflow returns int or str depending on the store)."""

    version: str
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, mv: ModelVersion) -> VersionInfo:
        return cls(str(mv.version), mv.run_id, mv.source, dict(mv.tags or {}), list(mv.aliases or []))

    def offline_metrics(self) -> dict[str, float]:
        """The holdout metrics the version was registered with (tags ``metric.<name>``)."""
        return {k.removeprefix(c.METRIC_TAG_PREFIX): float(v) for k, v in self.tags.items()
                if k.startswith(c.METRIC_TAG_PREFIX)}


class ApprovalError(RuntimeError):
    """An approval decision that cannot be taken: the version is not waiting for one, or the user may not."""


# What the registry answers for a model or alias that does not exist; with access control a model that does not
# exist (yet) is also PERMISSION_DENIED. Anything else is a failure, never "no such version".
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"})

_READY: set[str] = set()  # tracking URIs whose store this process has already touched once


def lineage_tags(*, dataset_id: str, dagster_run_id: str, fingerprint: str, trigger: str) -> dict[str, str]:
    """What every training run and model version records about where it came from."""
    return {c.LINEAGE_DATASET: dataset_id, c.LINEAGE_RUN_ID: dagster_run_id, c.LINEAGE_CODE: code_version(),
            c.LINEAGE_COMMIT: git_commit() or "unknown", c.LINEAGE_FINGERPRINT: fingerprint,
            c.LINEAGE_TRIGGER: trigger}


def version_tags(lineage: Mapping[str, str], *, mlflow_run_id: str, gate_passed: bool,
                 metrics: Mapping[str, float]) -> dict[str, str]:
    """A model version's tags: its run's lineage, the gate verdict and the holdout metrics it passed with."""
    return {**lineage, c.LINEAGE_GATE: json.dumps(gate_passed), c.LINEAGE_MLFLOW_RUN: mlflow_run_id,
            **{f"{c.METRIC_TAG_PREFIX}{k}": f"{v:.6f}" for k, v in metrics.items()}}


class RegistryOperations:
    """Registry reads and alias moves for one registered model. Mixed into the Dagster resource
    (``resources.tracking.MlflowTracking``) and into the plain :class:`ModelRegistry`: both provide the four
    attributes below."""

    tracking_uri: str
    registry_uri: str
    model_name: str
    lock_dir: str

    def client(self) -> mlflow.MlflowClient:
        if self.tracking_uri in _READY:
            return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        # The first use of a fresh SQL store runs its schema migrations; two processes doing that at once
        # (parallel steps of one run) collide, so the first touch is serialised across processes.
        with self._file_lock("store-init"):
            client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        _READY.add(self.tracking_uri)
        return client

    def version_by_alias(self, alias: str) -> VersionInfo | None:
        """The version behind ``alias``; None only when the registry says there is none (an unreachable
        tracking server raises: "no champion" would let a candidate skip the comparison with it)."""
        try:
            return VersionInfo.of(self.client().get_model_version_by_alias(self.model_name, alias))
        except MlflowException as exc:
            self._raise_unless_absent(exc)
            return None

    def versions(self) -> list[VersionInfo]:
        try:
            found = self.client().search_model_versions(f"name='{self.model_name}'")
        except MlflowException as exc:
            self._raise_unless_absent(exc)
            return []
        return sorted((VersionInfo.of(v) for v in found), key=lambda v: int(v.version))

    def load_model(self, uri: str) -> Any:
        """The fitted model at an MLflow URI, fetched with this registry's URIs and loaded with skops only, as
        every stage loads one (``core.model_files``: a pickled model is refused, never unpickled)."""
        return model_files.load_model(uri, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def load_version(self, version: str) -> Any:
        """Registered ``version`` of this model, loaded as ``load_model`` loads any."""
        return self.load_model(f"models:/{self.model_name}/{version}")

    def _raise_unless_absent(self, exc: MlflowException) -> None:
        if exc.error_code not in _ABSENT:
            raise MlflowException(f"MLflow tracking server {self.tracking_uri} failed on model "
                                  f"{self.model_name!r}: {exc.message}") from exc

    def registry_lock(self) -> contextlib.AbstractContextManager[None]:
        """Serialise alias moves between processes on this machine (runs at scale serialise through
        Dagster's concurrency limits, see docs/scale-out.md)."""
        return self._file_lock(f"registry-{self.model_name}")

    @contextlib.contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        path = Path(self.lock_dir) / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def promote(self, version: str, *, action: str = AuditAction.PROMOTE, why: Why = None) -> str | None:
        """Make ``version`` the champion, keeping the old champion as ``previous``; returns the old one
        (None when nothing moved).

        MLflow moves one alias per call, so the order matters for a crash in between: ``previous`` is
        set first (harmless on its own), then ``champion``; a rerun of the same promotion converges.
        """
        client = self.client()
        with self.registry_lock():
            current = self.version_by_alias(c.CHAMPION)
            old = current.version if current else None
            if old == str(version):
                return None  # already serving: a rerun of a finished promotion changes nothing
            if old is not None:
                before = self.version_by_alias(c.PREVIOUS)
                client.set_registered_model_alias(self.model_name, c.PREVIOUS, old)
                self._record(action, c.PREVIOUS, before.version if before else None, old, why)
            client.set_registered_model_alias(self.model_name, c.CHAMPION, str(version))
            self._record(action, c.CHAMPION, old, str(version), why)
            challenger = self.version_by_alias(c.CHALLENGER)
            if challenger and challenger.version == str(version):
                client.delete_registered_model_alias(self.model_name, c.CHALLENGER)
            return old

    def start_canary(self, version: str, *, percent: float, mode: str, why: Why = None) -> None:
        """Put ``version`` in the canary slot: ``mode`` "canary" answers ``percent`` of traffic with it,
        "shadow" sends it a copy of all traffic and never returns its answers. Tags first, alias last, so the
        gateway never sees an alias without its split."""
        client = self.client()
        with self.registry_lock():
            client.set_registered_model_tag(self.model_name, c.CANARY_PERCENT_TAG, str(percent))
            client.set_registered_model_tag(self.model_name, c.RELEASE_MODE_TAG, mode)
            before = self.version_by_alias(c.CANARY)
            client.set_registered_model_alias(self.model_name, c.CANARY, str(version))
            self._record(AuditAction.CANARY_START, c.CANARY, before.version if before else None, str(version),
                         {**(why or {}), "mode": mode, "percent": percent})

    def set_canary_percent(self, percent: float, why: Why = None) -> str:
        """Give the running canary ``percent`` (0-100) of traffic; returns its version. Written where every
        gateway reads its split, so restarted and added replicas come back with the same share."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise ValueError(f"canary_percent must be a number from 0 to 100, got {percent!r}")
        client = self.client()
        with self.registry_lock():  # an end_canary in between must not leave a share behind for no canary
            canary = self.version_by_alias(c.CANARY)
            if canary is None:
                raise NoCanaryError(f"no canary is running for model {self.model_name!r}: start one with a "
                                    "canary deployment first")
            mode = client.get_registered_model(self.model_name).tags.get(c.RELEASE_MODE_TAG, c.CANARY)
            if mode != c.CANARY:
                raise NoCanaryError(f"v{canary.version} is a {mode} release: it sees a copy of all traffic and "
                                    "never answers, so it has no share to set")
            before = client.get_registered_model(self.model_name).tags.get(c.CANARY_PERCENT_TAG)
            client.set_registered_model_tag(self.model_name, c.CANARY_PERCENT_TAG, str(float(percent)))
            self._record(AuditAction.CANARY_SHARE, c.CANARY, canary.version, canary.version,
                         {**(why or {}), "percent_from": before, "percent_to": float(percent)})
            return canary.version

    def end_canary(self, promote: bool, why: Why = None) -> str | None:
        """Close the canary slot; with ``promote`` its version becomes champion. Returns the canary version."""
        client = self.client()
        canary = self.version_by_alias(c.CANARY)
        if canary is None:
            return None
        action = AuditAction.CANARY_PROMOTE if promote else AuditAction.CANARY_ROLLBACK
        if promote:
            self.promote(canary.version, action=action, why=why)
        with self.registry_lock():
            still = self.version_by_alias(c.CANARY)
            with contextlib.suppress(MlflowException):
                client.delete_registered_model_alias(self.model_name, c.CANARY)
            client.set_registered_model_tag(self.model_name, c.CANARY_PERCENT_TAG, "0")
            if still is not None:  # a concurrent end already closed (and recorded) it
                self._record(action, c.CANARY, still.version, None, why)
        return canary.version

    def restore(self, champion: str | None, previous: str | None, why: Why = None) -> None:
        """Put both aliases back as they were (after a deployment that failed half-way): the automatic rollback."""
        client = self.client()
        with self.registry_lock():
            for alias, version in ((c.PREVIOUS, previous), (c.CHAMPION, champion)):
                current = self.version_by_alias(alias)
                if version is None:
                    with contextlib.suppress(MlflowException):
                        client.delete_registered_model_alias(self.model_name, alias)
                else:
                    client.set_registered_model_alias(self.model_name, alias, version)
                if (current.version if current else None) != version:
                    self._record(AuditAction.RESTORE, alias, current.version if current else None, version, why)

    def rollback(self, why: Why = None) -> tuple[str, str]:
        """Champion back to ``previous`` in one step; returns (from_version, to_version)."""
        client = self.client()
        with self.registry_lock():
            current = self.version_by_alias(c.CHAMPION)
            previous = self.version_by_alias(c.PREVIOUS)
            if current is None or previous is None:
                raise RuntimeError("nothing to roll back to: the registry has no 'previous' alias "
                                   f"for model {self.model_name!r}")
            client.set_registered_model_alias(self.model_name, c.CHAMPION, previous.version)
            self._record(AuditAction.ROLLBACK, c.CHAMPION, current.version, previous.version, why)
            client.set_registered_model_alias(self.model_name, c.PREVIOUS, current.version)
            self._record(AuditAction.ROLLBACK, c.PREVIOUS, previous.version, current.version, why)
            return current.version, previous.version

    def request_approval(self, version: str, release: Mapping[str, Any], why: Why = None) -> str | None:
        """Hold ``version`` for a person's approval (it does not serve until then); ``release`` (strategy,
        canary share) is how it goes out once approved. Returns the status it already had (a rerun never undoes
        a decision, nor asks twice), None when it is newly held."""
        client = self.client()
        with self.registry_lock():
            status = client.get_model_version(self.model_name, version).tags.get(c.APPROVAL_TAG)
            if status is not None:
                return status
            client.set_model_version_tag(self.model_name, version, c.APPROVAL_RELEASE_TAG,
                                         json.dumps(dict(release), sort_keys=True))
            client.set_model_version_tag(self.model_name, version, c.APPROVAL_TAG, c.ApprovalStatus.PENDING)
            self._record(AuditAction.APPROVAL_REQUESTED, None, None, version, {**(why or {}), **release})
            return None

    def decide_approval(self, version: str, *, approve: bool, reason: str) -> AuditEntry:
        """Approve or reject a version held for approval; the decision, the approver and the reason go into the
        audit trail. An approved version is released by the approval sensor."""
        if not reason.strip():
            raise ApprovalError("a decision needs a reason (--reason): it is what the audit trail shows")
        self.check_manage()
        client = self.client()
        with self.registry_lock():
            status = client.get_model_version(self.model_name, version).tags.get(c.APPROVAL_TAG)
            if status != c.ApprovalStatus.PENDING:
                raise ApprovalError(f"v{version} of model {self.model_name!r} is not waiting for approval (status: "
                                    f"{status or 'none, it was never held for approval'})")
            approved = c.ApprovalStatus.APPROVED if approve else c.ApprovalStatus.REJECTED
            client.set_model_version_tag(self.model_name, version, c.APPROVAL_TAG, approved)
            return self._record(AuditAction.APPROVE if approve else AuditAction.REJECT, None, None, version,
                                {"reason": reason.strip()})

    def check_manage(self) -> None:
        """Approvals need the registry's MANAGE permission on the model when access control is on (an MLflow
        server running the basic-auth app, docs/registry-access.md); a local store has no users to check."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        from mlflow.server import get_app_client

        user = settings.registry_user()
        auth = get_app_client("basic-auth", tracking_uri=self.tracking_uri)
        try:
            granted = auth.get_user_permission(user, "registered_model", self.model_name).permission
        except MlflowException as exc:
            if exc.get_http_status_code() == 404:
                return  # a tracking server without the basic-auth app: no access control to satisfy
            raise ApprovalError(f"cannot check the permission of {user!r} on model {self.model_name!r} at "
                                f"{self.tracking_uri}: {exc.message}") from exc
        if granted == "MANAGE":
            return
        with contextlib.suppress(MlflowException):
            if auth.get_user(user).is_admin:
                return
        raise ApprovalError(f"user {user!r} has {granted} on model {self.model_name!r}; approving or rejecting a "
                            "release needs MANAGE (see docs/registry-access.md)")

    def _record(self, action: str, alias: str | None, from_version: str | None, to_version: str | None,
                why: Why) -> AuditEntry:
        """Append one move to the audit trail; the caller holds the registry lock."""
        entry = audit.new_entry(action=action, alias=alias, from_version=from_version, to_version=to_version,
                                who=settings.registry_user(), why=why)
        return audit.append(self.client(), self.model_name, entry)

    def audit_trail(self) -> list[AuditEntry]:
        """Every recorded release move and approval decision, oldest first."""
        try:
            tags = self.client().get_registered_model(self.model_name).tags
        except MlflowException as exc:
            self._raise_unless_absent(exc)
            return []
        return audit.history(tags)

    def audit_for_run(self, dagster_run_id: str) -> list[AuditEntry]:
        """The entries one Dagster run wrote (what its materialization reports)."""
        return [e for e in self.audit_trail() if e["why"].get("dagster_run_id") == dagster_run_id]


@dataclass(frozen=True)
class ModelRegistry(RegistryOperations):
    """The registry operations on their own, for processes without Dagster (the serving gateway, the CLI)."""

    tracking_uri: str
    registry_uri: str
    model_name: str
    lock_dir: str
