"""One socket write per response (serving/transport.py) keeps HTTP/1.1 whole: a real gateway on loopback, raw
sockets, keep-alive, pipelined requests and ``Connection: close``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from sklearn.pipeline import Pipeline

from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread
from tests.support.tiny_models import MODEL, Store, data, split, train


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, Pipeline]]:
    store = Store.create(tmp_path_factory.mktemp("mlflow"))
    model = train(1)
    store.alias(store.register(model))
    gw = GatewayThread(GatewayConfig(model_name=MODEL, tracking_uri=store.uri, registry_uri=store.uri,
                                     log_root=tmp_path_factory.mktemp("home"), port=0, poll_seconds=3600)).start()
    try:
        assert gw.wait_for_version("1", timeout=60)
        yield gw, model
    finally:
        gw.stop()


def _request(path: str, body: bytes | None = None, close: bool = False) -> bytes:
    head = f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1\r\nHost: test\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def _responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` whole responses (status, body) read off the socket by their Content-Length."""
    buffer, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {len(answers)} of {count} responses"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        answers.append((int(head[9:12]), buffer[:length]))
        buffer = buffer[length:]
    assert not buffer
    return answers


def test_pipelined_keep_alive_requests_get_whole_answers_in_order_and_close_is_honoured(served) -> None:
    gateway, model = served
    frames = [data(n, seed)[0] for seed, n in enumerate((1, 3, 2))]
    bodies = [json.dumps(split(frame)).encode() for frame in frames]
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"".join(_request("/invocations", body) for body in bodies) + _request("/ping"))
        answers = _responses(sock, 4)
        assert [status for status, _ in answers] == [200, 200, 200, 200]
        for (_, body), frame in zip(answers, frames, strict=False):
            assert json.loads(body)["predictions"] == model.predict(frame).tolist()
        sock.sendall(_request("/invocations", bodies[1], close=True))
        (status, body), = _responses(sock, 1)
        assert status == 200 and json.loads(body)["predictions"] == model.predict(frames[1]).tolist()
        assert sock.recv(1) == b""  # the server closed the connection after sending the whole answer


def test_an_error_answer_arrives_whole_before_the_server_closes(served) -> None:
    """A malformed request line: uvicorn answers 400 and closes; the held answer is sent before the close."""
    gateway, _ = served
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ") and received.endswith(b"Invalid HTTP request received.")
