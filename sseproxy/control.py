"""The control API: change faults while streams are live, list and kill connections, watch.

HTTP/1.1 + JSON, served with h11 on trio next to the proxy (`sseproxy run --control
127.0.0.1:8474`; `sseproxy ctl` is its client). Every change goes through
`Proxy.set_scenario`, so it applies to open connections too, and leaves a `scenario`
record in the journal. See docs/control.md for the endpoints.

Security: loopback by default. Any other address needs a token, and then every request
must carry it (`Authorization: Bearer TOKEN` or `X-Sseproxy-Token: TOKEN`). Without a
token, requests must name the host as `localhost` or an IP address (a web page cannot
reach the API through DNS rebinding), and bodies must be JSON (`application/json`) or, for
the scenario, a PUT, so a browser always asks first (CORS preflight, never granted).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import math
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import metadata
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import h11
import trio

from sseproxy.errors import ConfigError, ScenarioError
from sseproxy.journal import Journal
from sseproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sseproxy.metrics import Metrics
from sseproxy.proxy import Proxy
from sseproxy.scenario import FaultSpec, Scenario, _Reader, parse_scenario

__all__ = [
    "DEFAULT_PORT",
    "HEARTBEAT",
    "JournalFeed",
    "check_control_address",
    "control_url",
    "is_loopback",
    "merge_patch",
    "serve_control",
]

DEFAULT_PORT: Final = 8474
HEARTBEAT: Final = 15.0
"""Seconds of silence after which `/journal` sends a comment (keeps idle timeouts away)."""
MAX_BODY: Final = 1024 * 1024
KILL_WAIT: Final = 5.0
"""How long a kill waits for the connections' `closed` records before answering."""
_RECEIVE: Final = 64 * 1024
_JSON: Final = "application/json"
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)

Record = dict[str, Any]


# -- who may bind where -------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """'127.0.0.1', '::1', '127.x.y.z', '::ffff:127.0.0.1' and 'localhost' are loopback;
    everything else (0.0.0.0, a LAN address, a host name) is not."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_control_address(host: str, token: str | None) -> None:
    """ConfigError unless the control API may listen on `host` with this token."""
    if token is not None and not token.strip():
        raise ConfigError("--control-token is empty; give a secret, e.g. $(openssl rand -hex 16)")
    if not token and not is_loopback(host):
        raise ConfigError(
            f"the control API on {host} would let anyone who reaches it change faults and "
            "close connections; give --control-token TOKEN (or $SSEPROXY_CONTROL_TOKEN), "
            "or listen on 127.0.0.1"
        )


def control_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


# -- the journal, live --------------------------------------------------------------------


def _nothing() -> None:
    """What to call to unsubscribe when not subscribed."""


class _Follower:
    """One `/journal` reader: records queue up here until its task sends them."""

    def __init__(self, limit: int, kinds: frozenset[str]) -> None:
        self.queue: deque[tuple[int, Record]] = deque()
        self.limit = limit
        self.kinds = kinds
        self.lagged = False
        self._wake = trio.Event()

    def push(self, seq: int, record: Record) -> None:
        if self.kinds and record.get("kind") not in self.kinds:
            return
        if len(self.queue) >= self.limit:
            self.lagged = True  # too slow: its stream ends, it resumes with Last-Event-ID
        else:
            self.queue.append((seq, record))
        self._wake.set()

    async def next_batch(self, timeout: float) -> list[tuple[int, Record]]:
        """What arrived (waiting up to `timeout` for something; empty when nothing did)."""
        with trio.move_on_after(timeout):
            while not self.queue and not self.lagged:
                await self._wake.wait()
                self._wake = trio.Event()
        batch = list(self.queue)
        self.queue.clear()
        return batch


