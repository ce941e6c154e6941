"""A read-only view of the platform's registered model, without MLflow: for ``mlops registry list`` and ``show``,
and for the gateway's alias polls and model lookups.

Importing ``mlflow`` and opening its store take 3-4 s, most of a listing command's time and of the gateway's
start-up. So the two stores the
platform runs on are read directly: the embedded SQLite store with a read-only query of MLflow's registry tables,
only when the schema revision MLflow stamped on the file is one this reader was checked against
(``tests/core/test_registry_view.py`` fails when the pinned MLflow moves on), and an MLflow server through its
public REST API. Anything else (another database, Databricks, an unknown schema, TLS or auth-plugin settings)
is answered by MLflow's client (:class:`ClientReader`), so the answer is always the one MLflow would give.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Schema revisions (alembic) of MLflow's SQL store whose registry tables the SQLite reader matches.
KNOWN_SCHEMA_REVISIONS = frozenset({"dc11669786a5"})

_WORKSPACE = "default"  # MLflow's single-tenant workspace; any other one in the file: MLflow's client answers
_DELETED = "Deleted_Internal"  # MLflow's stage for a version being deleted: never listed
_VERSION = re.compile(r"[0-9]+")
_PAGE = 1000
# What MLflow answers for a model that does not exist (with access control also PERMISSION_DENIED): no versions.
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"})


@dataclass(frozen=True)
class VersionView:
    """One model version as ``mlops registry`` prints it. ``version`` is what the store gives: MLflow returns an
    int from a SQL store and a string from a server, and ``show`` prints it as today."""

    name: str
    version: int | str
    run_id: str | None
    source: str | None
    description: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelState:
    """What the gateway follows: the version behind each alias, and the registered model's tags (the canary's
    split). Empty when the model does not exist (yet)."""

    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class NoSuchVersion(LookupError):
    """The registry says the model has no such version."""


class NoCanaryError(RuntimeError):
    """The canary slot is empty, or holds a shadow release (which never answers traffic). Defined here, without
    MLflow, so that the gateway can catch it from ``core.registry``'s writes without importing MLflow."""


class RegistryError(RuntimeError):
    """The registry refused or failed a read (or a gateway's write): MLflow's ``error_code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def is_version_number(text: str) -> bool:
    """Whether the fast readers take ``text`` as a version; anything else gets MLflow's own wording."""
    return _VERSION.fullmatch(text) is not None


class RegistryReader(Protocol):
    def versions(self) -> list[VersionView]:
        """Every version of the model, oldest first, with its aliases."""

    def version(self, version: str) -> VersionView:
        """One version; :class:`NoSuchVersion` when the registry has none."""

    def state(self) -> ModelState:
        """The aliases and model tags now."""

    def download_uri(self, version: str) -> str:
        """Where the version's artifacts are, as MLflow's ``get_model_version_download_uri`` answers."""


def fast_reader(
    registry_uri: str, model_name: str, *, auth: tuple[str | None, str | None, str | None], customised: bool
) -> RegistryReader | None:
    """The MLflow-free reader for this registry, or None when only MLflow's client can answer correctly.

    ``auth`` is (username, password, token) as MLflow's client reads them; ``customised`` says MLflow's HTTP
    settings (TLS, an auth plugin, a workspace) are in use, which this reader does not speak."""
    if registry_uri.startswith(("http://", "https://")):
        return None if customised else RestReader(registry_uri, model_name, auth)
    if registry_uri.startswith("sqlite:///") and "?" not in registry_uri and not customised:
        return SqliteReader.open(Path(registry_uri.removeprefix("sqlite:///")), model_name)
    return None


