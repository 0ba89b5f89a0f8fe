"""`sseproxy run --config FILE` and `--toxiproxy-api HOST:PORT`: a fleet until Ctrl-C.

The proxies of a config file (or the one of `--upstream`, named `sseproxy`) start first;
the toxiproxy API, when asked for, then serves them and any its clients create. One
journal gets every proxy's records, each with `proxy: NAME`. `--control` serves each
proxy's control API under /proxies/NAME/ (sseproxy.control.fleet).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, TextIO

import trio

from sseproxy.console import CloseLines
from sseproxy.control.fleet import serve_fleet_control
from sseproxy.errors import ConfigError
from sseproxy.fleet import Fleet, ListenError
from sseproxy.journal import Journal
from sseproxy.proxy import Mode, ProxySettings, Upstream
from sseproxy.server import listen
from sseproxy.timescale import summary
from sseproxy.toxiproxy.api import serve_toxiproxy_api
from sseproxy.toxiproxy.config import ProxyConfig, load_config

__all__ = ["API_PORT", "fleet_command", "parse_api_address", "run_fleet"]

API_PORT = 8474
"""toxiproxy's default API port."""


def parse_api_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:8474', ':8474', '8474' or 'localhost' (port 8474) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = (text, str(API_PORT)) if not text.isdigit() else ("", text)
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--toxiproxy-api {text!r} is not HOST:PORT (e.g. 127.0.0.1:8474)")
    return host, int(port)


async def run_fleet(
    journal: Journal,
    proxies: list[ProxyConfig],
    settings: ProxySettings,
    out: TextIO,
    *,
    source: str,
    api: tuple[str, int] | None = None,
    control: tuple[str, int] | None = None,
    token: str | None = None,
    seed: int | None = None,
) -> None:
    """Start `proxies` (from `source`: a file, or the command line), serve the API, and
    stop cleanly on SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        api_listener = None
        if api is not None:
            api_listener = await listen(*api, option="--toxiproxy-api")
        control_listener = None
        if control is not None:
            control_listener = await listen(*control, option="--control")
        failure: ConfigError | None = None
        journal.write(
            "started",
            "-",
            proxies=[config.name for config in proxies],
            time_scale=settings.time_scale,
            toxiproxy_api=f"{api[0]}:{api_listener.socket.getsockname()[1]}"
            if api is not None and api_listener is not None
            else None,
        )
        async with trio.open_nursery() as nursery:
            fleet = Fleet(journal, nursery, seed=seed)
            for config in proxies:
                member = fleet.create(
                    config.name,
                    config.listen,
                    config.upstream,
                    mode=config.mode,
                    scenario=config.scenario,
                    settings=settings,
                )
                fleet.add(member)
                if config.enabled:
                    try:
                        await fleet.start(member)
                    except ListenError as error:
                        failure = ConfigError(f"{source}: proxy {config.name!r}: listen: {error}")
                        nursery.cancel_scope.cancel()
                        break
                state = f"on {member.listen}" if member.enabled else "disabled"
                faults = ", ".join(spec.name for spec in member.base.faults) or "none"
                print(
                    f"proxy {member.name} ({member.mode}) {state} -> {member.upstream}; "
                    f"scenario {member.base.name}; faults: {faults}",
                    file=out,
                )
            if failure is None:
                if settings.time_scale != 1:
                    print(summary(settings.time_scale), file=out)
                if api_listener is not None:
                    assert api is not None
                    serve = partial(serve_toxiproxy_api, fleet, api_listener, token=token)
                    await nursery.start(serve)
                    port = api_listener.socket.getsockname()[1]
                    print(f"toxiproxy API on http://{api[0]}:{port}", file=out)
                if control_listener is not None:
                    assert control is not None
                    serve = partial(serve_fleet_control, fleet, control_listener, token=token)
                    await nursery.start(serve)
                    port = control_listener.socket.getsockname()[1]
                    url = f"http://{control[0]}:{port}"
                    print(
                        f"control API on {url}/proxies/NAME/; try: sseproxy ctl --control "
                        f"{url}/proxies/{proxies[0].name if proxies else 'NAME'} status",
                        file=out,
                    )
                print("stop with Ctrl-C", file=out, flush=True)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
    print("stopped", file=out, flush=True)


def fleet_command(
    options: Mapping[str, Any], client_header_timeout: float
) -> Callable[[TextIO | None, TextIO], None]:
    """`sseproxy run`'s options (click's names) checked, as a function of the journal's
    stream and the console that runs the fleet: ConfigError for any mistake, before
    anything listens."""
    from sseproxy.control import check_control_address
    from sseproxy.scenario import load_scenario
    from sseproxy.server import default_max_connections, parse_hostport
    from sseproxy.timescale import check_factor
    from sseproxy.units import parse_duration

    factor = check_factor(options["time_scale"]) if options["time_scale"] is not None else 1.0
    api = parse_api_address(options["toxiproxy_at"]) if options["toxiproxy_at"] else None
    control = parse_hostport(options["control_at"]) if options["control_at"] else None
    token = options["control_token"]
    for address in (api, control):
        if address is not None:
            check_control_address(address[0], token)
    upstreams, scenario_name = options["upstreams"], options["scenario_name"]
    if len(upstreams) > 1:
        raise ConfigError("--toxiproxy-api and --config take at most one --upstream (no pool)")
    upstream = upstreams[0] if upstreams else None
    if options["config_path"] is not None:
        if upstream or scenario_name:
            raise ConfigError("--config lists each proxy's upstream and scenario; drop them")
        proxies, source = load_config(options["config_path"]), options["config_path"]
    elif upstream:
        scenario = load_scenario(scenario_name) if scenario_name else None
        mode: Mode = "tcp" if options["mode"] == "tcp" else "http"
        one = ProxyConfig("sseproxy", options["listen_at"], upstream, mode)
        proxies, source = [replace(one, scenario=scenario)], "--listen"
    else:
        proxies, source = [], "--toxiproxy-api"
    settings = ProxySettings(
        Upstream("127.0.0.1", 0),
        connect_timeout=parse_duration(options["connect_timeout"], bare_seconds=True),
        client_header_timeout=client_header_timeout,
        session_keys=options["session_keys"],
        journal_events=options["journal_events"],
        max_connections=options["max_connections"] or default_max_connections(),
        time_scale=factor,
    )
    close_lines = options["close_lines"]
    close_lines = sys.stderr.isatty() if close_lines is None else close_lines

    def command(stream: TextIO | None, out: TextIO) -> None:
        async def main() -> None:
            async with Journal(stream) as journal:
                if close_lines:
                    CloseLines(sys.stderr).attach(journal)
                await run_fleet(
                    journal,
                    proxies,
                    settings,
                    out,
                    source=source,
                    api=api,
                    control=control,
                    token=token,
                    seed=options["seed"],
                )

        trio.run(main)

    return command
