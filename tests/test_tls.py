"""https:// upstreams: the built-in server behind TLS (certificates from trustme), through
the proxy on loopback sockets: events relayed, faults still act (a reset is a real RST),
bad certificates and non-TLS servers are the upstream's 502 with the reason."""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sseproxy import origin
from sseproxy.errors import ConfigError
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from sseproxy.testing import open_proxy, parse_sse
from sseproxy.tls import client_context
from sseproxy.transport import abort
from tests.harness import scenario_of
from tests.subprocesses import Lines

trustme = pytest.importorskip("trustme")

FEW = origin.OriginSettings(interval=0, heartbeat=0, count=3)
QUIET = origin.OriginSettings(interval=3600, heartbeat=0)


@pytest.fixture(scope="module")
def ca() -> object:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))  # type: ignore[attr-defined]
    return path


def server_context(ca: object, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)  # type: ignore[attr-defined]
    return context


@asynccontextmanager
async def tls_origin(
    context: ssl.SSLContext, settings: origin.OriginSettings = FEW
) -> AsyncIterator[int]:
    """The built-in SSE server behind TLS on a free loopback port; yields the port."""
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port: int = listeners[0].socket.getsockname()[1]
        secure = [trio.SSLListener(lst, context, https_compatible=True) for lst in listeners]

        async def handler(stream: trio.abc.Stream) -> None:
            await origin.handle_connection(stream, settings)

        nursery.start_soon(trio.serve_listeners, handler, secure)
        yield port
        nursery.cancel_scope.cancel()


async def test_an_https_upstream_is_relayed_with_sni_and_the_ca_checked(
    ca: object, ca_file: Path
) -> None:
    seen: list[str | None] = []
    context = server_context(ca, "localhost")
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc,return-value]
    with trio.fail_after(5):
        async with (
            tls_origin(context) as port,
            open_proxy(f"https://localhost:{port}", upstream_tls=client_context(ca_file)) as proxy,
        ):
            response = await trio.to_thread.run_sync(
                lambda: httpx.get(f"{proxy.url}/events", timeout=5)
            )
    assert response.status_code == 200
    assert [e.id for e in parse_sse(response.content)] == ["1", "2", "3"]
    assert seen == ["localhost"]
    [upstream] = proxy.of_kind("upstream")
    assert upstream["upstream"] == f"https://localhost:{port}"


async def test_a_reset_through_an_https_upstream_is_a_real_rst_to_the_client(
    ca: object, ca_file: Path
) -> None:
    reset = '[[faults]]\ntype = "reset"\nevents = 1\n'
    with trio.fail_after(5):
        async with (
            tls_origin(server_context(ca, "127.0.0.1"), FEW) as port,
            open_proxy(
                f"https://127.0.0.1:{port}", reset, upstream_tls=client_context(ca_file)
            ) as proxy,
        ):
            received, ending = await read_until_the_end(proxy.port)
            [closed] = await proxy.wait_for_closed()
    assert ending == "reset"
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b'"n": 1' in received and b'"n": 2' not in received
    assert (closed["by"], closed["reason"]) == ("proxy", "reset")


