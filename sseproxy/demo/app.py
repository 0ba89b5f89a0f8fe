"""`sseproxy demo`: the built-in server, the proxy, its control API and the page, one process.

Everything listens on 127.0.0.1 (free ports unless told otherwise):

- the built-in SSE server (`sseproxy.origin`), the upstream;
- the proxy in front of it, live (faults change on open streams), its journal kept in
  memory for the control API's `/journal` (and written to a file with `--journal`);
- the door (`door.py`): the page and the control API under `/api` on one origin, so the
  page may call the API without CORS; and a second door for the page's streams through
  the proxy (a browser keeps only six connections open to one address).

The control API keeps its own rules (loopback only, no token needed there, `Host` must be
an address or `localhost`); the demo refuses any other host.
"""

from __future__ import annotations

import json
import signal
import webbrowser
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Final, TextIO

import h11
import trio

from sseproxy import origin
from sseproxy.console import CloseLines
from sseproxy.control.api import Control
from sseproxy.control.wire import Reply, _read_request, _send_reply
from sseproxy.demo.catalog import catalog
from sseproxy.demo.door import CLIENT_HEADER, Door, Routes
from sseproxy.errors import ConfigError
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario
from sseproxy.server import default_max_connections, listen, serve_proxy
from sseproxy.timescale import summary

__all__ = ["HOST", "DemoAddresses", "DemoSettings", "main", "serve_demo"]

HOST: Final = "127.0.0.1"
STREAM: Final = "interval=5s&heartbeat=0"
"""The page's clients' stream by default: quiet enough for an idle timeout to show."""
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}


@dataclass(frozen=True)
class DemoSettings:
    scenario: Scenario = field(default_factory=lambda: Scenario(name="none"))
    port: int = 0
    """The page's port (also the control API under /api)."""
    streams_port: int = 0
    """Where the page's EventSource clients connect (streams only)."""
    proxy_port: int = 0
    """The proxy's own port, for curl and other clients."""
    origin_port: int = 0
    seed: int | None = None
    stream: str = STREAM
    time_scale: float = 1.0
    """Every duration of the scenario multiplied by this (`sseproxy.timescale`); the
    page's time-scale box changes it."""


@dataclass(frozen=True)
class DemoAddresses:
    page: str
    streams: str
    proxy: str
    origin: str


class Page:
    """The page's files (package data in `page/`) and its catalog, one request a connection."""

    def __init__(self, stream_query: str, streams: str) -> None:
        self.folder = resources.files("sseproxy.demo") / "page"
        data = {**catalog(stream=stream_query), "streams": streams.rstrip("/")}
        self.catalog = (json.dumps(data) + "\n").encode()

    def reply(self, method: str, path: str) -> Reply:
        if method not in ("GET", "HEAD"):
            return Reply.json({"error": f"{method} is not allowed here"}, 405)
        if path == "/catalog.json":
            return Reply(200, self.catalog)
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        if "/" in name or name.startswith(".") or Path(name).suffix not in _TYPES:
            return Reply.json({"error": f"no page {path}"}, 404)
        file = self.folder / name
        if not file.is_file():
            return Reply.json({"error": f"no page {path}"}, 404)
        return Reply(200, file.read_bytes(), _TYPES[Path(name).suffix])

    async def handle(self, stream: trio.abc.Stream, client: str) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            request = await _read_request(conn, stream)
            if isinstance(request, Reply):
                await _send_reply(conn, stream, request, close=True)
            elif request is not None:
                reply = self.reply(request.method, "/" + "/".join(request.path))
                await _send_reply(conn, stream, reply, close=True, head=request.method == "HEAD")
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


def _url(port: int, path: str = "/") -> str:
    return f"http://{HOST}:{port}{path}"


