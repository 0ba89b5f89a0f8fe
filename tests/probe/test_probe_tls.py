"""`sseproxy probe https://...`: the clients speak TLS to a TLS sseproxy listener
(`--listen-cert`; certificates from trustme) on loopback sockets.

The proxy runs an idle timeout in front of the built-in server, so the drops through TLS
must look as they do in clear: incomplete chunked bodies, each the timeout after the last
byte. A certificate the clients do not trust is a failed handshake, told apart from a
refused connect. (Usage errors of `--ca` and `--insecure`: test_command.py.)
"""

from __future__ import annotations

import re
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.probe.runner import Probe, ProbeSettings
from sseproxy.probe.summary import summarize
from sseproxy.probe.target import Target
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from sseproxy.tls import client_context
from tests.harness import scenario_of

trustme = pytest.importorskip("trustme")

HOST = "127.0.0.1"
QUIET = "/events?interval=100&heartbeat=0&retry=200"  # event 1 at once, then silence
IDLE = '[[faults]]\ntype = "idle-timeout"\ntimeout = "0.5s"\n'


@pytest.fixture(scope="module")
def ca() -> object:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))  # type: ignore[attr-defined]
    return path


@asynccontextmanager
async def tls_proxy(ca: object) -> AsyncIterator[int]:
    """The built-in server behind an sseproxy that listens with TLS (a certificate for
    127.0.0.1) and cuts streams idle for 0.5 s; yields the proxy's port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)  # type: ignore[attr-defined]
    async with trio.open_nursery() as nursery:
        origin_port = await nursery.start(origin.serve, HOST, 0, origin.OriginSettings())
        listener = await listen(HOST, 0)
        port: int = listener.socket.getsockname()[1]
        settings = ProxySettings(Upstream(HOST, origin_port), listen_tls=context)
        proxy = Proxy(settings, scenario_of(IDLE), Journal(keep=True))
        await nursery.start(serve_proxy, proxy, listener)
        yield port
        nursery.cancel_scope.cancel()


def _probe(port: int, **kw: object) -> Probe:
    values: dict[str, object] = {"clients": 2, "duration": 1.6, **kw}
    target = Target.parse(f"https://{HOST}:{port}{QUIET}")
    return Probe(ProbeSettings(target, **values))  # type: ignore[arg-type]


async def test_through_a_tls_listener_the_drops_look_as_in_clear(ca: object, ca_file: Path) -> None:
    with trio.fail_after(10):
        async with tls_proxy(ca) as port:
            probe = _probe(port, tls=client_context(ca_file, option="--ca"))
            await probe.run()
    result = summarize(probe)
    (group,) = result["drops"]
    # Each client: event 1, cut at 0.5 s; back at 0.7 s, event 2, cut at 1.2 s; back at 1.4 s.
    assert group["seen_as"] == "incomplete chunked body"
    assert group["count"] == 4
    assert 0.45 <= group["silence_before"]["p50"] <= 0.8
    assert result["totals"]["ids"]["lost"] == result["totals"]["ids"]["duplicated"] == 0
    # the client's own port under TLS (what merging with the proxy's journal matches on)
    assert all(c["local"] for c in result["connections"])


async def test_an_untrusted_certificate_is_a_failed_handshake_and_insecure_accepts_it(
    ca: object,
) -> None:
    with trio.fail_after(10):
        async with tls_proxy(ca) as port:
            distrust = _probe(port, clients=1, duration=0.3)  # the system's CAs
            await distrust.run()
            insecure = _probe(port, clients=1, duration=0.3, tls=client_context(insecure=True))
            await insecure.run()
    (attempt,) = distrust.records[0].attempts
    assert (attempt.kind, attempt.label) == ("refused", "TLS handshake failed")
    assert attempt.detail.startswith(f"TLS with {HOST}:{port} failed: certificate not accepted")
    assert (attempt.reason, attempt.established) == ("upstream-tls-error", False)
    group = summarize(distrust)["drops"][0]
    assert "TLS failed" in group["meaning"]
    (attempt,) = insecure.records[0].attempts
    assert attempt.established and attempt.events == 1


async def test_the_command_probes_https_with_ca(ca: object, ca_file: Path) -> None:
    with trio.fail_after(20):
        async with tls_proxy(ca) as port:
            command = [
                *(sys.executable, "-m", "sseproxy", "probe", f"https://{HOST}:{port}{QUIET}"),
                *("--ca", str(ca_file), "--duration", "1s", "--max-drops", "0"),
            ]
            done = await trio.run_process(command, capture_stdout=True, check=False)
    text = done.stdout.decode()
    assert done.returncode == 1, text
    assert f"probe https://{HOST}:{port}{QUIET}: 1 client for 1.0 s" in text
    # cut 0.5 s after the first event (a busy machine may show 0.6)
    assert re.search(
        r"\nFAIL --max-drops 0: 1 drop: 1 incomplete chunked body \(0\.[56] s after", text
    )
