"""sseproxy's toxiproxy API answers as the real toxiproxy-server does.

`SEQUENCE` goes to both servers, request by request; status, content type and body must
match once ports (chosen by the OS) and the version are normalised. What is left out of
the sequence differs on purpose (docs/toxiproxy.md says why) and is tested on its own.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest

from tests.toxiproxy_rig import HOST, Reply, call, real_toxiproxy, sseproxy_api

L = f"{HOST}:0"
UP = f"{HOST}:9"

Step = tuple[str, str, Any]

SEQUENCE: list[Step] = [
    ("GET", "/version", None),
    ("GET", "/proxies", None),
    ("POST", "/reset", None),
    ("POST", "/proxies", {"name": "a", "listen": L, "upstream": UP}),
    ("POST", "/proxies", {"name": "a", "listen": L, "upstream": UP}),
    ("POST", "/proxies", {"listen": L, "upstream": UP}),
    ("POST", "/proxies", {"name": "x", "listen": L}),
    ("POST", "/proxies", b"garbage"),
    ("POST", "/proxies", b""),
    ("POST", "/proxies", []),
    ("POST", "/proxies", {"name": 5}),
    ("POST", "/proxies", {"name": "e", "upstream": UP, "enabled": "yes"}),
    ("POST", "/proxies", {"name": "y", "listen": "bad", "upstream": UP}),
    ("POST", "/proxies", {"name": "z", "listen": L, "upstream": "nowhere", "enabled": False}),
    ("POST", "/proxies", {"name": "b", "listen": "BUSY", "upstream": UP}),
    ("GET", "/proxies", None),
    ("GET", "/proxies/a", None),
    ("GET", "/proxies/nope", None),
    ("GET", "/proxies/a/toxics", None),
    ("POST", "/proxies/a/toxics", {"type": "nope"}),
    ("POST", "/proxies/a/toxics", {"name": "t"}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "stream": "sideways"}),
    ("POST", "/proxies/a/toxics", {"type": "latency"}),
    ("POST", "/proxies/a/toxics", {"type": "latency"}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "stream": "Upstream"}),
    (
        "POST",
        "/proxies/a/toxics",
        {
            "type": "bandwidth",
            "name": "bw",
            "stream": "upstream",
            "toxicity": 0.5,
            "attributes": {"rate": 10},
        },
    ),
    ("POST", "/proxies/a/toxics", {"type": "timeout", "attributes": {"timeout": 0}}),
    ("POST", "/proxies/a/toxics", {"type": "slow_close", "attributes": {"delay": 10}}),
    ("POST", "/proxies/a/toxics", {"type": "reset_peer", "attributes": {"timeout": 10}}),
    ("POST", "/proxies/a/toxics", {"type": "slicer", "attributes": {"average_size": 10}}),
    ("POST", "/proxies/a/toxics", {"type": "limit_data", "attributes": {"bytes": 10}}),
    ("POST", "/proxies/a/toxics", {"type": "noop"}),
    (
        "POST",
        "/proxies/a/toxics",
        {"type": "latency", "name": "l2", "attributes": {"latency": "x"}},
    ),
    (
        "POST",
        "/proxies/a/toxics",
        {"type": "latency", "name": "l3", "attributes": {"latency": 1.5}},
    ),
    ("POST", "/proxies/a/toxics", {"type": "latency", "name": "l4", "attributes": {"bogus": 1}}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "name": "l5", "attributes": []}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "name": "l6", "toxicity": "1"}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "name": "l7", "toxicity": 1.5}),
    ("POST", "/proxies/a/toxics", {"type": "latency", "name": "l8", "attributes": None}),
    ("POST", "/proxies/a/toxics", []),
    ("POST", "/proxies/a/toxics", b""),
    ("POST", "/proxies/nope/toxics", {"type": "latency"}),
    ("GET", "/proxies/a/toxics", None),
    ("GET", "/proxies/a/toxics/bw", None),
    ("GET", "/proxies/a/toxics/nope", None),
    ("POST", "/proxies/a/toxics/bw", {"attributes": {"rate": 20}}),
    ("PATCH", "/proxies/a/toxics/bw", {"toxicity": 0.25}),
    ("PATCH", "/proxies/a/toxics/bw", {"type": "latency", "name": "zz", "stream": "downstream"}),
    ("PATCH", "/proxies/a/toxics/bw", {"toxicity": "x"}),
    ("PATCH", "/proxies/a/toxics/bw", {"attributes": {"rate": "x"}}),
    ("PATCH", "/proxies/a/toxics/bw", [1]),
    ("PATCH", "/proxies/a/toxics/nope", {"toxicity": 0.2}),
    ("DELETE", "/proxies/a/toxics/bw", None),
    ("DELETE", "/proxies/a/toxics/bw", None),
    ("GET", "/proxies/a", None),
    ("POST", "/proxies/a", {"enabled": False}),
    ("PATCH", "/proxies/a", {"enabled": True}),
    ("PATCH", "/proxies/a", b"zzz"),
    ("PATCH", "/proxies/a", {"name": "renamed", "upstream": f"{HOST}:10"}),
    ("PATCH", "/proxies/z", {"listen": "bad"}),
    ("PATCH", "/proxies/z", {"enabled": True}),
    ("POST", "/proxies", {"name": "w", "listen": L, "upstream": UP}),
    ("PATCH", "/proxies/w", {"listen": "bad"}),
    ("GET", "/proxies/w", None),
    ("PATCH", "/proxies/w", {"listen": L}),
    ("DELETE", "/proxies/w", None),
    ("POST", "/proxies/nope", {"enabled": True}),
    ("DELETE", "/proxies/nope", None),
    ("GET", "/proxies/nope/toxics", None),
    (
        "POST",
        "/populate",
        [{"name": "a", "listen": L, "upstream": UP}, {"name": "p2", "listen": L, "upstream": UP}],
    ),
    (
        "POST",
        "/populate",
        [{"name": "p3", "listen": L, "upstream": UP}, {"name": "p4", "listen": L}],
    ),
    ("POST", "/populate", [{"listen": L, "upstream": UP}]),
    ("POST", "/populate", {"name": "p3"}),
    ("POST", "/populate", [5]),
    ("POST", "/populate", [{"name": 5}]),
    ("POST", "/populate", b""),
    ("POST", "/populate", []),
    ("POST", "/populate", [{"name": "q", "listen": "bad", "upstream": UP}]),
    (
        "POST",
        "/populate",
        [
            {"name": "n1", "listen": L, "upstream": UP},
            {"name": "n2", "listen": "BUSY", "upstream": UP},
        ],
    ),
    ("POST", "/proxies/p2/toxics", {"type": "latency", "attributes": {"latency": 5}}),
    ("POST", "/populate", [{"name": "p2", "listen": "P2", "upstream": UP}]),
    ("POST", "/populate", [{"name": "p2", "listen": L, "upstream": UP, "enabled": False}]),
    ("GET", "/proxies", None),
    ("PUT", "/proxies", None),
    ("DELETE", "/proxies", None),
    ("GET", "/proxies/", None),
    ("GET", "/nothing", None),
    ("POST", "/proxies/n1/toxics", {"type": "limit_data"}),
    ("POST", "/reset", None),
    ("GET", "/proxies", None),
    ("DELETE", "/proxies/a", None),
    ("DELETE", "/proxies/a", None),
]


def _normalised(reply: Reply, ports: dict[str, str]) -> tuple[int, str, Any]:
    """The body as sent, byte for byte (field order, spacing, the final newline), but for
    the ports the OS chose, the version and toxiproxy's empty "Logger" field."""
    text = reply.body.decode()
    text = text.replace('"Logger":{},', "")  # see docs/toxiproxy.md
    for real, shown in ports.items():
        text = re.sub(rf"{re.escape(real)}(?!\d)", shown, text)
    text = re.sub(r'"version": "[^"]*"', '"version": "V"', text)
    return reply.status, reply.content_type, text


