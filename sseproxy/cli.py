"""The `sseproxy` command: run the proxy, serve demo events, work with scenarios.

Exit status: 0 ok, 1 a check failed (an invalid scenario in `validate`), 2 a usage or
configuration error. Errors a user can cause are one line that says what to do.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from sseproxy.ctl import DEFAULT_URL, ctl
from sseproxy.errors import ConfigError, ScenarioError, SseproxyError, UnitError
from sseproxy.probe.command import probe_command
from sseproxy.report_cli import report_command
from sseproxy.words import plural

# Everything else is imported inside the command that needs it: trio, h11, the proxy and
# the fault registry take longer to import than `--help` takes to answer (issue 10).
if TYPE_CHECKING:
    from sseproxy.journal import Journal
    from sseproxy.origin import OriginSettings
    from sseproxy.proxy import ProxySettings
    from sseproxy.scenario import Scenario

__all__ = ["main"]

_CONTROL_AT = DEFAULT_URL.removeprefix("http://")  # where `sseproxy ctl` looks by default


class UsageProblem(click.ClickException):
    exit_code = 2


@contextlib.contextmanager
def _friendly_errors() -> Iterator[None]:
    try:
        yield
    except ScenarioError as error:  # every mistake, one "Error: " line each
        raise UsageProblem("\nError: ".join(error.lines)) from None
    except (SseproxyError, UnitError) as error:
        raise UsageProblem(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sseproxy")
def main() -> None:
    """A chaos proxy for Server-Sent Events.

    Put it between an SSE client and server, give it a scenario (an nginx idle timeout,
    a load balancer's limit, resets, latency...) and watch, per connection, who closed
    the stream and why.

    \b
    Try it:  sseproxy run          (built-in demo server behind the proxy)
             curl -N http://127.0.0.1:8080/events
    """


@main.command()
@click.option(
    "--listen",
    "listen_at",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where clients connect.",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="[NAME=]URL",
    help="The SSE server, e.g. http://127.0.0.1:9000. Repeat for a pool of members "
    "(named a, b, c... or NAME=URL; see --balance). Default: the scenario's "
    "[[upstreams]], else the built-in demo server on a free port.",
)
@click.option(
    "--balance",
    type=click.Choice(["round_robin", "ip_hash", "hash", "random", "least_conn"]),
    help="How a pool picks a member (default: the scenario's `balance`, else "
    "round_robin, as nginx).",
)
@click.option(
    "--hash-key",
    metavar="SOURCE:NAME",
    help="What --balance hash hashes: header:NAME, query:NAME or cookie:NAME.",
)
@click.option(
    "--instances",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Start N built-in server instances (sseproxy serve --instances) as the pool's "
    "members, named as the scenario's [[upstreams]] (else a, b, c...); a `restart` fault "
    "makes one forget its sessions (POST /_restart). Not with --upstream.",
)
@click.option(
    "--client-ip-from",
    metavar="HEADER",
    help="Balance ip_hash on the first address in this request header (e.g. "
    "X-Forwarded-For) instead of the client's own, so one machine can look like many.",
)
@click.option(
    "--scenario",
    "scenario_name",
    metavar="FILE|PRESET",
    help="Faults to inject: a TOML file or a preset name (sseproxy scenarios list).",
)
@click.option(
    "--mode",
    type=click.Choice(["http", "tcp"]),
    default="http",
    show_default=True,
    help="http understands requests and SSE; tcp relays raw bytes (any protocol).",
)
@click.option("--seed", type=int, help="Override the scenario's seed (replay a run exactly).")
@click.option(
    "--journal",
    "journal_path",
    metavar="FILE",
    help="Append JSON Lines records per connection to FILE ('-' = stdout).",
)
@click.option(
    "--journal-events",
    is_flag=True,
    help="Also journal a line per SSE event delivered (id, type, size).",
)
@click.option(
    "--session-key",
    "session_keys",
    multiple=True,
    metavar="NAME",
    default=("Mcp-Session-Id", "sessionId", "session_id"),
    show_default=True,
    help="Header or query parameter naming a client session (repeatable).",
)
@click.option(
    "--connect-timeout",
    default="10s",
    show_default=True,
    metavar="DURATION",
    help="Give up connecting to the upstream after this long (then 504).",
)
@click.option(
    "--upstream-ca",
    metavar="FILE",
    help="https:// upstreams: trust the CA certificates in FILE (PEM) instead of the system's.",
)
@click.option(
    "--upstream-insecure",
    is_flag=True,
    help="https:// upstreams: accept any certificate, whatever its issuer or name "
    "(self-signed test servers).",
)
@click.option(
    "--listen-cert",
    metavar="FILE",
    help="Listen with TLS (https) using this certificate chain (PEM); the key is in "
    "--listen-key or in the same file.",
)
@click.option("--listen-key", metavar="FILE", help="The private key for --listen-cert (PEM).")
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    metavar="N",
    help="Serve at most N client connections at once; past it answer 503 (TCP: close) "
    "without contacting the upstream, journaled as proxy-overloaded. Default: what the "
    "open-file limit (ulimit -n) allows with room to spare: (limit - 64) / 2, a client and "
    "an upstream descriptor each (/ 3 with the built-in server).",
)
@click.option(
    "--client-header-timeout",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="A client must send each request head within this long (then 408, or a close "
    "if it sent nothing), as nginx's client_header_timeout. Upstreams are not timed.",
)
@click.option(
    "--control",
    "control_at",
    metavar="HOST:PORT",
    help=f"Serve the control API here (sseproxy ctl), e.g. {_CONTROL_AT}: change "
    "faults live, list and kill connections, /metrics, /journal. Other than loopback "
    "needs --control-token.",
)
@click.option(
    "--control-token",
    metavar="TOKEN",
    envvar="SSEPROXY_CONTROL_TOKEN",
    help="Require this token (Authorization: Bearer TOKEN) on every control request; "
    "also read from $SSEPROXY_CONTROL_TOKEN.",
)
@click.option(
    "--time-scale",
    metavar="F",
    help="Multiply every duration in the scenario by F (timeouts, windows, latencies, "
    "lifetimes; rates divide): 0.1 turns a 60s idle timeout into 6s. Default: 1.",
)
@click.option(
    "--close-lines/--quiet",
    "close_lines",
    default=None,
    help="Print a line on stderr per closed connection: who closed it, why, how long it "
    "lived, bytes and events (default: on when stderr is a terminal).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Run the proxies FILE lists ([[proxies]] in TOML, or toxiproxy's JSON config), "
    "each with its own listen, upstream, mode and scenario; one journal for all.",
)
@click.option(
    "--toxiproxy-api",
    "toxiproxy_at",
    metavar="HOST:PORT",
    help="Serve toxiproxy's HTTP API here (its port is 8474): toxiproxy clients create "
    "proxies and add toxics unchanged. Other than loopback needs --control-token.",
)
def run(
    listen_at: str,
    upstreams: tuple[str, ...],
    balance: str | None,
    hash_key: str | None,
    instances: int | None,
    client_ip_from: str | None,
    scenario_name: str | None,
    mode: str,
    seed: int | None,
    journal_path: str | None,
    journal_events: bool,
    session_keys: tuple[str, ...],
    connect_timeout: str,
    upstream_ca: str | None,
    upstream_insecure: bool,
    listen_cert: str | None,
    listen_key: str | None,
    max_connections: int | None,
    client_header_timeout: str,
    control_at: str | None,
    control_token: str | None,
    time_scale: str | None,
    close_lines: bool | None,
    config_path: str | None = None,
    toxiproxy_at: str | None = None,
) -> None:
    """Run the proxy (or several: --config, --toxiproxy-api).

    \b
    Examples:
      sseproxy run
      sseproxy run --upstream http://127.0.0.1:9000 --scenario nginx-default
      sseproxy run --upstream https://api.example.com --upstream-ca ca.pem
      sseproxy run --scenario idle.toml --journal run.jsonl
      sseproxy run --control 127.0.0.1:8474    (then: sseproxy ctl status)
      sseproxy run --scenario nginx-default --time-scale 0.1   (60s timeouts take 6s)
      sseproxy run --upstream a=http://127.0.0.1:9001 --upstream b=:9002 --balance ip_hash
      sseproxy run --scenario mcp-ip-hash-failover --instances 3 --client-ip-from X-Forwarded-For
      sseproxy run --config proxies.toml
      sseproxy run --toxiproxy-api 127.0.0.1:8474    (instead of toxiproxy-server)

    Stop with Ctrl-C: streams end, the journal is complete, the exit status is 0.
    """
    import trio

    from sseproxy.control import check_control_address
    from sseproxy.proxy import ProxySettings, Upstream
    from sseproxy.scenario import Scenario, load_scenario
    from sseproxy.server import default_max_connections, parse_hostport
    from sseproxy.timescale import check_factor
    from sseproxy.units import parse_duration
    from sseproxy.upstreams import parse_members

    if config_path is not None or toxiproxy_at is not None:
        _run_fleet()
        return
    with _friendly_errors():
        factor = check_factor(time_scale) if time_scale is not None else 1.0
        host, port = parse_hostport(listen_at)
        control = parse_hostport(control_at) if control_at else None
        if control is not None:
            check_control_address(control[0], control_token)
        elif control_token is not None and _given("control_token"):
            raise ConfigError("--control-token needs --control HOST:PORT")
        scenario = load_scenario(scenario_name) if scenario_name else Scenario(name="none")
        members = parse_members(upstreams, scenario, hash_key)
        if instances is not None and members:
            raise ConfigError("--instances starts the members itself; drop --upstream")
        if instances is not None:
            from sseproxy.pool_scenario import member_name

            written = [m.name for m in scenario.upstreams]
            names = [written[k] if k < len(written) else member_name(k) for k in range(instances)]
            for spec in scenario.faults:
                if spec.match.upstream is not None and spec.match.upstream not in names:
                    raise ConfigError(
                        f"fault {spec.name!r} matches upstream {spec.match.upstream!r}, which "
                        f"--instances {instances} does not start (members: {', '.join(names)})"
                    )
        upstream = members[0].url if members else None
        if upstream is None and scenario.upstreams and instances is None:
            upstream = scenario.upstreams[0].url
        if mode == "tcp" and any(
            spec.match.path or spec.match.methods or spec.match.headers for spec in scenario.faults
        ):
            raise ConfigError("a fault with `match` needs HTTP requests; use --mode http")
        settings = ProxySettings(
            Upstream.parse(upstream) if upstream else Upstream("127.0.0.1", 0),
            "tcp" if mode == "tcp" else "http",
            parse_duration(connect_timeout, bare_seconds=True),
            client_header_timeout=_positive("--client-header-timeout", client_header_timeout),
            session_keys=session_keys,
            journal_events=journal_events,
            live=control is not None,
            max_connections=max_connections or default_max_connections(2 + (upstream is None)),
            time_scale=factor,
            upstreams=members,
            balance=balance,
            hash_key=hash_key,
            client_ip_from=client_ip_from,
        )
        if upstream_ca is not None or upstream_insecure:
            from sseproxy.tls import client_context

            pool = members or scenario.upstreams
            if not any(Upstream.parse(m.url).tls for m in pool) and not settings.upstream.tls:
                raise ConfigError("--upstream-ca and --upstream-insecure need an https:// upstream")
            tls = client_context(upstream_ca, insecure=upstream_insecure)
            settings = replace(settings, upstream_tls=tls)
        if listen_cert is not None or listen_key is not None:
            from sseproxy.tls import server_context

            if listen_cert is None:
                raise ConfigError("--listen-key needs --listen-cert FILE")
            settings = replace(settings, listen_tls=server_context(listen_cert, listen_key))
        out: TextIO = sys.stderr if journal_path == "-" else sys.stdout
        with _journal_stream(journal_path) as stream:
            trio.run(
                partial(
                    _run,
                    control=control,
                    control_token=control_token,
                    close_lines=sys.stderr.isatty() if close_lines is None else close_lines,
                    instances=instances,
                ),
                stream,
                host,
                port,
                settings,
                upstream is None,
                scenario,
                seed,
                out,
            )


def _run_fleet() -> None:
    """`run --config` / `--toxiproxy-api`: several proxies (sseproxy.toxiproxy.run)."""
    from sseproxy.toxiproxy.run import fleet_command

    params = click.get_current_context().params
    with _friendly_errors():
        client_header_timeout = _positive(
            "--client-header-timeout", params["client_header_timeout"]
        )
        command = fleet_command(params, client_header_timeout)
        journal_path = params["journal_path"]
        out: TextIO = sys.stderr if journal_path == "-" else sys.stdout
        with _journal_stream(journal_path) as stream:
            command(stream, out)


def _settle_garbage_collector() -> None:
    """Once serving: what start-up built (imports, the scenario) lives as long as the
    process, so move it out of the collector's way (`gc.freeze`), and collect young
    objects less often. A full collection walks every tracked object; with a thousand
    streams open it paused the event loop for tens of milliseconds, the framed path's
    p99 latency."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


GC_YOUNG_THRESHOLD = 20_000
"""Allocations between young collections (Python's default is 700)."""


def _positive(option: str, text: str) -> float:
    from sseproxy.units import parse_duration

    seconds = parse_duration(text, bare_seconds=True)
    if seconds <= 0:
        raise ConfigError(f"{option} must be more than 0, e.g. 60s")
    return seconds


def _given(parameter: str) -> bool:
    """True when the user typed the option (not a default or an environment variable)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source is click.core.ParameterSource.COMMANDLINE


@contextlib.contextmanager
def _journal_stream(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        try:
            stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as error:
            raise ConfigError(f"cannot write the journal {path}: {error.strerror}") from None
        with stream:
            yield stream


async def _run(journal_stream: TextIO | None, *args: Any, **kwargs: Any) -> None:
    """`_proxy` with its journal, which writes every line left before the proxy exits
    (outside the signal receiver: a second Ctrl-C cuts short a journal that is stuck)."""
    from sseproxy.journal import Journal

    async with Journal(journal_stream) as journal:
        await _proxy(journal, *args, **kwargs)


async def _proxy(
    journal: Journal,
    host: str,
    port: int,
    settings: ProxySettings,
    builtin: bool,
    scenario: Scenario,
    seed: int | None,
    out: TextIO,
    *,
    control: tuple[str, int] | None = None,
    control_token: str | None = None,
    close_lines: bool = False,
    instances: int | None = None,
) -> None:
    import trio

    from sseproxy import origin
    from sseproxy.console import CloseLines
    from sseproxy.control import DEFAULT_PORT, control_url, serve_control
    from sseproxy.proxy import Proxy, Upstream
    from sseproxy.server import listen, serve_proxy

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        control_listener = None
        if control is not None:
            control_listener = await listen(*control, option="--control")
        listener = await listen(host, port)  # before the nursery: a clean one-line error
        if close_lines:
            CloseLines(sys.stderr).attach(journal)
        async with trio.open_nursery() as nursery:
            if instances is not None:
                from sseproxy.upstreams import builtin_members

                start = partial(builtin_members, scenario, instances)
                settings = replace(settings, upstreams=await nursery.start(start))
                settings = replace(settings, upstream=Upstream.parse(settings.upstreams[0].url))
            elif builtin:
                demo = origin.OriginSettings()
                origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, demo)
                settings = replace(settings, upstream=Upstream("127.0.0.1", origin_port))
            bound = listener.socket.getsockname()[1]
            proxy = Proxy(settings, scenario, journal, seed=seed)
            upstream, mode = settings.upstream, settings.mode
            file = str(Path(scenario.path).resolve()) if scenario.path else None
            pool = proxy.balancer
            journal.write(
                "started",
                "-",
                listen=f"{host}:{bound}",
                upstream=str(upstream),
                upstreams={n: str(u) for n, u in pool.upstreams.items()} if pool.named else None,
                balance=pool.spec.balance if pool.named else None,
                mode=mode,
                max_connections=settings.max_connections,
                scenario_file=file,  # so that `report` finds it (next to the journal, or here)
                time_scale=proxy.time_scale,
            )
            if control is not None and control_listener is not None:
                serve = partial(serve_control, proxy, control_listener, token=control_token)
                await nursery.start(serve)
            await nursery.start(serve_proxy, proxy, listener)
            shown = f"[{host}]" if ":" in host else host
            what = f"{'built-in demo server' if builtin else 'upstream'} {upstream}"
            if pool.named:
                listed = ", ".join(f"{n}={u}" for n, u in pool.upstreams.items())
                what = f"{pool.spec.balance} pool {listed}"
            at = f"{'https' if settings.listen_tls else 'http'}://{shown}:{bound}"
            print(f"sseproxy {mode} proxy on {at} -> {what}", file=out)
            faults = ", ".join(spec.name for spec in scenario.faults) or "none"
            print(f"scenario {scenario.name} (seed {proxy.seed}); faults: {faults}", file=out)
            if proxy.time_scale != 1:
                print(_time_scale_line(proxy.time_scale), file=out)
            if mode == "http" and instances is not None:
                mcp = f"an MCP client on {at}/sse or {at}/mcp"
                print(f"try: curl -N {at}/events, or {mcp}", file=out)
            elif mode == "http" and builtin:
                print(f"try: curl -N {at}/events", file=out)
            elif mode == "http":
                print(
                    f"try: curl -N {at}/PATH (PATH: where {upstream} "
                    "serves its event stream; requests keep their path)",
                    file=out,
                )
            if control is not None and control_listener is not None:
                url = control_url(control[0], control_listener.socket.getsockname()[1])
                default = url == control_url("127.0.0.1", DEFAULT_PORT)
                option = "" if default else f" --control {url}"
                print(f"control API on {url}; try: sseproxy ctl{option} status", file=out)
            print("stop with Ctrl-C", file=out, flush=True)
            _settle_garbage_collector()
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    print("stopped", file=out, flush=True)


def _time_scale_line(factor: float) -> str:
    from sseproxy.timescale import summary

    return summary(factor)


class _OriginCommand(click.Command):
    """`serve`: one option per origin setting, added when the command is first parsed or
    shown (`origin` imports trio and h11, which `sseproxy --help` has no use for)."""

    _with_settings = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._with_settings:
            self._with_settings = True
            self.params.extend(_origin_options())
        return super().get_params(ctx)


def _origin_options() -> list[click.Parameter]:
    """One CLI option per origin setting, help and parsing taken from its declaration."""
    from sseproxy import origin

    defaults = origin.OriginSettings()
    options: list[click.Parameter] = []
    for name, doc in origin.SETTING_DOCS.items():
        default = getattr(defaults, name)
        shown = (
            "none"
            if default is None
            else f"{default:g}"
            if isinstance(default, float)
            else str(default)
        )
        unit = f" [{doc.unit}]" if doc.unit else ""
        options.append(
            click.Option(
                [f"--{name}"],
                metavar=name.upper(),
                default=None,
                help=f"{doc.help}{unit} (default: {shown}).",
            )
        )
    return options


@main.command(cls=_OriginCommand)
@click.option(
    "--listen",
    "listen_at",
    default="127.0.0.1:9000",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to serve.",
)
@click.option(
    "--instances",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    metavar="N",
    help="Serve N independent instances (each its own MCP sessions) on PORT, PORT+1, ... "
    "(port 0: free ports), as behind a load balancer.",
)
def serve(listen_at: str, instances: int, **overrides: str | None) -> None:
    """Serve demo SSE events (the built-in upstream).

    \b
    Endpoints:
      /events   numbered events; query parameters override the defaults:
                ?interval=0.5&heartbeat=0&hb=event&size=1KiB&count=100&retry=3000
                (any other parameter: 400); resumes after the Last-Event-ID header
      /status/N a response with status N (body: 'status N')
      /echo     POST or PUT: the body back
      /sse      MCP legacy HTTP+SSE: the first event, `endpoint`, is where to POST
                (/messages/?session_id=...); unknown sessions get 404
      /mcp      MCP Streamable HTTP: initialize gives an Mcp-Session-Id; GET streams
                notifications, resumable with Last-Event-ID; unknown sessions get 404
      /_restart POST (loopback only): the instance forgets its sessions and drops
                every connection, as a restarted process would

    \b
    Examples:
      sseproxy serve --listen 127.0.0.1:9000 --heartbeat 0
      curl -N 'http://127.0.0.1:9000/events?interval=250ms'
      sseproxy serve --listen 127.0.0.1:9001 --instances 3
    """
    import trio

    from sseproxy import origin
    from sseproxy.server import parse_hostport

    with _friendly_errors():
        host, port = parse_hostport(listen_at)
        values = {
            name: origin.parse_setting(name, text)
            for name, text in overrides.items()
            if text is not None
        }
        settings = origin.OriginSettings(**values)
        if port and port + instances - 1 > 65535:
            raise ConfigError(f"--instances {instances} from port {port} goes past 65535")
        trio.run(_serve, host, port, settings, instances)


async def _serve(host: str, port: int, settings: OriginSettings, count: int = 1) -> None:
    import trio

    from sseproxy import origin_mcp

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serve = partial(origin_mcp.serve_instances, host, port, count, settings)
            try:
                instances = await nursery.start(serve)
            except OSError as error:
                where = f"{host}:{port}" if count == 1 else f"{host}:{port}-{port + count - 1}"
                raise ConfigError(f"cannot listen on {where}: {error.strerror}") from None
            shown = f"[{host}]" if ":" in host else host
            for instance in instances:
                which = f" (instance {instance.name})" if count > 1 else ""
                print(f"serving SSE on http://{shown}:{instance.port}/events{which}")
            print(
                "MCP: GET /sse (legacy HTTP+SSE), /mcp (Streamable HTTP); "
                "POST /_restart forgets an instance's sessions",
                flush=True,
            )
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


@main.command()
@click.option(
    "--scenario",
    "scenario_name",
    metavar="NAME|FILE",
    help="The starting scenario: a preset name or a TOML file (the page can change it).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=0,
    help="The page's port (also the control API under /api). Default: a free port.",
)
@click.option(
    "--streams-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=0,
    help="Where the page's EventSource clients connect (a browser opens at most six "
    "connections to one address). Default: a free port.",
)
@click.option(
    "--proxy-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=0,
    help="The proxy's port, for curl and other clients. Default: a free port.",
)
@click.option(
    "--origin-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=0,
    help="The built-in SSE server's port. Default: a free port.",
)
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option(
    "--journal",
    "journal_path",
    metavar="FILE",
    help="Also append the journal to FILE ('-' = stdout), for `sseproxy report` afterwards.",
)
@click.option(
    "--time-scale",
    metavar="F",
    help="Multiply every duration in the scenario by F, as `run --time-scale` (the page "
    "changes it too): 0.1 turns a 60s idle timeout into 6s. Default: 1.",
)
@click.option(
    "--close-lines/--quiet",
    "close_lines",
    default=None,
    help="Print a line on stderr per closed connection, as `run` does (default: on when "
    "stderr is a terminal).",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
def demo(
    scenario_name: str | None,
    port: int,
    streams_port: int,
    proxy_port: int,
    origin_port: int,
    seed: int | None,
    journal_path: str | None,
    time_scale: str | None,
    close_lines: bool | None,
    open_page: bool,
) -> None:
    """A workshop in one command: server, proxy and a live page, all on 127.0.0.1.

    The page opens EventSource clients through the proxy, adds and removes faults,
    steps through a story and draws every close as it happens (docs/workshop.md).

    \b
    Examples:
      sseproxy demo --open
      sseproxy demo --scenario idle-3s --port 8000 --journal demo.jsonl
      sseproxy demo --scenario nginx-default --time-scale 0.1   (60s timeouts take 6s)

    Stop with Ctrl-C: streams end, the journal is complete, the exit status is 0.
    """
    import trio

    from sseproxy.demo.app import DemoSettings
    from sseproxy.demo.app import main as demo_main
    from sseproxy.demo.catalog import scenario_named
    from sseproxy.timescale import check_factor

    with _friendly_errors():
        factor = check_factor(time_scale) if time_scale is not None else 1.0
        settings = DemoSettings(
            scenario=scenario_named(scenario_name or "none"),
            port=port,
            streams_port=streams_port,
            proxy_port=proxy_port,
            origin_port=origin_port,
            seed=seed,
            time_scale=factor,
        )
        out: TextIO = sys.stderr if journal_path == "-" else sys.stdout
        lines = sys.stderr.isatty() if close_lines is None else close_lines
        with _journal_stream(journal_path) as stream:
            run = partial(demo_main, open_page=open_page, close_lines=sys.stderr if lines else None)
            trio.run(run, settings, stream, out)


main.add_command(ctl, "ctl")


@main.group()
def scenarios() -> None:
    """List, show, validate and describe scenarios and faults.

    \b
    Examples:
      sseproxy scenarios list
      sseproxy scenarios describe idle-timeout
      sseproxy scenarios validate my-scenario.toml
    """


@scenarios.command("list")
def scenarios_list() -> None:
    """The presets shipped with sseproxy (use one with `run --scenario NAME`).

    Example: sseproxy scenarios list
    """
    from sseproxy.scenario import load_scenario, preset_names

    for name in preset_names():
        try:
            description = load_scenario(name).description
        except ScenarioError as error:
            description = f"(invalid: {error})"
        click.echo(f"{name:24} {description}")


@scenarios.command("show")
@click.argument("name")
def scenarios_show(name: str) -> None:
    """Print a preset's file (or any scenario file), to read or to copy and adapt.

    Example: sseproxy scenarios show nginx-default > my-nginx.toml
    """
    from sseproxy.scenario import load_scenario

    with _friendly_errors():
        scenario = load_scenario(name)
        assert scenario.path is not None
        click.echo(Path(scenario.path).read_text(encoding="utf-8").rstrip())


@scenarios.command("validate")
@click.argument("files", nargs=-1, required=True)
def scenarios_validate(files: tuple[str, ...]) -> None:
    """Check scenario files; exit 1 if any is invalid.

    Example: sseproxy scenarios validate scenarios/*.toml
    """
    from sseproxy.scenario import load_scenario

    failed = 0
    for file in files:
        try:
            scenario = load_scenario(file)
        except ScenarioError as error:
            failed += 1
            for line in error.lines:
                click.echo(f"invalid  {line}")
        else:
            click.echo(f"ok       {file} ({plural(len(scenario.faults), 'fault')})")
    sys.exit(1 if failed else 0)


@scenarios.command("describe")
@click.argument("fault", required=False)
@click.option("--markdown", is_flag=True, help="Print the reference page (docs/faults.md).")
def scenarios_describe(fault: str | None, markdown: bool) -> None:
    """What each fault does and its parameters (all of it generated from the faults).

    \b
    Examples:
      sseproxy scenarios describe idle-timeout
      sseproxy scenarios describe --markdown > docs/faults.md
    """
    from sseproxy.docs import describe_text, faults_markdown
    from sseproxy.faults import all_faults

    if fault is not None and fault not in all_faults():
        raise UsageProblem(f"unknown fault {fault!r}; known: {', '.join(all_faults())}")
    click.echo(faults_markdown() if markdown else describe_text(fault), nl=not markdown)


main.add_command(report_command, "report")
main.add_command(probe_command, "probe")