async def read_until_the_end(port: int) -> tuple[bytes, str]:
    """GET /events on a plain socket; read until EOF ("eof") or ECONNRESET ("reset")."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        received = b""
        while True:
            try:
                data = await sock.recv(65536)
            except ConnectionResetError as error:
                assert error.errno == errno.ECONNRESET
                return received, "reset"
            if not data:
                return received, "eof"
            received += data


@pytest.mark.parametrize(
    ("names", "context", "why"),
    [
        # signed by a CA the proxy does not trust (the system's CAs only)
        (("127.0.0.1",), None, "certificate not accepted: "),
        # trusted, but issued for another name
        (("api.example.test",), "ca", "certificate not accepted: IP address mismatch"),
    ],
)
async def test_a_certificate_the_proxy_does_not_accept_is_a_502_blamed_on_the_upstream(
    ca: object, ca_file: Path, names: tuple[str, ...], context: str | None, why: str
) -> None:
    tls = client_context(ca_file) if context else None
    with trio.fail_after(5):
        async with (
            tls_origin(server_context(ca, *names)) as port,
            open_proxy(f"https://127.0.0.1:{port}", upstream_tls=tls) as proxy,
        ):
            response = await trio.to_thread.run_sync(
                lambda: httpx.get(f"{proxy.url}/events", timeout=5)
            )
            [ended] = await proxy.wait_for("ended")
    assert response.status_code == 502
    assert why in response.text
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-tls-error")


async def test_upstream_insecure_accepts_any_certificate(ca: object) -> None:
    other = trustme.CA()  # nobody trusts it, and the name is wrong too
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("elsewhere.test").configure_cert(context)
    with trio.fail_after(5):
        async with (
            tls_origin(context) as port,
            open_proxy(
                f"https://127.0.0.1:{port}", upstream_tls=client_context(insecure=True)
            ) as proxy,
        ):
            response = await trio.to_thread.run_sync(
                lambda: httpx.get(f"{proxy.url}/events", timeout=5)
            )
    assert response.status_code == 200
    assert len(parse_sse(response.content)) == 3


async def test_a_server_that_does_not_speak_tls_is_a_502() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(origin.serve, "127.0.0.1", 0, FEW)
            async with open_proxy(f"https://127.0.0.1:{port}") as proxy:
                response = await trio.to_thread.run_sync(
                    lambda: httpx.get(f"{proxy.url}/events", timeout=5)
                )
                [ended] = await proxy.wait_for("ended")
            nursery.cancel_scope.cancel()
    assert response.status_code == 502
    why = "failed: wrong version number (is it an https server?)"
    assert f"TLS with upstream 127.0.0.1:{port} {why}" in response.text
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-tls-error")


async def test_abort_resets_the_socket_under_a_tls_stream(ca: object, ca_file: Path) -> None:
    """`reset` towards an https upstream: an RST, not a close_notify."""
    outcome: list[str] = []

    async def server(stream: trio.abc.Stream) -> None:
        try:
            await stream.receive_some(1024)
            outcome.append("eof")
        except trio.BrokenResourceError as error:
            reset = isinstance(error.__cause__, ConnectionResetError)
            outcome.append("reset" if reset else repr(error.__cause__))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            context = server_context(ca, "127.0.0.1")
            secure = [trio.SSLListener(lst, context) for lst in listeners]
            nursery.start_soon(trio.serve_listeners, server, secure)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            tls = trio.SSLStream(raw, client_context(ca_file), server_hostname="127.0.0.1")
            await tls.do_handshake()
            await abort(tls)
            while not outcome:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert outcome == ["reset"]


def test_upstream_parse_knows_https() -> None:
    assert Upstream.parse("https://api.example.com") == Upstream("api.example.com", 443, tls=True)
    assert str(Upstream.parse("https://api.example.com:8443")) == "https://api.example.com:8443"
    assert Upstream.parse("https://h:443").authority == "h"
    assert Upstream.parse("http://h:443").authority == "h:443"
    with pytest.raises(ConfigError, match="use http:// or https://"):
        Upstream.parse("ftp://h:21")


def test_a_ca_file_that_is_missing_or_not_pem_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        client_context(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM file"):
        client_context(junk)


@pytest.fixture
def tls_server(ca: object) -> Iterator[int]:
    """The TLS origin in a background thread (for the CLI test)."""
    from sseproxy.testing import BackgroundTrio

    with BackgroundTrio() as loop:
        yield loop.enter(tls_origin(server_context(ca, "localhost"), QUIET))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "http://127.0.0.1:1", "--upstream-insecure"], "need an https://"),
        (["--upstream", "https://127.0.0.1:1", "--upstream-ca", "/nonexistent.pem"], "no such"),
    ],
)
def test_run_refuses_tls_options_that_cannot_work(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_run_relays_an_https_upstream_with_upstream_ca(tls_server: int, ca_file: Path) -> None:
    upstream = f"https://localhost:{tls_server}"
    command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
    command += ["--upstream", upstream, "--upstream-ca", str(ca_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = Lines(process.stdout)
            found = lines.wait_for(r"proxy on (http://\S+) -> upstream (\S+)")
            assert found[2] == upstream
            with httpx.stream("GET", f"{found[1]}/events?count=1&interval=0", timeout=5) as r:
                body = r.read()
            assert r.status_code == 200
            assert [e.id for e in parse_sse(body)] == ["1"]
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_tcp_mode_a_client_half_close_becomes_a_full_close_of_the_tls_upstream(
    ca: object, ca_file: Path
) -> None:
    """TLS has no half-close: the client's FIN is close_notify and a close upstream, so
    the upstream cannot answer after it (plain TCP upstreams could)."""
    upstream_saw: list[bytes] = []

    async def server(stream: trio.abc.Stream) -> None:
        got = b""
        with trio.move_on_after(5):
            while data := await stream.receive_some(1024):
                got += data
        upstream_saw.append(got)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(b"too late")  # the proxy is gone already
        await trio.aclose_forcefully(stream)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            context = server_context(ca, "127.0.0.1")
            secure = [trio.SSLListener(lst, context, https_compatible=True) for lst in listeners]
            nursery.start_soon(trio.serve_listeners, server, secure)
            upstream, tls = f"https://127.0.0.1:{port}", client_context(ca_file)
            async with open_proxy(upstream, mode="tcp", upstream_tls=tls) as proxy:
                client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
                await client.send_all(b"hello")
                await client.send_eof()
                received = b""
                while data := await client.receive_some(1024):
                    received += data
                [closed] = await proxy.wait_for_closed()
            nursery.cancel_scope.cancel()
    assert upstream_saw == [b"hello"]
    assert received == b""
    assert (closed["by"], closed["reason"]) == ("client", "client-closed")


# -- a TLS listener (--listen-cert, --listen-key) ------------------------------------------


@asynccontextmanager
async def tls_listener_proxy(ca: object, toml: str = "") -> AsyncIterator[tuple[int, Any]]:
    """The built-in origin (plain) behind a proxy that listens with TLS; yields its port."""
    async with trio.open_nursery() as nursery:
        origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, FEW)
        listener = await listen("127.0.0.1", 0)
        port: int = listener.socket.getsockname()[1]
        settings = ProxySettings(
            Upstream("127.0.0.1", origin_port), listen_tls=server_context(ca, "127.0.0.1")
        )
        proxy = Proxy(settings, scenario_of(toml), Journal(keep=True))
        await nursery.start(serve_proxy, proxy, listener)
        yield port, proxy
        nursery.cancel_scope.cancel()


async def test_a_tls_listener_serves_https_clients(ca: object, ca_file: Path) -> None:
    with trio.fail_after(5):
        async with tls_listener_proxy(ca) as (port, _):
            verify = client_context(ca_file)
            response = await trio.to_thread.run_sync(
                lambda: httpx.get(f"https://127.0.0.1:{port}/events", verify=verify, timeout=5)
            )
    assert response.status_code == 200
    assert [e.id for e in parse_sse(response.content)] == ["1", "2", "3"]


async def test_a_reset_towards_a_tls_client_is_a_real_rst(ca: object, ca_file: Path) -> None:
    with trio.fail_after(5):
        async with tls_listener_proxy(ca, '[[faults]]\ntype = "reset"\nevents = 1\n') as (port, _):
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            client = trio.SSLStream(raw, client_context(ca_file), server_hostname="127.0.0.1")
            await client.send_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            received = b""
            with pytest.raises(trio.BrokenResourceError) as broken:
                while data := await client.receive_some(65536):
                    received += data
    assert isinstance(broken.value.__cause__, ConnectionResetError)
    assert received.startswith(b"HTTP/1.1 200 ") and b'"n": 1' in received


def test_listen_key_needs_listen_cert() -> None:
    result = run_cli("--upstream", "http://127.0.0.1:1", "--listen-key", "key.pem")
    assert result.returncode == 2
    assert "--listen-key needs --listen-cert" in result.stderr


def test_run_listens_with_tls(ca: object, tmp_path: Path, ca_file: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")  # type: ignore[attr-defined]
    chain = tmp_path / "proxy.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
    with subprocess.Popen(
        [*command, "--listen-cert", str(chain)], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            found = Lines(process.stdout).wait_for(r"proxy on (https://\S+) -> ")
            url = f"{found[1]}/events?count=1&interval=0"
            response = httpx.get(url, verify=client_context(ca_file), timeout=5)
            assert [e.id for e in parse_sse(response.content)] == ["1"]
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_a_handshake_that_never_ends_is_a_504_within_the_connect_timeout() -> None:
    async def silent(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()  # accepts, never answers the ClientHello

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, silent, listeners)
            async with open_proxy(f"https://127.0.0.1:{port}", connect_timeout=0.3) as proxy:
                started = trio.current_time()
                response = await trio.to_thread.run_sync(
                    lambda: httpx.get(f"{proxy.url}/events", timeout=5)
                )
                waited = trio.current_time() - started
                [ended] = await proxy.wait_for("ended")
            nursery.cancel_scope.cancel()
    assert response.status_code == 504
    assert "did not finish the TLS handshake within 0.3s" in response.text
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-timeout")
    assert 0.3 <= waited < 2


async def test_a_pool_of_https_members_in_the_testing_toolkit_balances_and_fails_over(
    ca: object, ca_file: Path
) -> None:
    """Each member gets its own TLS connection (SNI and CA checked); a member whose
    certificate is not trusted fails its connect, and the exchange moves on."""
    untrusted = server_context(trustme.CA(), "localhost")
    with trio.fail_after(10):
        async with (
            tls_origin(server_context(ca, "localhost")) as a,
            tls_origin(server_context(ca, "localhost")) as b,
            tls_origin(untrusted) as c,
            open_proxy(
                upstreams=[f"https://localhost:{port}" for port in (a, b, c)],
                upstream_tls=client_context(ca_file),
            ) as proxy,
        ):
            for _ in range(3):
                response = await trio.to_thread.run_sync(
                    lambda: httpx.get(f"{proxy.url}/events", timeout=5)
                )
                assert response.status_code == 200
                assert [e.id for e in parse_sse(response.content)] == ["1", "2", "3"]
    assert [r["member"] for r in proxy.of_kind("upstream")] == ["a", "b", "a"]
    [failed] = proxy.of_kind("upstream-failed")
    assert failed["member"] == "c"


def test_run_balances_a_pool_of_https_members(ca: object, ca_file: Path) -> None:
    from sseproxy.testing import BackgroundTrio

    with BackgroundTrio() as loop:
        ports = [loop.enter(tls_origin(server_context(ca, "localhost"), QUIET)) for _ in "ab"]
        command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
        command += ["--upstream", "http://127.0.0.1:1", "--upstream-ca", str(ca_file)]
        command += [arg for port in ports for arg in ("--upstream", f"https://localhost:{port}")]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            try:
                assert process.stdout is not None
                lines = Lines(process.stdout)
                found = lines.wait_for(r"proxy on (http://\S+) -> round_robin pool a=(\S+)")
                assert found[2] == "http://127.0.0.1:1,"  # a refuses: b and c serve
                for _ in range(2):
                    target = f"{found[1]}/events?count=1&interval=0"
                    with httpx.stream("GET", target, timeout=5) as r:
                        body = r.read()
                    assert r.status_code == 200
                    assert [e.id for e in parse_sse(body)] == ["1"]
            finally:
                process.terminate()
                process.wait(timeout=10)
