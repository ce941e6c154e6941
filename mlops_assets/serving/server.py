"""The gateway's process side: the uvicorn server, in the foreground (``mlops serve``) or on a thread."""

from __future__ import annotations

import contextlib
import socket
import threading

import httpx
import uvicorn
from starlette.types import ASGIApp

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.waiting import wait_until
from mlops_assets.serving.app import create_app
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.workers import UVICORN_OPTIONS


def _server(config: GatewayConfig) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(create_app(config), host=config.host, port=config.port, **UVICORN_OPTIONS))


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
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout, 0.05)
        if not self._server.started:
            raise RuntimeError(f"the gateway did not start on {self.url}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def wait_for_version(self, version: str, timeout: float = 60) -> bool:
        """Until ``/version`` reports ``version`` as the champion served; False on timeout."""
        return wait_until(lambda: self._served() == str(version), timeout, 0.1)

    def _served(self) -> str | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return httpx.get(f"{self.url}/version", timeout=2).json().get("model_version")
        return None


def run_gateway(config: GatewayConfig) -> None:
    """Foreground server for ``mlops serve``."""
    print(f"serving {config.model_name}@{CHAMPION} on http://{config.host}:{config.port}", flush=True)
    _server(config).run()


def worker_app() -> ASGIApp:
    """One worker of ``mlops serve --workers N`` (``serving.workers``): a fresh process that reads the same
    settings as the ``mlops serve`` that started it."""
    return create_app(GatewayConfig.from_env())
