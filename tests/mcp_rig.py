"""The real `mcp` SDK (PyPI) in tests: its server on a loopback port in a thread of its own,
restartable (a new process would forget its sessions the same way), and its clients.

Only the tests that use the SDK import this module; they skip when `mcp` is absent.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Literal

import uvicorn
from mcp.server.mcpserver import MCPServer

Transport = Literal["sse", "streamable", "stateless"]


def sdk_app(name: str, transport: Transport) -> Any:
    """An MCPServer with the tools our built-in instances have (`echo`, `instance`)."""
    server = MCPServer(name, log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text it is given."""
        return text

    @server.tool()
    def instance() -> str:
        """Which instance answered."""
        return name

    if transport == "sse":
        return server.sse_app(host="127.0.0.1")
    return server.streamable_http_app(host="127.0.0.1", stateless_http=transport == "stateless")


class SdkServer:
    """The SDK's server under uvicorn on 127.0.0.1 (a free port, kept across restarts)."""

    def __init__(self, transport: Transport, name: str = "sdk") -> None:
        self.transport, self.name = transport, name
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SdkServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            sdk_app(self.name, self.transport), log_level="warning", lifespan="on"
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the SDK server did not start"
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """As a killed process: every connection closes, no stream ends cleanly."""
        assert self._server is not None and self._thread is not None
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "the SDK server did not stop"

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SdkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
