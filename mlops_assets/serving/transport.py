"""uvicorn's HTTP protocol with each response leaving in one socket write instead of two.

uvicorn writes a response's status line and headers as soon as the app sends ``http.response.start`` and the
body on ``http.response.body``: two ``send`` calls, and on loopback each wakes the client and runs its TCP
receive path. Under ``benchmarks/serving.py`` (one-row requests, 8 connections) the header write alone was a
quarter of the event loop's time. Here the writes a connection makes within one pass of the event loop are
held and handed to the transport together at the start of the next pass (``writelines``: one scatter write,
no copy), which is the same moment for the client: the loop would not have read or written anything else in
between. Everything else is uvicorn's own protocol (parsing, keep-alive, flow control, timeouts, shutdown).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _OneWritePerPass:
    """A transport whose ``write``s are gathered until the event loop's next pass; ``close`` sends them
    first. Every other attribute is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._send)
        self._held.append(data)

    def _send(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.writelines(held)

    def close(self) -> None:
        self._send()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (``uvicorn.Config(http=...)``) writing through ``_OneWritePerPass``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneWritePerPass(transport, self.loop))  # type: ignore[arg-type]