class JournalFeed:
    """A journal subscriber that numbers records (1, 2, ...: the SSE ids of `/journal`),
    keeps the last `backlog` of them for readers that resume, and wakes readers."""

    def __init__(self, backlog: int = 10_000, follower_limit: int = 10_000) -> None:
        self.seq = 0
        self.recent: deque[tuple[int, Record]] = deque(maxlen=backlog)
        self.followers: set[_Follower] = set()
        self.follower_limit = follower_limit
        self.changed = trio.Event()
        """Set (and replaced) at every record: `await feed.changed.wait()` for the next."""
        self._unsubscribe: Callable[[], None] = _nothing

    def attach(self, journal: Journal) -> JournalFeed:
        self.detach()
        self._unsubscribe = journal.subscribe(self.observe)
        return self

    def detach(self) -> None:
        self._unsubscribe()
        self._unsubscribe = _nothing

    def observe(self, record: Record) -> None:
        self.seq += 1
        self.recent.append((self.seq, record))
        for follower in self.followers:
            follower.push(self.seq, record)
        self.changed.set()
        self.changed = trio.Event()

    def follow(self, after: int | None, kinds: Iterable[str] = ()) -> tuple[_Follower, int]:
        """A new reader, given the records after `after` still kept; also returns how many
        records after `after` are no longer kept (lost to it)."""
        follower = _Follower(self.follower_limit, frozenset(kinds))
        lost = 0
        if after is not None and after < self.seq:
            oldest = self.recent[0][0] if self.recent else self.seq + 1
            lost = max(0, oldest - after - 1)
            for seq, record in self.recent:
                if seq > after:
                    follower.push(seq, record)
        self.followers.add(follower)
        return follower, lost

    def unfollow(self, follower: _Follower) -> None:
        self.followers.discard(follower)


# -- HTTP plumbing ------------------------------------------------------------------------


class ApiError(Exception):
    """A refused request: its status and a one-line message (sent as {"error": ...})."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split("\n"))
        self.headers = list(headers)


@dataclass
class Request:
    method: str
    target: str
    path: list[str]
    """Decoded path segments: '/faults/slow%20one' -> ['faults', 'slow one']."""
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names, latin-1 values."""
    raw_headers: dict[bytes, bytes]
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status, (json.dumps(value, indent=2) + "\n").encode(), **kwargs)


@dataclass
class Streamed:
    """A reply that streams (the journal): `run` sends the body until it returns."""

    run: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]
    content_type: str = "text/event-stream"


Handler = Callable[[Request], Awaitable[Reply | Streamed]]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(request: Request) -> bool:
    media = _media_type(request)
    return media == _JSON or media.endswith("+json")


def _json_body(request: Request) -> Any:
    if not _is_json(request):
        raise ApiError(415, "send the body as JSON, with Content-Type: application/json")
    try:
        return json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None


def _json_object(request: Request, example: str) -> dict[str, Any]:
    value = _json_body(request)
    if not isinstance(value, dict):
        raise ApiError(400, f"expected a JSON object, e.g. {example}")
    return value


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: keys in `patch` replace, null removes, objects merge."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def fault_json(spec: FaultSpec) -> dict[str, Any]:
    """A fault as the API shows it: its scenario table, `type` and `name` first."""
    table = spec.to_table()
    rest = {key: value for key, value in table.items() if key not in ("type", "name")}
    return {"type": spec.type, "name": spec.name, **rest}


def _host_allowed(host_header: str) -> bool:
    """Without a token: `localhost` or an IP address only (no DNS rebinding)."""
    if not host_header:
        return True
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- the API ------------------------------------------------------------------------------

ENDPOINTS: Final = (
    "GET /status",
    "GET /scenario",
    "PUT /scenario",
    "GET /faults",
    "POST /faults",
    "DELETE /faults",
    "GET /faults/{name}",
    "PATCH /faults/{name}",
    "DELETE /faults/{name}",
    "GET /connections",
    "DELETE /connections",
    "GET /connections/{id}",
    "DELETE /connections/{id}",
    "GET /metrics",
    "GET /journal",
)


