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

import ipaddress
from dataclasses import replace
from functools import partial
from typing import Final

import trio

from sseproxy.control.api import HEARTBEAT, Control, merge_patch
from sseproxy.control.feed import JournalFeed
from sseproxy.errors import ConfigError
from sseproxy.proxy import Proxy

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
