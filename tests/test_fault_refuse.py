"""refuse: decisions in pure code, an empty reply in virtual time, real RST and ECONNREFUSED."""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from sseproxy import origin
from sseproxy.faults.base import Close, Reset
from sseproxy.faults.refuse import Refuse
from sseproxy.journal import Journal
from sseproxy.plan import Plan
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from tests.harness import memory_proxy, scenario_of


def make(how: str) -> Refuse:
    return Refuse({"how": how}, random.Random(0))


# -- decisions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "actions", "unlistens"),
    [
        ("close", [Close("refused")], False),
        ("reset", [Reset("refused")], False),
        ("unlisten", [], True),  # the server does it, not the connection
    ],
)
def test_start_and_unlistens(how: str, actions: list[object], unlistens: bool) -> None:
    assert make(how).start(0.0) == actions
    assert Refuse.unlistens({"how": how}) is unlistens


def test_a_scenario_knows_its_unlisten_window() -> None:
    scenario = scenario_of(
        '[[faults]]\ntype = "refuse"\nhow = "unlisten"\nwindow = { from = "2s", until = "5s" }\n'
    )
    plan = Plan(scenario, 1, 100.0)
    assert plan.unlisten_window(100.0) == (102.0, 105.0)
    assert plan.unlisten_window(103.0) == (103.0, 105.0)
    assert plan.unlisten_window(105.0) is None


# -- through the proxy, in virtual time ----------------------------------------------------


async def test_close_gives_the_client_an_empty_reply(autojump_clock: object) -> None:
    async with memory_proxy('[[faults]]\ntype = "refuse"\n') as mp:
        client = mp.client()
        got = await client.get("/events")
        assert (got.status, got.body, got.ending, got.ended_at) == (0, b"", "closed", 0.0)
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["detail"]) == ("proxy", "refuse", "refused")
        assert closed["bytes_down"] == 0
        assert not mp.journal.of_kind("response")
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"]) == ("refuse", "close")


async def test_first_refuses_only_the_first_connections(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy('[[faults]]\ntype = "refuse"\nfirst = 2\n', settings) as mp:
        statuses = [(await mp.client().get("/events")).status for _ in range(3)]
        assert statuses == [0, 0, 200]


async def test_a_refused_connection_never_reaches_the_upstream(autojump_clock: object) -> None:
    """Regression: the link used to call the head reader (and so connect) after start()."""
    async with memory_proxy('[[faults]]\ntype = "refuse"\n') as mp:
        calls: list[float] = []
        connect = mp.proxy.connector
        assert connect is not None

        async def recording() -> trio.abc.Stream:
            calls.append(trio.current_time())
            return await connect()

        mp.proxy.connector = recording
        assert (await mp.client().get("/events")).status == 0
        await mp.journal.wait_for("closed")
        assert calls == []


# -- over real loopback sockets ------------------------------------------------------------

REQUEST = b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n"
QUIET = origin.OriginSettings(interval=3600, heartbeat=0)


@asynccontextmanager
async def loopback_proxy(toml: str) -> AsyncIterator[tuple[Proxy, int]]:
    """The origin and the proxy on 127.0.0.1 ephemeral ports; yields the proxy and its port."""
    async with trio.open_nursery() as nursery:
        origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, QUIET)
        listener = await listen("127.0.0.1", 0)
        port: int = listener.socket.getsockname()[1]
        settings = ProxySettings(Upstream("127.0.0.1", origin_port))
        proxy = Proxy(settings, scenario_of(toml), Journal(keep=True), seed=1)
        await nursery.start(serve_proxy, proxy, listener)
        yield proxy, port
        nursery.cancel_scope.cancel()


async def test_reset_gives_the_client_econnreset() -> None:
    with trio.fail_after(5):
        async with loopback_proxy('[[faults]]\ntype = "refuse"\nhow = "reset"\n') as (proxy, port):
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with sock:
                await sock.connect(("127.0.0.1", port))
                await sock.send(REQUEST)
                with pytest.raises(ConnectionResetError) as caught:
                    while await sock.recv(65536):
                        pass
            (closed,) = await proxy.journal.wait_for("closed")
    assert caught.value.errno == errno.ECONNRESET
    assert (closed["by"], closed["reason"]) == ("proxy", "refuse")


async def try_connect(port: int) -> trio.socket.SocketType | None:
    """A connected socket, or None when the connection was refused."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await sock.connect(("127.0.0.1", port))
    except ConnectionRefusedError as error:
        assert error.errno == errno.ECONNREFUSED
        sock.close()
        return None
    return sock


async def test_unlisten_refuses_connections_during_its_window_only() -> None:
    toml = '[[faults]]\ntype = "refuse"\nhow = "unlisten"\nwindow = { from = "0s", until = "1s" }\n'
    with trio.fail_after(5):
        async with loopback_proxy(toml) as (proxy, port):
            started = proxy.plan.started
            await proxy.journal.wait_for("unlisten")  # the listening socket is closed now
            assert await try_connect(port) is None  # ECONNREFUSED
            while (sock := await try_connect(port)) is None:
                await proxy.journal.wait_for("listen")  # poll again once it listens
            accepted_at = trio.current_time() - started
            with sock:
                await sock.send(REQUEST)
                head = await sock.recv(65536)
            (unlisten,) = proxy.journal.of_kind("unlisten")
            (listen_again,) = proxy.journal.of_kind("listen")
    assert head.startswith(b"HTTP/1.1 200 ")  # served normally after the window
    assert accepted_at >= 1.0
    assert unlisten["until"] == 1.0
    assert unlisten["t"] < 0.5  # at once: the window starts with the proxy
    assert listen_again["t"] >= 1.0
    assert listen_again["address"] == f"127.0.0.1:{port}"


async def test_close_gives_the_client_an_empty_reply_over_sockets() -> None:
    """Refused at accept, even with the request already in the proxy's buffer: a FIN (curl's
    "Empty reply from server"), not an RST."""
    with trio.fail_after(5):
        async with loopback_proxy('[[faults]]\ntype = "refuse"\n') as (proxy, port):
            for _ in range(20):
                sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                with sock:
                    await sock.connect(("127.0.0.1", port))
                    await sock.send(REQUEST)
                    assert await sock.recv(65536) == b""
            await proxy.journal.wait_for("closed", 20)
    assert not proxy.journal.of_kind("upstream")