class Control:
    """The API's state and handlers for one proxy."""

    def __init__(self, proxy: Proxy, *, token: str | None, heartbeat: float = HEARTBEAT):
        self.proxy = proxy
        self.token = token.encode() if token else None
        self.heartbeat = heartbeat
        self.metrics = Metrics().attach(proxy.journal)
        self.feed = JournalFeed().attach(proxy.journal)
        self.routes: list[tuple[str, tuple[str, ...], Handler]] = [
            ("GET", (), self.index),
            ("GET", ("status",), self.status),
            ("GET", ("scenario",), self.get_scenario),
            ("PUT", ("scenario",), self.put_scenario),
            ("GET", ("faults",), self.list_faults),
            ("POST", ("faults",), self.add_fault),
            ("DELETE", ("faults",), self.remove_all_faults),
            ("GET", ("faults", "*"), self.get_fault),
            ("PATCH", ("faults", "*"), self.change_fault),
            ("DELETE", ("faults", "*"), self.remove_fault),
            ("GET", ("connections",), self.list_connections),
            ("DELETE", ("connections",), self.kill_all),
            ("GET", ("connections", "*"), self.get_connection),
            ("DELETE", ("connections", "*"), self.kill_one),
            ("GET", ("metrics",), self.get_metrics),
            ("GET", ("journal",), self.journal),
        ]

    def close(self) -> None:
        self.metrics.detach()
        self.feed.detach()

    # -- dispatch

    def _route(self, request: Request) -> Handler:
        allowed: list[str] = []
        for method, pattern, handler in self.routes:
            if len(pattern) == len(request.path) and all(
                p in ("*", s) for p, s in zip(pattern, request.path, strict=True)
            ):
                if method == request.method:
                    return handler
                allowed.append(method)
        if allowed:
            raise ApiError(
                405,
                f"{request.method} is not allowed on /{'/'.join(request.path)}; "
                f"allowed: {', '.join(allowed)}",
                [("Allow", ", ".join(allowed))],
            )
        raise ApiError(404, f"no endpoint {request.target.split('?')[0]}; see GET /")

    def _check_access(self, request: Request) -> None:
        if self.token is None:
            if not _host_allowed(request.headers.get("host", "")):
                raise ApiError(
                    403,
                    f"Host {request.headers['host']!r} refused: without a token the control "
                    "API answers to localhost and IP addresses only",
                )
            return
        given: bytes | None = None
        scheme, _, value = request.raw_headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given = value.strip()
        elif b"x-sseproxy-token" in request.raw_headers:
            given = request.raw_headers[b"x-sseproxy-token"].strip()
        elif request.path == ["journal"] and "token" in request.query:
            given = request.query["token"].encode()  # EventSource cannot send headers
        if given is None or not hmac.compare_digest(given, self.token):
            raise ApiError(
                401,
                "missing or wrong token: send Authorization: Bearer TOKEN",
                [("WWW-Authenticate", 'Bearer realm="sseproxy"')],
            )

    async def respond(self, request: Request) -> Reply | Streamed:
        try:
            self._check_access(request)
            return await self._route(request)(request)
        except ApiError as error:
            return Reply.json({"error": error.message}, error.status, headers=error.headers)

    # -- scenario and faults

    def _apply(self, scenario: Scenario, change: str, **fields: Any) -> None:
        if self.proxy.settings.mode == "tcp" and any(
            spec.match.path or spec.match.methods or spec.match.headers for spec in scenario.faults
        ):
            raise ApiError(400, "a fault with `match` needs HTTP requests; use --mode http")
        self.proxy.set_scenario(scenario)
        self.proxy.journal.write(
            "scenario",
            "-",
            change=change,
            by="control",
            faults=[spec.name for spec in scenario.faults],
            **fields,
        )

    def _scenario_json(self) -> dict[str, Any]:
        scenario = self.proxy.scenario
        return {
            "name": scenario.name,
            "description": scenario.description,
            "source": scenario.source,
            "seed": scenario.seed,
            "run_seed": self.proxy.seed,
            "faults": [fault_json(spec) for spec in scenario.faults],
            "toml": scenario.to_toml(),
        }

    def _find(self, name: str) -> int:
        for index, spec in enumerate(self.proxy.scenario.faults):
            if spec.name == name:
                return index
        names = ", ".join(spec.name for spec in self.proxy.scenario.faults) or "none"
        raise ApiError(404, f"no fault named {name!r} (faults: {names})")

    def _fault_spec(self, table: dict[str, Any], index: int) -> FaultSpec:
        """A fault validated as the scenario reader validates `[[faults]]` entry `index`."""
        try:
            return _Reader("", "<control>").fault(index, table)
        except ScenarioError as error:
            where = f"{error.where}: " if error.where else ""
            raise ApiError(400, f"{where}{error.message}") from None

    async def index(self, request: Request) -> Reply:
        return Reply.json({"sseproxy": _version(), "endpoints": list(ENDPOINTS)})

    async def status(self, request: Request) -> Reply:
        proxy = self.proxy
        return Reply.json(
            {
                "version": _version(),
                "listen": proxy.listener,
                "upstream": str(proxy.settings.upstream),
                "mode": proxy.settings.mode,
                "scenario": proxy.scenario.name,
                "seed": proxy.seed,
                "faults": [spec.name for spec in proxy.scenario.faults],
                "connections": {"open": len(proxy.live), "total": proxy.connections},
                "uptime": round(trio.current_time() - proxy.journal.origin, 3),
                "live": proxy.settings.live,
                "journal_records": self.feed.seq,
            }
        )

    async def get_scenario(self, request: Request) -> Reply:
        if request.query.get("format") == "toml":
            return Reply(200, self.proxy.scenario.to_toml().encode(), "application/toml")
        return Reply.json(self._scenario_json())

    async def put_scenario(self, request: Request) -> Reply:
        file = request.query.get("file") or "<scenario>"
        try:
            if _is_json(request):
                data = _json_object(request, '{"scenario": {"name": "x"}, "faults": []}')
                scenario = _Reader("", file).scenario(data)
            else:
                try:
                    text = request.body.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError(400, f"{file}: the scenario is not UTF-8 text") from None
                scenario = parse_scenario(text, file=file)
        except ScenarioError as error:
            raise ApiError(400, str(error)) from None
        self._apply(scenario, "replace")
        return Reply.json(self._scenario_json())

    async def list_faults(self, request: Request) -> Reply:
        faults = [fault_json(spec) for spec in self.proxy.scenario.faults]
        return Reply.json({"scenario": self.proxy.scenario.name, "faults": faults})

    async def get_fault(self, request: Request) -> Reply:
        spec = self.proxy.scenario.faults[self._find(request.path[1])]
        return Reply.json(fault_json(spec))

    async def add_fault(self, request: Request) -> Reply:
        table = _json_object(request, '{"type": "latency", "delay": "200ms"}')
        scenario = self.proxy.scenario
        spec = self._fault_spec(table, len(scenario.faults))
        if any(other.name == spec.name for other in scenario.faults):
            raise ApiError(
                409, f"a fault named {spec.name!r} exists; give another `name` or PATCH it"
            )
        self._apply(replace(scenario, faults=(*scenario.faults, spec)), "add", fault=spec.name)
        return Reply.json(
            fault_json(spec), 201, headers=[("Location", f"/faults/{_quote(spec.name)}")]
        )

    async def change_fault(self, request: Request) -> Reply:
        name = request.path[1]
        patch = _json_object(request, '{"delay": "500ms"}')
        scenario = self.proxy.scenario
        index = self._find(name)
        table = merge_patch(fault_json(scenario.faults[index]), patch)
        table.setdefault("name", name)
        spec = self._fault_spec(table, index)
        if spec.name != name and any(other.name == spec.name for other in scenario.faults):
            raise ApiError(409, f"a fault named {spec.name!r} exists; pick another name")
        faults = list(scenario.faults)
        faults[index] = spec
        self._apply(replace(scenario, faults=tuple(faults)), "change", fault=name)
        return Reply.json(fault_json(spec))

    async def remove_fault(self, request: Request) -> Reply:
        name = request.path[1]
        scenario = self.proxy.scenario
        index = self._find(name)
        faults = scenario.faults[:index] + scenario.faults[index + 1 :]
        self._apply(replace(scenario, faults=faults), "remove", fault=name)
        return Reply.json({"removed": [name]})

    async def remove_all_faults(self, request: Request) -> Reply:
        scenario = self.proxy.scenario
        names = [spec.name for spec in scenario.faults]
        if names:
            self._apply(replace(scenario, faults=()), "remove")
        return Reply.json({"removed": names})

    # -- connections

    def _connections(self) -> list[dict[str, Any]]:
        return sorted((c.info() for c in self.proxy.live.values()), key=_number_of)

    async def list_connections(self, request: Request) -> Reply:
        return Reply.json({"connections": self._connections()})

    async def get_connection(self, request: Request) -> Reply:
        conn = self.proxy.live.get(request.path[1])
        if conn is None:
            raise ApiError(404, f"no open connection {request.path[1]!r}")
        return Reply.json(conn.info())

    def _how(self, request: Request) -> Literal["close", "reset"]:
        how = request.query.get("how", "close")
        if how == "close":
            return "close"
        if how == "reset":
            return "reset"
        raise ApiError(400, f"how={how!r}: expected close (FIN) or reset (RST)")

    async def _kill(self, ids: list[str], how: Literal["close", "reset"]) -> Reply:
        for conn_id in ids:
            self.proxy.live[conn_id].kill(how)
        with trio.move_on_after(KILL_WAIT):  # answer once the journal has closed them
            while any(conn_id in self.proxy.live for conn_id in ids):
                await self.feed.changed.wait()
        return Reply.json({"killed": ids, "how": how})

    async def kill_one(self, request: Request) -> Reply:
        how = self._how(request)
        conn_id = request.path[1]
        if conn_id not in self.proxy.live:
            raise ApiError(404, f"no open connection {conn_id!r}")
        return await self._kill([conn_id], how)

    async def kill_all(self, request: Request) -> Reply:
        how = self._how(request)
        return await self._kill([info["id"] for info in self._connections()], how)

    # -- watching

    async def get_metrics(self, request: Request) -> Reply:
        text = self.metrics.render(
            self.proxy.live.values(), scenario=self.proxy.scenario.name, seed=self.proxy.seed
        )
        return Reply(200, text.encode(), METRICS_CONTENT_TYPE)

    async def journal(self, request: Request) -> Streamed:
        resume = request.headers.get("last-event-id") or request.query.get("after")
        after: int | None = None
        if resume is not None:
            if not re.fullmatch(r"[0-9]{1,18}", resume.strip()):
                raise ApiError(400, f"Last-Event-ID {resume!r}: expected a record number")
            after = int(resume)
        kinds = [k for k in request.query.get("kind", "").split(",") if k]
        follower, lost = self.feed.follow(after, kinds)

        async def run(send: Callable[[bytes], Awaitable[None]]) -> None:
            try:
                await send(b": sseproxy journal\nretry: 1000\n\n")
                if lost:
                    await send(f": {lost} records are no longer kept\n\n".encode())
                while True:
                    batch = await follower.next_batch(self.heartbeat)
                    if not batch and not follower.lagged:
                        await send(b": heartbeat\n\n")
                        continue
                    await send(
                        b"".join(
                            f"id: {seq}\ndata: {json.dumps(record)}\n\n".encode()
                            for seq, record in batch
                        )
                    )
                    if follower.lagged:
                        await send(b": too slow, records dropped; resume with Last-Event-ID\n\n")
                        return
            finally:
                self.feed.unfollow(follower)

        return Streamed(run)

    # -- one HTTP connection

    async def handle(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, stream)
                if request is None:
                    return
                if isinstance(request, Reply):
                    await _send_reply(conn, stream, request, close=True)
                    return
                try:
                    reply = await self.respond(request)
                except Exception as error:  # a bug here must not take the proxy down
                    reply = Reply.json({"error": f"internal error: {error!r}"}, 500)
                if isinstance(reply, Streamed):
                    await _send_streamed(conn, stream, reply)
                    return
                await _send_reply(conn, stream, reply, head=request.method == "HEAD")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as error:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                reply = Reply.json({"error": f"bad request: {error}"}, error.error_status_hint)
                with contextlib.suppress(*_GONE, h11.LocalProtocolError):
                    await _send_reply(conn, stream, reply, close=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception as error:  # never let one client's trouble stop the API
            self.proxy.journal.write("control-error", "-", error=repr(error))
        finally:
            await trio.aclose_forcefully(stream)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Event | type:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(_RECEIVE)))


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> Request | Reply | None:
    """The next request with its body; None when the client is done; a Reply to send
    and close with when the request is refused before it is read (too large)."""
    event = await _next_event(conn, stream)
    if not isinstance(event, h11.Request):
        return None
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
    raw_headers = dict(event.headers)
    if conn.they_are_waiting_for_100_continue:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return Reply.json({"error": f"the body is larger than {MAX_BODY} bytes"}, 413)
        await stream.send_all(
            conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
        )
    chunks: list[bytes] = []
    total = 0
    while isinstance(body := await _next_event(conn, stream), h11.Data):
        total += len(body.data)
        if total > MAX_BODY:
            return Reply.json({"error": f"the body is larger than {MAX_BODY} bytes"}, 413)
        chunks.append(bytes(body.data))
    if not isinstance(body, h11.EndOfMessage):
        return None
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    return Request(
        method=event.method.decode("latin-1").upper(),
        target=target,
        path=[unquote(segment) for segment in parts.path.split("/") if segment],
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        raw_headers=raw_headers,
        body=b"".join(chunks),
    )


