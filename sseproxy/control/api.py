"""The control API's endpoints: the `Control` class routes, checks access and answers.

Every change to faults or the scenario goes through `Proxy.set_scenario` here (so open
connections get it) and leaves a `scenario` record in the journal. The HTTP framing is in
`wire.py`, the live journal in `feed.py`.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from importlib import metadata
from typing import Any, Final, Literal
from urllib.parse import quote

import trio

from sseproxy.control.feed import JournalFeed
from sseproxy.control.wire import (
    ApiError,
    Handler,
    Reply,
    Request,
    Streamed,
    _host_allowed,
    _is_json,
    _json_object,
    json_error,
    serve_connection,
)
from sseproxy.errors import ConfigError, ScenarioError
from sseproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sseproxy.metrics import Metrics
from sseproxy.proxy import Proxy
from sseproxy.scenario import FaultSpec, Scenario, _Reader, parse_scenario
from sseproxy.timescale import check_factor

__all__ = ["ENDPOINTS", "HEARTBEAT", "Control", "fault_json", "merge_patch"]

HEARTBEAT: Final = 15.0
"""Seconds of silence after which `/journal` sends a comment (keeps idle timeouts away)."""
KILL_WAIT: Final = 5.0
"""How long a kill waits for the connections' `closed` records before answering."""


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
    "GET /time-scale",
    "PUT /time-scale",
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
            ("GET", ("time-scale",), self.get_time_scale),
            ("PUT", ("time-scale",), self.put_time_scale),
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
            return error.reply()

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
            lines = [f"{e.where}: {e.message}" if e.where else e.message for e in error.errors]
            raise _refusal(lines) from None

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
                "time_scale": proxy.time_scale,
                "journal_records": self.feed.seq,
            }
        )

    async def get_scenario(self, request: Request) -> Reply:
        if request.query.get("format") == "toml":
            return Reply(200, self.proxy.scenario.to_toml().encode(), "application/toml")
        return Reply.json(self._scenario_json())

    async def put_scenario(self, request: Request) -> Reply:
        file = request.query.get("file") or "<scenario>"
        if _is_json(request):

            def read() -> Scenario:
                data = _json_object(request, '{"scenario": {"name": "x"}, "faults": []}')
                return _Reader("", file).scenario(data)

        else:
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"{file}: the scenario is not UTF-8 text") from None
            read = partial(parse_scenario, text, file=file)
        try:  # in a thread: a big scenario must not stall the streams for its parse
            scenario = await trio.to_thread.run_sync(read)
        except ScenarioError as error:
            raise _refusal(error.lines) from None
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

    # -- time scale

    async def get_time_scale(self, request: Request) -> Reply:
        return Reply.json({"factor": self.proxy.time_scale})

    async def put_time_scale(self, request: Request) -> Reply:
        """New connections run the scenario (as written) scaled by `factor`; open ones
        keep theirs. Journaled as a `time-scale` record."""
        body = _json_object(request, '{"factor": 0.1}')
        factor = body.get("factor")
        unknown = sorted(set(body) - {"factor"})
        if unknown or isinstance(factor, bool) or not isinstance(factor, int | float):
            raise ApiError(400, 'expected {"factor": F}, F a number above 0, e.g. 0.1')
        try:
            self.proxy.set_time_scale(check_factor(factor))
        except ConfigError as error:
            raise ApiError(400, str(error)) from None
        self.proxy.journal.write("time-scale", "-", factor=self.proxy.time_scale, by="control")
        return Reply.json({"factor": self.proxy.time_scale})

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
        await serve_connection(
            stream,
            self.respond,
            error=json_error,
            journal=self.proxy.journal,
        )


def _refusal(lines: list[str]) -> ApiError:
    """400 for an invalid scenario or fault: every mistake in `errors`, the first (and how
    many more) in `error`, worded as `sseproxy scenarios validate` words them."""
    more = f" (and {len(lines) - 1} more errors)" if len(lines) > 1 else ""
    return ApiError(400, lines[0] + more, errors=lines)


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
