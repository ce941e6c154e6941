"""Which failures are worth retrying: a fault of the network or of a server that may be gone a moment later
(connection refused or reset, a timeout, an HTTP 5xx or 429, a locked SQLite file), never a verdict on the data
or the model (a validation failure, a bad config, a missing version), which a retry would only repeat.

Plain Python (no Dagster): ``mlops_assets/retries.py`` turns the answer into Dagster retries. Library exception
types are looked up only in modules already imported, since an exception of a library nobody imported cannot
occur; so asking costs nothing and imports nothing.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator

# errno values of a network path or peer that is down or slow, not of a wrong request.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)

# Transport failures of the HTTP libraries the platform and MLflow use: module -> exception class names.
_TRANSPORT_ERRORS = {
    "requests.exceptions": ("ConnectionError", "Timeout", "RetryError", "ChunkedEncodingError"),
    "urllib3.exceptions": ("NewConnectionError", "MaxRetryError", "ProtocolError", "TimeoutError"),
    "httpx": ("TransportError",),
}

# MLflow error codes a server answers when it is overloaded or briefly unavailable.
_MLFLOW_TRANSIENT_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, or any exception it was raised from or while handling, is a transient fault."""
    return any(_transient_itself(e) for e in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts (MLflow re-raises a connection error as a plain MlflowException)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]


def _transient_itself(e: BaseException) -> bool:
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
        return True
    status = _http_status(e)
    if status is not None:
        return status == 429 or status >= 500
    for module, names in _TRANSPORT_ERRORS.items():
        mod = sys.modules.get(module)
        if mod is not None and isinstance(e, tuple(getattr(mod, n) for n in names if hasattr(mod, n))):
            return True
    if type(e).__name__ == "OperationalError" and "database is locked" in str(e):
        return True  # SQLite (or SQLAlchemy over it): another writer holds the file for a moment
    return _mlflow_transient(e)


def _http_status(e: BaseException) -> int | None:
    """The status of an HTTP error response (requests' and httpx's errors carry it), else None."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _mlflow_transient(e: BaseException) -> bool:
    """An MLflow server that said it is unavailable, or answered 500 (its own code for a failure inside it)."""
    mod = sys.modules.get("mlflow.exceptions")
    if mod is None or not isinstance(e, mod.MlflowException):
        return False
    code = getattr(e, "error_code", None)
    return code in _MLFLOW_TRANSIENT_CODES or (isinstance(e, mod.RestException) and code == "INTERNAL_ERROR")