def _run(base: str, busy: int) -> list[tuple[Step, tuple[int, str, Any]]]:
    ports: dict[str, str] = {}
    seen: list[tuple[Step, tuple[int, str, Any]]] = []
    for step in SEQUENCE:
        method, path, body = step
        text = json.dumps(body) if not isinstance(body, bytes) and body is not None else None
        if text is not None:
            text = text.replace("BUSY", f"{HOST}:{busy}")
            if "P2" in text:  # p2's own address: populate leaves it alone
                text = text.replace('"P2"', json.dumps(ports_by_name["p2"]))
        raw = text.encode() if text is not None else body if isinstance(body, bytes) else None
        reply = call(base, method, path, raw=raw)
        if reply.body.startswith((b"{", b"[")):
            for listen in re.findall(rf'"listen":"({re.escape(HOST)}:\d+)"', reply.body.decode()):
                if not listen.endswith(":0") and listen not in ports:
                    ports[listen] = f"{HOST}:PORT{len(ports)}"
            for name, listen in re.findall(
                rf'"name":"([^"]+)","listen":"({re.escape(HOST)}:\d+)"', reply.body.decode()
            ):
                ports_by_name[name] = listen
        seen.append((step, _normalised(reply, ports)))
    return seen


ports_by_name: dict[str, str] = {}


