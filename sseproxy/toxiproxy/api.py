"""toxiproxy's HTTP API over a `Fleet`: the same paths, status codes, JSON and errors.

Replies are written as toxiproxy's Go server writes them, byte for byte where it can be:
compact JSON in its field order, proxies listed by name, toxics upstream first, errors as
`{"error": MESSAGE, "status": CODE}` plus a newline with `text/plain` (Go's `http.Error`),
`/populate` errors as JSON with the proxies created so far. tests/test_toxiproxy_api.py
sends one request sequence to the real toxiproxy-server and to this API and compares;
docs/toxiproxy.md lists the differences that remain and why.

Access follows the control API: loopback unless a token is given, then a token on every
request; without a token the Host must be localhost or an IP (no DNS rebinding), and, as
toxiproxy does, a browser (`User-Agent: Mozilla/...`) is refused, so a web page can never
drive it even with a simple form POST.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, Final
from urllib.parse import unquote

import h11
import trio

from sseproxy.control.wire import Reply, Request, _host_allowed, serve_connection
from sseproxy.errors import ScenarioError
from sseproxy.fleet import Fleet, ListenError, Member, split_listen, upstream_of
from sseproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sseproxy.metrics import Metrics
from sseproxy.scenario import FaultSpec, _Reader
from sseproxy.toxiproxy.toxics import Toxic, ToxicError, go_kind, parse_toxic

__all__ = ["ToxiproxyApi", "serve_toxiproxy_api"]

_TEXT: Final = "text/plain; charset=utf-8"
_JSON: Final = "application/json"


class ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def reply(self) -> Reply:
        body = json.dumps({"error": self.message, "status": self.status}, separators=(",", ":"))
        return Reply(self.status, (body + "\n").encode(), _TEXT)


def _json(value: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(value, separators=(",", ":")).encode(), _JSON)


def _no_content() -> Reply:
    return Reply(204, b"", "")


def _decode(request: Request) -> Any:
    """The body's first JSON value, as Go's json.Decoder reads it (trailing data ignored)."""
    text = request.body.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise ApiError("bad request body: EOF", 400)
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as error:
        if error.pos == 0 and text[0] not in '{["-0123456789tfn':
            raise ApiError(
                f"bad request body: invalid character {text[0]!r} looking for beginning of value",
                400,
            ) from None
        raise ApiError(f"bad request body: {error.msg}", 400) from None
    except RecursionError:
        raise ApiError("bad request body: exceeded max depth", 400) from None
    return value


_PROXY_FIELDS: Final = (
    ("name", str, "string"),
    ("listen", str, "string"),
    ("upstream", str, "string"),
    ("enabled", bool, "bool"),
    ("mode", str, "string"),
)


def _proxy_input(value: Any, struct: str, of_type: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = go_kind(value)
        raise ApiError(
            f"bad request body: json: cannot unmarshal {kind} into Go value of type {of_type}", 400
        )
    for key, cls, go_type in _PROXY_FIELDS:
        field = value.get(key)
        if field is not None and not isinstance(field, cls):
            kind = go_kind(field)
            raise ApiError(
                f"bad request body: json: cannot unmarshal {kind} into Go struct field "
                f"{struct}.{key} of type {go_type}",
                400,
            )
    mode = value.get("mode")
    if mode is not None and mode not in ("tcp", "http"):
        raise ApiError(f"bad request body: mode {mode!r}: expected tcp or http", 400)
    return value


class ToxiproxyApi:
    """The API's handlers over one fleet."""

    def __init__(self, fleet: Fleet, *, token: str | None = None, version: str = "") -> None:
        self.fleet = fleet
        self.token = token.encode() if token else None
        self.version = version or _version()
        self.metrics = Metrics().attach(fleet.journal)
        self.lock = trio.Lock()
        Route = tuple[str, tuple[str, ...], Callable[..., Awaitable[Reply]]]
        self.routes: list[Route] = [
            ("POST", ("reset",), self.reset),
            ("GET", ("proxies",), self.list_proxies),
            ("POST", ("proxies",), self.create_proxy),
            ("POST", ("populate",), self.populate),
            ("GET", ("proxies", "*"), self.show_proxy),
            ("POST", ("proxies", "*"), self.update_proxy),
            ("PATCH", ("proxies", "*"), self.update_proxy),
            ("DELETE", ("proxies", "*"), self.delete_proxy),
            ("GET", ("proxies", "*", "toxics"), self.list_toxics),
            ("POST", ("proxies", "*", "toxics"), self.create_toxic),
            ("GET", ("proxies", "*", "toxics", "*"), self.show_toxic),
            ("POST", ("proxies", "*", "toxics", "*"), self.update_toxic),
            ("PATCH", ("proxies", "*", "toxics", "*"), self.update_toxic),
            ("DELETE", ("proxies", "*", "toxics", "*"), self.delete_toxic),
            ("GET", ("version",), self.show_version),
            ("GET", ("metrics",), self.show_metrics),
        ]

    def close(self) -> None:
        self.metrics.detach()

    # -- dispatch

    async def respond(self, request: Request) -> Reply:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        path = request.target.split("?")[0]
        segments = [unquote(part) for part in path.split("/")[1:]]
        allowed = False
        for method, pattern, handler in self.routes:
            if len(pattern) == len(segments) and all(
                (p == "*" and s) or p == s for p, s in zip(pattern, segments, strict=True)
            ):
                if method == request.method:
                    args = [s for p, s in zip(pattern, segments, strict=True) if p == "*"]
                    try:
                        async with self.lock:  # one change at a time, as toxiproxy's mutex
                            return await handler(request, *args)
                    except ApiError as error:
                        return error.reply()
                allowed = True
        if allowed:
            return Reply(405, b"", "")
        return Reply(404, b"404 page not found\n", _TEXT)

    def _refusal(self, request: Request) -> Reply | None:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Reply(403, b"User agent not allowed\n", _TEXT)
        if self.token is None:
            if not _host_allowed(request.headers.get("host", "")):
                return ApiError(
                    "Host refused: without a token the toxiproxy API answers to localhost "
                    "and IP addresses only",
                    403,
                ).reply()
            return None
        scheme, _, value = request.raw_headers.get(b"authorization", b"").partition(b" ")
        given = value.strip() if scheme.lower() == b"bearer" else None
        if given is None and b"x-sseproxy-token" in request.raw_headers:
            given = request.raw_headers[b"x-sseproxy-token"].strip()
        if given is None or not hmac.compare_digest(given, self.token):
            reply = ApiError("missing or wrong token: send Authorization: Bearer TOKEN", 401)
            return reply.reply()
        return None

    # -- proxies

    def _member(self, name: str) -> Member:
        member = self.fleet.members.get(name)
        if member is None:
            raise ApiError("proxy not found", 404)
        return member

    def _proxy_json(self, member: Member) -> dict[str, Any]:
        return {
            "name": member.name,
            "listen": member.listen,
            "upstream": member.upstream,
            "enabled": member.enabled,
            "toxics": [toxic.to_json() for toxic in _ordered(member.toxics)],
        }

    async def _start(self, member: Member) -> None:
        try:
            await self.fleet.start(member)
        except ListenError as error:
            message = str(error)
            if not message.startswith("listen tcp "):
                message = f"listen tcp: {message}"
            raise ApiError(message, 500) from None

    def _new_member(self, given: dict[str, Any]) -> Member:
        return self.fleet.create(
            given["name"],
            given.get("listen") or "",
            given.get("upstream") or "",
            mode="http" if given.get("mode") == "http" else "tcp",
        )

    async def list_proxies(self, request: Request) -> Reply:
        members = self.fleet.members
        return _json({name: self._proxy_json(members[name]) for name in sorted(members)})

    async def create_proxy(self, request: Request) -> Reply:
        given = _proxy_input(_decode(request), "Proxy", "toxiproxy.Proxy")
        if not given.get("name"):
            raise ApiError("missing required field: name", 400)
        if not given.get("upstream"):
            raise ApiError("missing required field: upstream", 400)
        if given["name"] in self.fleet.members:
            raise ApiError("proxy already exists", 409)
        member = self._new_member(given)
        if given.get("enabled", True):
            await self._start(member)
        else:
            _check_listen(member.listen)
        self.fleet.add(member)
        return _json(self._proxy_json(member), 201)

    async def populate(self, request: Request) -> Reply:
        try:
            value = _decode(request)
            if not isinstance(value, list):
                kind = go_kind(value)
                raise ApiError(
                    f"bad request body: json: cannot unmarshal {kind} into Go value of type "
                    '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }',
                    400,
                )
            of_type = 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
            wanted = [_proxy_input(item, "", of_type) for item in value]
            for index, given in enumerate(wanted, 1):
                for key in ("name", "upstream"):
                    if not given.get(key):
                        raise ApiError(f"missing required field: {key} at proxy {index}", 400)
        except ApiError as error:
            return self._populated(error, None)
        done: list[Member] = []
        for given in wanted:
            try:
                done.append(await self._add_or_replace(given))
            except ApiError as error:
                return self._populated(error, done)
        return self._populated(None, done)

    def _populated(self, error: ApiError | None, members: list[Member] | None) -> Reply:
        body: dict[str, Any] = {}
        if error is not None:
            body = {"error": error.message, "status": error.status}
        shown = [self._proxy_json(m) for m in members] if members else None
        body["proxies"] = shown
        return _json(body, error.status if error else 201)

    async def _add_or_replace(self, given: dict[str, Any]) -> Member:
        """toxiproxy's populate: an unchanged proxy is kept (toxics too), a changed one is
        stopped and replaced."""
        existing = self.fleet.members.get(given["name"])
        listen, upstream = given.get("listen") or "", given["upstream"]
        if existing is not None:
            if existing.listen == listen and existing.upstream == upstream:
                return existing
            await self.fleet.remove(existing.name)
        member = self._new_member(given)
        if given.get("enabled", True):
            await self._start(member)
        else:
            _check_listen(member.listen)
        self.fleet.add(member)
        return member

    async def show_proxy(self, request: Request, name: str) -> Reply:
        return _json(self._proxy_json(self._member(name)))

    async def update_proxy(self, request: Request, name: str) -> Reply:
        member = self._member(name)
        given = _proxy_input(_decode(request), "Proxy", "toxiproxy.Proxy")
        listen = given.get("listen", member.listen)
        upstream = given.get("upstream", member.upstream)
        enabled = given.get("enabled", member.enabled)
        if listen != member.listen or upstream != member.upstream:
            _check_listen(listen)  # as toxiproxy: a bad address changes nothing
            await self.fleet.stop(member)
            member.listen, member.upstream = listen, upstream
            proxy = member.proxy
            proxy.settings = replace(proxy.settings, upstream=upstream_of(upstream))
        if enabled and not member.enabled:
            await self._start(member)
        elif not enabled:
            await self.fleet.stop(member)
        return _json(self._proxy_json(member))

    async def delete_proxy(self, request: Request, name: str) -> Reply:
        self._member(name)
        await self.fleet.remove(name)
        return _no_content()

    async def reset(self, request: Request) -> Reply:
        for name in sorted(self.fleet.members):
            member = self.fleet.members[name]
            await self._start(member)
            if member.toxics:
                member.toxics.clear()
                self._apply(member)
        return _no_content()

    # -- toxics

    def _apply(self, member: Member) -> None:
        """The proxy's faults: its scenario's, then one per toxic that does something."""
        specs: list[FaultSpec] = []
        base = len(member.proxy.scenario.faults)
        for toxic in _ordered(member.toxics):
            table = toxic.fault_table()
            if table is None:
                continue
            try:
                specs.append(_Reader("", "<toxic>").fault(base + len(specs), table))
            except ScenarioError as error:  # a mapping bug: say so, never a traceback
                raise ApiError(f"bad request body: {error.lines[0]}", 400) from None
        member.set_faults(tuple(specs))
        member.proxy.journal.write(
            "scenario",
            "-",
            change="toxics",
            by="toxiproxy-api",
            faults=[spec.name for spec in member.proxy.scenario.faults],
        )

    def _toxic(self, member: Member, name: str) -> Toxic:
        toxic: Toxic
        for toxic in member.toxics:
            if toxic.name == name:
                return toxic
        raise ApiError("toxic not found", 404)

    async def list_toxics(self, request: Request, proxy: str) -> Reply:
        member = self._member(proxy)
        return _json([toxic.to_json() for toxic in _ordered(member.toxics)])

    async def create_toxic(self, request: Request, proxy: str) -> Reply:
        member = self._member(proxy)
        body = _decode(request)
        taken = {toxic.name for toxic in member.toxics}
        taken |= {spec.name for spec in member.proxy.scenario.faults}
        try:
            toxic = parse_toxic(body, taken)
        except ToxicError as error:
            raise ApiError(error.message, error.status) from None
        member.toxics.append(toxic)
        try:
            self._apply(member)
        except ApiError:
            member.toxics.remove(toxic)
            raise
        return _json(toxic.to_json())

    async def show_toxic(self, request: Request, proxy: str, name: str) -> Reply:
        return _json(self._toxic(self._member(proxy), name).to_json())

    async def update_toxic(self, request: Request, proxy: str, name: str) -> Reply:
        member = self._member(proxy)
        toxic = self._toxic(member, name)
        body = _decode(request)
        before = toxic.toxicity, dict(toxic.attributes)
        try:
            toxic.update(body)
            self._apply(member)
        except ToxicError as error:
            toxic.toxicity, toxic.attributes = before
            raise ApiError(error.message, error.status) from None
        except ApiError:
            toxic.toxicity, toxic.attributes = before
            self._apply(member)
            raise
        return _json(toxic.to_json())

    async def delete_toxic(self, request: Request, proxy: str, name: str) -> Reply:
        member = self._member(proxy)
        member.toxics.remove(self._toxic(member, name))
        self._apply(member)
        return _no_content()

    # -- the rest

    async def show_version(self, request: Request) -> Reply:
        body = f'{{"version": "{self.version}"}}\n'.encode()
        return Reply(200, body, "application/json;charset=utf-8")

    async def show_metrics(self, request: Request) -> Reply:
        text = self.metrics.render(self.fleet.connections(), scenario="toxiproxy")
        return Reply(200, text.encode(), METRICS_CONTENT_TYPE)

    # -- one HTTP connection

    async def handle(self, stream: trio.abc.Stream) -> None:
        await serve_connection(
            stream,
            self.respond,
            error=lambda message, status: ApiError(message, status).reply(),
            journal=self.fleet.journal,
            send_reply=_send_reply,
        )