async def serve_demo(
    settings: DemoSettings,
    journal: Journal,
    *,
    task_status: trio.TaskStatus[DemoAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the demo until cancelled; reports its addresses to `nursery.start`."""
    listeners = await _listen_all(
        ("--port", settings.port),
        ("--streams-port", settings.streams_port),
        ("--proxy-port", settings.proxy_port),
    )
    try:
        await _serve(settings, journal, *listeners, task_status=task_status)
    finally:  # (serving closes them too; this is for an error before it starts)
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def _serve(
    settings: DemoSettings,
    journal: Journal,
    door_listener: trio.SocketListener,
    streams_listener: trio.SocketListener,
    proxy_listener: trio.SocketListener,
    *,
    task_status: trio.TaskStatus[DemoAddresses],
) -> None:
    page_url = _url(door_listener.socket.getsockname()[1])
    streams_url = _url(streams_listener.socket.getsockname()[1])
    page = Page(settings.stream, streams_url)
    async with trio.open_nursery() as nursery:
        try:
            origin_port = await nursery.start(
                origin.serve, HOST, settings.origin_port, origin.OriginSettings()
            )
        except OSError as error:
            raise ConfigError(
                f"--origin-port: cannot listen on {HOST}:{settings.origin_port}: {error.strerror}"
            ) from None
        proxy_settings = ProxySettings(
            Upstream(HOST, origin_port),
            live=True,
            session_keys=(CLIENT_HEADER, "Mcp-Session-Id", "sessionId"),
            max_connections=default_max_connections(3),
            time_scale=settings.time_scale,
        )
        proxy = Proxy(proxy_settings, settings.scenario, journal, seed=settings.seed)
        control = Control(proxy, token=None)
        try:
            proxy_port = proxy_listener.socket.getsockname()[1]
            file = str(Path(settings.scenario.path).resolve()) if settings.scenario.path else None
            journal.write(
                "started",
                "-",
                listen=f"{HOST}:{proxy_port}",
                upstream=str(proxy_settings.upstream),
                mode="http",
                max_connections=proxy_settings.max_connections,
                scenario_file=file,
                time_scale=proxy.time_scale,
                demo=page_url,
            )
            await nursery.start(serve_proxy, proxy, proxy_listener)
            api = partial(_api, control)
            routes: Routes = {"proxy": proxy.handle, "api": api, "page": page.handle}
            door = Door(routes)
            await nursery.start(trio.serve_listeners, door.handle, [door_listener])
            streams = Door(routes, streams_only=True)
            await nursery.start(trio.serve_listeners, streams.handle, [streams_listener])
            task_status.started(
                DemoAddresses(page_url, streams_url, _url(proxy_port), _url(origin_port))
            )
            await trio.sleep_forever()
        finally:
            control.close()


async def _api(control: Control, stream: trio.abc.Stream, client: str) -> None:
    await control.handle(stream)


async def _listen_all(*ports: tuple[str, int]) -> list[trio.SocketListener]:
    """A listener on HOST per (option, port), or a ConfigError naming the option (and none
    left open)."""
    listeners: list[trio.SocketListener] = []
    try:
        for option, port in ports:
            listeners.append(await listen(HOST, port, option=option))
    except BaseException:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        raise
    return listeners


async def main(
    settings: DemoSettings,
    journal_stream: TextIO | None,
    out: TextIO,
    *,
    open_page: bool,
    close_lines: TextIO | None = None,
) -> None:
    """What `sseproxy demo` runs: serve, say where, open the browser if asked, stop on
    Ctrl-C or SIGTERM (every stream ends, the journal is complete). With `close_lines`,
    a line per close goes there, as on `run`'s console (`sseproxy.console`)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with Journal(journal_stream) as journal, trio.open_nursery() as nursery:
                if close_lines is not None:
                    CloseLines(close_lines).attach(journal)
                at: DemoAddresses = await nursery.start(serve_demo, settings, journal)
                scenario = settings.scenario
                faults = ", ".join(spec.name for spec in scenario.faults) or "none"
                print(f"sseproxy demo: open {at.page}", file=out)
                print(f"scenario {scenario.name}; faults: {faults}", file=out)
                if settings.time_scale != 1:
                    print(summary(settings.time_scale), file=out)
                print(f"proxy on {at.proxy}; try: curl -N {at.proxy}events", file=out)
                print(
                    f"control API on {at.page}api; try: sseproxy ctl --control {at.page}api status",
                    file=out,
                )
                print("stop with Ctrl-C", file=out, flush=True)
                if open_page:  # in a thread left behind on Ctrl-C: a console browser blocks
                    nursery.start_soon(
                        partial(
                            trio.to_thread.run_sync,
                            webbrowser.open,
                            at.page,
                            abandon_on_cancel=True,
                        )
                    )
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # a port taken: one line, not a traceback
            problem = _config_error(group)
            if problem is None:
                raise
            raise problem from None
    print("stopped", file=out, flush=True)


def _config_error(group: BaseExceptionGroup[BaseException]) -> ConfigError | None:
    for error in group.exceptions:
        if isinstance(error, ConfigError):
            return error
        if isinstance(error, BaseExceptionGroup) and (found := _config_error(error)):
            return found
    return None