@pytest.fixture
def busy_port() -> Any:
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        yield held.getsockname()[1]


def test_the_same_requests_get_the_same_answers(busy_port: int) -> None:
    with real_toxiproxy() as real:
        ports_by_name.clear()
        expected = _run(real, busy_port)
    with sseproxy_api() as ours:
        ports_by_name.clear()
        got = _run(ours.url, busy_port)
    differences = [
        f"{step[0]} {step[1]} {step[2]!r}:\n  toxiproxy {want}\n  sseproxy  {have}"
        for (step, want), (_, have) in zip(expected, got, strict=True)
        if want != have
    ]
    assert not differences, "\n".join(differences)


# -- what differs on purpose (docs/toxiproxy.md)


def _raw(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_browsers_and_foreign_host_names_are_refused() -> None:
    with sseproxy_api() as api:
        browser = _raw(
            api.url,
            b"POST /reset HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n",
        )
        rebinding = _raw(
            api.url,
            b"POST /reset HTTP/1.1\r\nHost: attacker.example\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert browser.startswith(b"HTTP/1.1 403 ") and browser.endswith(b"User agent not allowed\n")
    assert rebinding.startswith(b"HTTP/1.1 403 ")


def test_a_token_is_required_when_given() -> None:
    with sseproxy_api(token="s3cret") as api:
        assert call(api.url, "GET", "/proxies").status == 401
        reply = _raw(
            api.url,
            b"GET /proxies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"{}")


def test_metrics_and_version_are_sseproxys() -> None:
    with sseproxy_api() as api:
        created = call(api.url, "POST", "/proxies", {"name": "m", "listen": L, "upstream": UP})
        assert created.status == 201
        port = int(created.json()["listen"].rsplit(":", 1)[1])
        socket.create_connection((HOST, port), timeout=5).close()
        api.loop.run(api.journal.wait_for, "closed")
        metrics = call(api.url, "GET", "/metrics")
        version = call(api.url, "GET", "/version")
    assert metrics.status == 200 and metrics.content_type.startswith("text/plain")
    assert re.search(rb"^sseproxy_connections_total 1$", metrics.body, re.MULTILINE)
    assert version.json()["version"]


def test_a_proxy_without_listen_listens_on_loopback() -> None:
    """toxiproxy binds every interface; a chaos proxy should not be reachable from the LAN."""
    with sseproxy_api() as api:
        created = call(api.url, "POST", "/proxies", {"name": "n", "upstream": UP})
    assert created.status == 201
    assert created.json()["listen"].startswith(f"{HOST}:")


def test_an_http_mode_proxy_takes_sse_toxics() -> None:
    """`mode: "http"` (an sseproxy extension) makes an HTTP proxy: HTTP faults then apply."""
    from sseproxy.testing import run_origin

    with run_origin(heartbeat=0) as origin, sseproxy_api() as api:
        upstream = origin.removeprefix("http://")
        body = {"name": "h", "listen": L, "upstream": upstream, "mode": "http"}
        port = int(call(api.url, "POST", "/proxies", body).json()["listen"].rsplit(":", 1)[1])
        toxic = {"type": "http_status", "attributes": {"code": 429, "retry_after": "5s"}}
        assert call(api.url, "POST", "/proxies/h/toxics", toxic).status == 200
        reply = _raw(
            f"http://{HOST}:{port}",
            b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert reply.startswith(b"HTTP/1.1 429 ")
    assert b"retry-after: 5" in reply.lower()


def test_toxics_leave_the_faults_set_by_other_means_alone() -> None:
    """A fault added through the control API (or the scenario) survives toxic changes and
    /reset; a toxic may not take its name."""
    from dataclasses import replace

    from sseproxy.scenario import _Reader

    with sseproxy_api() as api:
        call(api.url, "POST", "/proxies", {"name": "p", "listen": L, "upstream": UP})
        proxy = api.fleet.members["p"].proxy
        spec = _Reader("", "<test>").fault(0, {"type": "latency", "name": "mine"})

        def faults() -> list[str]:
            return [f.name for f in proxy.scenario.faults]

        api.loop.run_sync(lambda: proxy.set_scenario(replace(proxy.scenario, faults=(spec,))))
        toxic = {"type": "bandwidth", "attributes": {"rate": 1}}
        assert call(api.url, "POST", "/proxies/p/toxics", toxic).status == 200
        assert api.loop.run_sync(faults) == ["mine", "bandwidth_downstream"]
        taken = call(api.url, "POST", "/proxies/p/toxics", {**toxic, "name": "mine"})
        assert taken.status == 409
        assert call(api.url, "POST", "/reset").status == 204
        assert api.loop.run_sync(faults) == ["mine"]