async def _send_reply(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    reply: Reply,
    *,
    close: bool = False,
    head: bool = False,
) -> None:
    """As Go's net/http answers: a Content-Type only when there is one, no other headers
    (and, to a HEAD, no body)."""
    headers = [("Content-Type", reply.content_type)] if reply.content_type else []
    if reply.status != 204:
        headers.append(("Content-Length", str(len(reply.body))))
    if close:
        headers.append(("Connection", "close"))
    data = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
    if reply.body and not head:
        data += conn.send(h11.Data(data=reply.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def _check_listen(listen: str, prefix: str = "") -> None:
    try:
        split_listen(listen)
    except ListenError as error:
        raise ApiError(f"{prefix}{error}", 500) from None


def _ordered(toxics: list[Toxic]) -> list[Toxic]:
    """toxiproxy lists the upstream chain, then the downstream one, each in order added."""
    return [t for t in toxics if t.upstream] + [t for t in toxics if not t.upstream]


def _version() -> str:
    from sseproxy.control.api import _version as sseproxy_version

    return sseproxy_version()


async def serve_toxiproxy_api(
    fleet: Fleet,
    listener: trio.SocketListener,
    *,
    token: str | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve toxiproxy's API for `fleet` on `listener` until cancelled (ConfigError for a
    non-loopback listener without a token, as the control API)."""
    from sseproxy.control import check_control_address

    check_control_address(listener.socket.getsockname()[0], token)
    api = ToxiproxyApi(fleet, token=token)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, api.handle, [listener]))
            task_status.started()
    finally:
        api.close()