def _response(reply: Reply | Streamed, status: int, close: bool) -> h11.Response:
    headers = [("Content-Type", reply.content_type), ("Cache-Control", "no-store")]
    if isinstance(reply, Reply):
        headers += [*reply.headers, ("Content-Length", str(len(reply.body)))]
    else:
        headers += [("X-Accel-Buffering", "no")]
    if close:
        headers.append(("Connection", "close"))
    return h11.Response(status_code=status, headers=headers)


async def _send_reply(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    reply: Reply,
    *,
    close: bool = False,
    head: bool = False,
) -> None:
    data = conn.send(_response(reply, reply.status, close)) or b""
    if reply.body and not head:
        data += conn.send(h11.Data(data=reply.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def _send_streamed(conn: h11.Connection, stream: trio.abc.Stream, reply: Streamed) -> None:
    """Send a streaming reply until it ends, or the client goes away."""
    await stream.send_all(conn.send(_response(reply, 200, close=True)) or b"")

    async def send(data: bytes) -> None:
        await stream.send_all(conn.send(h11.Data(data=data)) or b"")

    async def watch(scope: trio.CancelScope) -> None:
        try:  # the client sends nothing more; EOF or an error means it left
            while await stream.receive_some(_RECEIVE):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    async def pump(scope: trio.CancelScope) -> None:
        try:
            await reply.run(send)
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        nursery.start_soon(pump, nursery.cancel_scope)


def _number_of(info: dict[str, Any]) -> float:
    conn_id = str(info.get("id", ""))
    return int(conn_id[1:]) if conn_id[1:].isdigit() else math.inf


def _quote(name: str) -> str:
    return quote(name, safe="")


def _version() -> str:
    try:
        return metadata.version("sseproxy")
    except metadata.PackageNotFoundError:
        return "unknown"


async def serve_control(
    proxy: Proxy,
    listener: trio.SocketListener,
    *,
    token: str | None = None,
    heartbeat: float = HEARTBEAT,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API for `proxy` on `listener` until cancelled.

    Refuses (ConfigError) a non-loopback listener without a token. Switches the proxy to
    live faults (`ProxySettings.live`) for connections that start from now on; `sseproxy
    run --control` builds the proxy live from the start, so every connection is.
    """
    host = listener.socket.getsockname()[0]
    check_control_address(host, token)
    if not proxy.settings.live:
        proxy.settings = replace(proxy.settings, live=True)
    control = Control(proxy, token=token, heartbeat=heartbeat)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, control.handle, [listener]))
            task_status.started()
    finally:
        control.close()
