"""The gateway stops like a service should: on SIGTERM it accepts nothing new and finishes what is in flight."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from mlops_assets.core.waiting import wait_until
from tests.support.tiny_models import GatewayProcess, Store, data, split, train


@pytest.fixture
def gateway(tmp_path: Path):
    store = Store.create(tmp_path / "mlflow")
    store.alias(store.register(train(1)))
    process = GatewayProcess(store, tmp_path / "home").start()
    process.wait_for(model_version="1")
    yield process
    process.crash()


def test_a_request_in_flight_at_sigterm_still_gets_its_answer(gateway: GatewayProcess):
    """The client sends its headers and half the body, the gateway gets SIGTERM, then the rest arrives: the
    answer is a 200 with the predictions, and the process then exits by itself."""
    body = json.dumps(split(data(5, 3)[0])).encode()
    head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.5)  # the server has parsed the headers: the request is in flight
        gateway._proc.send_signal(signal.SIGTERM)
        # New connections are refused once the gateway is draining.
        assert wait_until(lambda: not _accepts(gateway.port), 10, 0.1)
        sock.sendall(body[10:])
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]) == 5
    # uvicorn re-raises the signal once it has shut down, so a supervisor sees it ended by SIGTERM, not a crash.
    assert gateway._proc.wait(timeout=30) in (0, -signal.SIGTERM)


def _accepts(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/version", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _read_response(sock: socket.socket) -> bytes:
    """The whole response: the gateway closes the connection after it (no keep-alive while draining)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
