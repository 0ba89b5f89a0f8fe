"""The control API over several proxies: each member's endpoints under /proxies/{name}.

`sseproxy run --config FILE --control 127.0.0.1:8475` serves, for every proxy the file (or
the toxiproxy API) created, the whole control API of one proxy (docs/control.md) under
its name: `GET /proxies/events/status`, `POST /proxies/events/faults`,
`GET /proxies/events/journal`... `sseproxy ctl --control http://127.0.0.1:8475/proxies/events
status` works as against a single proxy. `GET /` and `GET /proxies` list the proxies.
Access rules (loopback, token, Host) are the control API's, checked by each member's
`Control`, and here for the listing.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from functools import partial
from typing import Any

import trio

from sseproxy.control.api import HEARTBEAT, Control, _version
from sseproxy.control.wire import (
    ApiError,
    Reply,
    Request,
    Streamed,
    _host_allowed,
    json_error,
    serve_connection,
)
from sseproxy.fleet import Fleet, Member

__all__ = ["FleetControl", "serve_fleet_control"]


class FleetControl:
    """Routes /proxies/{name}/... to that member's `Control` (made on first use)."""

    def __init__(self, fleet: Fleet, *, token: str | None, heartbeat: float = HEARTBEAT):
        self.fleet = fleet
        self.token = token
        self.heartbeat = heartbeat
        self.controls: dict[str, tuple[Member, Control]] = {}

    def close(self) -> None:
        for _member, control in self.controls.values():
            control.close()
        self.controls.clear()

    def _control(self, name: str) -> Control:
        member = self.fleet.members.get(name)
        if member is None:
            gone = self.controls.pop(name, None)  # deleted through the toxiproxy API
            if gone is not None:
                gone[1].close()
            known = ", ".join(sorted(self.fleet.members)) or "none"
            raise ApiError(404, f"no proxy named {name!r} (proxies: {known})")
        held = self.controls.get(name)
        if held is None or held[0] is not member:  # new, or replaced under the same name
            if held is not None:
                held[1].close()
            held = self.controls[name] = (
                member,
                Control(member.proxy, token=self.token, heartbeat=self.heartbeat),
            )
        return held[1]

    def _listing(self) -> dict[str, Any]:
        return {
            "sseproxy": _version(),
            "proxies": {
                name: {
                    "listen": member.listen,
                    "upstream": member.upstream,
                    "mode": member.mode,
                    "enabled": member.enabled,
                    "scenario": member.proxy.scenario.name,
                    "control": f"/proxies/{name}/",
                }
                for name, member in sorted(self.fleet.members.items())
            },
        }

    async def respond(self, request: Request) -> Reply | Streamed:
        path = request.path
        if path and path[0] == "proxies" and len(path) >= 2:
            try:
                control = self._control(path[1])
            except ApiError as error:
                return error.reply()
            rest = "/" + "/".join(request.target.split("?")[0].split("/")[3:])
            query = request.target.partition("?")[2]
            target = rest + (f"?{query}" if query else "")
            return await control.respond(replace(request, path=path[2:], target=target))
        # the listing: the same access rules, checked by any member's Control or a bare one
        if path not in ([], ["proxies"]):
            return ApiError(404, "no endpoint here; see GET /proxies").reply()
        if request.method != "GET":
            return ApiError(
                405, f"{request.method} is not allowed here", [("Allow", "GET")]
            ).reply()
        refusal = _refusal(request, self.token)
        if refusal is not None:
            return refusal
        return Reply.json(self._listing())

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One HTTP connection (as `Control.handle`)."""
        await serve_connection(
            stream,
            self.respond,
            error=json_error,
            journal=self.fleet.journal,
        )


def _refusal(request: Request, token: str | None) -> Reply | None:
    """The control API's access rule for the listing (members' `Control` checks theirs)."""
    if token is None:
        if _host_allowed(request.headers.get("host", "")):
            return None
        return ApiError(403, "Host refused: use localhost or an IP address").reply()
    scheme, _, value = request.raw_headers.get(b"authorization", b"").partition(b" ")
    given = value.strip() if scheme.lower() == b"bearer" else None
    if given is None and b"x-sseproxy-token" in request.raw_headers:
        given = request.raw_headers[b"x-sseproxy-token"].strip()
    if given is not None and hmac.compare_digest(given, token.encode()):
        return None
    return ApiError(
        401,
        "missing or wrong token: send Authorization: Bearer TOKEN",
        [("WWW-Authenticate", 'Bearer realm="sseproxy"')],
    ).reply()


async def serve_fleet_control(
    fleet: Fleet,
    listener: trio.SocketListener,
    *,
    token: str | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the per-proxy control API for `fleet` on `listener` until cancelled."""
    from sseproxy.control import check_control_address

    check_control_address(listener.socket.getsockname()[0], token)
    control = FleetControl(fleet, token=token)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, control.handle, [listener]))
            task_status.started()
    finally:
        control.close()
