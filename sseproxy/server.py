"""Listeners and the accept loop: sockets in, `Proxy.handle` per connection, clean shutdown.

This is the only layer that knows connections are sockets. On EMFILE and friends the
accept loop pauses briefly instead of dying (as trio's own `serve_listeners` does); the
connection cap (`--max-connections`, see `sseproxy.admission`) keeps that rare.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket

import trio

from sseproxy.errors import ConfigError
from sseproxy.proxy import Proxy

__all__ = ["default_max_connections", "listen", "parse_hostport", "peer", "serve_proxy"]

ACCEPT_PAUSE = 0.1
"""Seconds the accept loop waits before trying again when out of descriptors."""
_HANDLER_TASK = "sseproxy.proxy.Proxy.handle"
"""Each connection's task name, given so that trio does not build the same string per task."""
SPARE_DESCRIPTORS = 64
"""Descriptors kept free beyond the connections: listeners, the journal, the control API,
connections being turned away, Python's own."""


def default_max_connections(per_connection: int = 2) -> int:
    """The connection cap the open-file limit allows, `per_connection` descriptors each
    (client and upstream; 3 when the built-in server runs in the same process)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return 10_000
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(1, (soft - SPARE_DESCRIPTORS) // per_connection)


def parse_hostport(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'127.0.0.1:8080', ':8080', '8080' or '[::1]:8080' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


async def listen(host: str, port: int, *, option: str = "") -> trio.SocketListener:
    """One listening socket, or a ConfigError that says what went wrong (after the
    command-line `option` that asked for it, when given)."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as error:
        prefix = f"{option}: " if option else ""
        reason = error.strerror or error
        raise ConfigError(f"{prefix}cannot listen on {host}:{port}: {reason}") from None
    for extra in listeners[1:]:
        await extra.aclose()
    return listeners[0]


def peer(stream: trio.SocketStream) -> str:
    """The client's address as the journal writes it ("unknown" once it is gone)."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "unknown"
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


async def serve_proxy(
    proxy: Proxy,
    listener: trio.SocketListener,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept until cancelled; each connection runs in its own task, errors stay its own.

    During a `refuse` fault's window with `how = "unlisten"` the listening socket is
    closed (new clients get ECONNREFUSED) and opened again on the same address after;
    a scenario changed live is looked at again at once.
    """
    async with trio.open_nursery() as connections:
        task_status.started()
        try:
            while True:
                host, port = listener.socket.getsockname()[:2]
                proxy.listener = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                span = proxy.plan.unlisten_window(trio.current_time())
                changed = proxy.plan_changed
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(_cancel_when_set, changed, accepting.cancel_scope)
                    with trio.move_on_at(span[0] if span else math.inf):
                        await _accept(proxy, listener, connections)
                    accepting.cancel_scope.cancel()
                if span is None or trio.current_time() < span[0]:
                    continue  # the scenario changed: look again
                await listener.aclose()
                proxy.journal.write("unlisten", "-", until=round(span[1] - proxy.plan.started, 6))
                await trio.sleep_until(span[1])
                listener = await listen(host, port)
                proxy.journal.write("listen", "-", address=f"{host}:{port}")
        finally:
            await trio.aclose_forcefully(listener)


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _accept(proxy: Proxy, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
    """Accept forever. Out of descriptors (EMFILE, ENFILE, ENOBUFS...), wait for a close
    and try again, as trio's `serve_listeners` does; the clients wait in the backlog. The
    journal says when accepting paused (`accept-paused`) and for how long (`accept-resumed`)."""
    paused: float | None = None
    while True:
        try:
            stream = await listener.accept()
        except OSError as error:
            if paused is None:
                paused = trio.current_time()
                detail = os.strerror(error.errno) if error.errno else str(error)
                proxy.journal.write("accept-paused", "-", reason="proxy-overloaded", detail=detail)
            await trio.sleep(ACCEPT_PAUSE)
            continue
        if paused is not None:
            waited = round(trio.current_time() - paused, 6)
            proxy.journal.write("accept-resumed", "-", paused=waited)
            paused = None
        with contextlib.suppress(OSError):  # the client may be gone already
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        client: trio.abc.Stream = stream
        if proxy.settings.listen_tls is not None:  # the handshake: on the first read
            client = trio.SSLStream(stream, proxy.settings.listen_tls, server_side=True)
        nursery.start_soon(proxy.handle, client, peer(stream), name=_HANDLER_TASK)