class SqliteReader:
    """MLflow's SQLite registry tables, read-only (never migrates, locks or creates the file)."""

    def __init__(self, db: sqlite3.Connection, model_name: str) -> None:
        self._db, self.model_name = db, model_name

    @classmethod
    def open(cls, path: Path, model_name: str) -> SqliteReader | None:
        """None unless the file exists and carries a known schema revision in the single-tenant workspace."""
        if not path.is_file():
            return None  # a fresh home: MLflow's client creates the store, as before
        # Shared across threads (the gateway's poller and its admin endpoints), one call at a time: the gateway
        # reads under its own lock and the CLI from one thread.
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
            other = db.execute("SELECT 1 FROM registered_models WHERE workspace != ? LIMIT 1", (_WORKSPACE,))
            if revision in KNOWN_SCHEMA_REVISIONS and other.fetchone() is None:
                return cls(db, model_name)
        except sqlite3.Error:
            pass  # not MLflow's schema as this reader knows it
        db.close()
        return None

    def versions(self) -> list[VersionView]:
        return self._select("")

    def version(self, version: str) -> VersionView:
        found = self._select(" AND version = ?", int(version))
        if not found:
            raise NoSuchVersion(version)
        return found[0]

    def state(self) -> ModelState:
        key = (_WORKSPACE, self.model_name)
        aliases = self._db.execute(
            "SELECT a.alias, a.version FROM registered_model_aliases a JOIN model_versions v ON v.workspace = "
            "a.workspace AND v.name = a.name AND v.version = a.version WHERE a.workspace = ? AND a.name = ? AND "
            "v.current_stage != ?",
            (*key, _DELETED),
        )
        tags = self._db.execute("SELECT key, value FROM registered_model_tags WHERE workspace = ? AND name = ?", key)
        return ModelState({alias: str(version) for alias, version in aliases}, dict(tags.fetchall()))

    def download_uri(self, version: str) -> str:
        found = self._db.execute(
            "SELECT storage_location, source FROM model_versions WHERE workspace = ? AND name = ? AND version = ? "
            "AND current_stage != ?",
            (_WORKSPACE, self.model_name, int(version), _DELETED),
        ).fetchone()
        if found is None:
            raise NoSuchVersion(version)
        return found[0] or found[1]  # what MLflow's SQL store answers: the storage location, else the source

    def _select(self, where: str, *args: Any) -> list[VersionView]:
        key = (_WORKSPACE, self.model_name)
        rows = self._db.execute(
            "SELECT name, version, run_id, source, description FROM model_versions WHERE "
            f"workspace = ? AND name = ? AND current_stage != ?{where} ORDER BY version",
            (*key, _DELETED, *args),
        ).fetchall()
        tags: dict[int, dict[str, str]] = {}
        for version, k, v in self._db.execute(
            "SELECT version, key, value FROM model_version_tags WHERE "
            f"workspace = ? AND name = ?{where} ORDER BY rowid",
            (*key, *args),
        ):
            tags.setdefault(version, {})[k] = v
        aliases: dict[int, list[str]] = {}
        for alias, version in self._db.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ? ORDER BY alias", key
        ):
            aliases.setdefault(version, []).append(alias)
        return [
            VersionView(name, version, run_id, source, description, tags.get(version, {}), aliases.get(version, []))
            for name, version, run_id, source, description in rows
        ]


class RestReader:
    """An MLflow server's registry through its public REST API (``/api/2.0/mlflow/...``)."""

    def __init__(
        self, uri: str, model_name: str, auth: tuple[str | None, str | None, str | None], timeout: float = 30.0
    ) -> None:
        self.base, self.model_name, self.timeout = uri.rstrip("/"), model_name, timeout
        user, password, token = auth
        self._headers = {"Accept": "application/json"}
        if user and password:
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"

    def versions(self) -> list[VersionView]:
        found: list[dict] = []
        page: str | None = ""
        while page is not None:
            params = {"filter": f"name='{self.model_name}'", "max_results": str(_PAGE)}
            try:
                body = self._get("model-versions/search", {**params, **({"page_token": page} if page else {})})
            except RegistryError as exc:
                if exc.code in _ABSENT:
                    return []
                raise
            found += body.get("model_versions", [])
            page = body.get("next_page_token") or None
        if not found:
            return []
        model = self._get("registered-models/get", {"name": self.model_name})["registered_model"]
        aliases: dict[str, list[str]] = {}
        for a in model.get("aliases", []):
            aliases.setdefault(str(a["version"]), []).append(a["alias"])
        views = [_view(mv, aliases.get(str(mv["version"]), [])) for mv in found]
        return sorted(views, key=lambda v: int(v.version))

    def version(self, version: str) -> VersionView:
        try:
            mv = self._get("model-versions/get", {"name": self.model_name, "version": version})["model_version"]
        except RegistryError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                raise NoSuchVersion(version) from None
            raise
        return _view(mv, list(mv.get("aliases", [])))

    def state(self) -> ModelState:
        try:
            model = self._get("registered-models/get", {"name": self.model_name})["registered_model"]
        except RegistryError as exc:
            if exc.code in _ABSENT:
                return ModelState()
            raise
        return ModelState(
            {a["alias"]: str(a["version"]) for a in model.get("aliases", [])},
            {t["key"]: t.get("value") for t in model.get("tags", [])},
        )

    def download_uri(self, version: str) -> str:
        try:
            params = {"name": self.model_name, "version": version}
            return self._get("model-versions/get-download-uri", params)["artifact_uri"]
        except RegistryError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                raise NoSuchVersion(version) from None
            raise

    def _get(self, endpoint: str, params: dict[str, str]) -> dict:
        url = f"{self.base}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=self._headers), timeout=self.timeout
            ) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read() or b"{}")
            except ValueError:
                body = {}
            raise RegistryError(
                body.get("error_code", f"HTTP {err.code}"), body.get("message", f"{url} answered HTTP {err.code}")
            ) from None
        except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, cut mid-answer
            raise RegistryError(
                "UNREACHABLE", f"MLflow tracking server {self.base} did not answer: {getattr(err, 'reason', err)}"
            ) from None


def _view(mv: dict, aliases: list[str]) -> VersionView:
    return VersionView(
        mv["name"],
        str(mv["version"]),
        mv.get("run_id") or None,
        mv.get("source"),
        mv.get("description"),
        {t["key"]: t.get("value") for t in mv.get("tags", [])},
        aliases,
    )


class ClientReader:
    """The same view through MLflow's client: for every store the fast readers do not cover, and the reference
    they are tested against."""

    def __init__(self, registry: Any) -> None:  # core.registry.ModelRegistry (imports mlflow)
        self.registry = registry

    def versions(self) -> list[VersionView]:
        from mlflow.exceptions import MlflowException

        client = self.registry.client()
        try:
            return [
                self._of(client.get_model_version(self.registry.model_name, info.version), info.tags)
                for info in self.registry.versions()
            ]
        except MlflowException as exc:
            raise RegistryError(exc.error_code, exc.message) from exc

    def version(self, version: str) -> VersionView:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.registry.client().get_model_version(self.registry.model_name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NoSuchVersion(version) from None
            raise RegistryError(exc.error_code, exc.message) from exc
        return self._of(mv, mv.tags)

    def state(self) -> ModelState:
        from mlflow.exceptions import MlflowException

        try:
            model = self.registry.client().get_registered_model(self.registry.model_name)
        except MlflowException as exc:
            if exc.error_code in _ABSENT:
                return ModelState()
            raise RegistryError(exc.error_code, exc.message) from exc
        return ModelState({alias: str(v) for alias, v in model.aliases.items()}, dict(model.tags))

    def download_uri(self, version: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return self.registry.client().get_model_version_download_uri(self.registry.model_name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NoSuchVersion(version) from None
            raise RegistryError(exc.error_code, exc.message) from exc

    @staticmethod
    def _of(mv: Any, tags: dict[str, str]) -> VersionView:
        return VersionView(mv.name, mv.version, mv.run_id, mv.source, mv.description, dict(tags), list(mv.aliases))
