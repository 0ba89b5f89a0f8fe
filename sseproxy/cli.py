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
    metavar="URL",
    help="The SSE server, e.g. http://127.0.0.1:9000. Default: start the built-in "
    "demo server on a free port.",
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
    default=("Mcp-Session-Id", "sessionId"),
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
def run(
    listen_at: str,
    upstream: str | None,
    scenario_name: str | None,
    mode: str,
    seed: int | None,
    journal_path: str | None,
    journal_events: bool,
    session_keys: tuple[str, ...],
    connect_timeout: str,
    max_connections: int | None,
    client_header_timeout: str,
    control_at: str | None,
    control_token: str | None,
) -> None:
    """Run the proxy.

    \b
    Examples:
      sseproxy run
      sseproxy run --upstream http://127.0.0.1:9000 --scenario nginx-default
      sseproxy run --scenario idle.toml --journal run.jsonl
      sseproxy run --control 127.0.0.1:8474    (then: sseproxy ctl status)

    Stop with Ctrl-C: streams end, the journal is complete, the exit status is 0.
    """
    import trio

    from sseproxy.control import check_control_address
    from sseproxy.proxy import ProxySettings, Upstream
    from sseproxy.scenario import Scenario, load_scenario
    from sseproxy.server import default_max_connections, parse_hostport
    from sseproxy.units import parse_duration

    with _friendly_errors():
        host, port = parse_hostport(listen_at)
        control = parse_hostport(control_at) if control_at else None
        if control is not None:
            check_control_address(control[0], control_token)
        elif control_token is not None and _given("control_token"):
            raise ConfigError("--control-token needs --control HOST:PORT")
        scenario = load_scenario(scenario_name) if scenario_name else Scenario(name="none")
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
        )
        out: TextIO = sys.stderr if journal_path == "-" else sys.stdout
        with _journal_stream(journal_path) as stream:
            trio.run(
                partial(_run, control=control, control_token=control_token),
                stream,
                host,
                port,
                settings,
                upstream is None,
                scenario,
                seed,
                out,
            )


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
) -> None:
    import trio

    from sseproxy import origin
    from sseproxy.control import DEFAULT_PORT, control_url, serve_control
    from sseproxy.proxy import Proxy, Upstream
    from sseproxy.server import listen, serve_proxy

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        control_listener = None
        if control is not None:
            try:
                control_listener = await listen(*control)
            except ConfigError as error:
                raise ConfigError(f"--control: {error}") from None
        listener = await listen(host, port)  # before the nursery: a clean one-line error
        async with trio.open_nursery() as nursery:
            if builtin:
                demo = origin.OriginSettings()
                origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, demo)
                settings = replace(settings, upstream=Upstream("127.0.0.1", origin_port))
            bound = listener.socket.getsockname()[1]
            proxy = Proxy(settings, scenario, journal, seed=seed)
            upstream, mode = settings.upstream, settings.mode
            file = str(Path(scenario.path).resolve()) if scenario.path else None
            journal.write(
                "started",
                "-",
                listen=f"{host}:{bound}",
                upstream=str(upstream),
                mode=mode,
                max_connections=settings.max_connections,
                scenario_file=file,  # so that `report` finds it (next to the journal, or here)
            )
            if control is not None and control_listener is not None:
                serve = partial(serve_control, proxy, control_listener, token=control_token)
                await nursery.start(serve)
            await nursery.start(serve_proxy, proxy, listener)
            shown = f"[{host}]" if ":" in host else host
            what = "built-in demo server" if builtin else "upstream"
            print(f"sseproxy {mode} proxy on http://{shown}:{bound} -> {what} {upstream}", file=out)
            faults = ", ".join(spec.name for spec in scenario.faults) or "none"
            print(f"scenario {scenario.name} (seed {proxy.seed}); faults: {faults}", file=out)
            if mode == "http" and builtin:
                print(f"try: curl -N http://{shown}:{bound}/events", file=out)
            elif mode == "http":
                print(
                    f"try: curl -N http://{shown}:{bound}/PATH (PATH: where {upstream} "
                    "serves its event stream; requests keep their path)",
                    file=out,
                )
            if control is not None and control_listener is not None:
                url = control_url(control[0], control_listener.socket.getsockname()[1])
                default = url == control_url("127.0.0.1", DEFAULT_PORT)
                option = "" if default else f" --control {url}"
                print(f"control API on {url}; try: sseproxy ctl{option} status", file=out)
            print("stop with Ctrl-C", file=out, flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    print("stopped", file=out, flush=True)


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
def serve(listen_at: str, **overrides: str | None) -> None:
    """Serve demo SSE events (the built-in upstream).

    \b
    Endpoints:
      /events   numbered events; query parameters override the defaults:
                ?interval=0.5&heartbeat=0&hb=event&size=1KiB&count=100&retry=3000
                (any other parameter: 400); resumes after the Last-Event-ID header
      /status/N a response with status N (body: 'status N')
      /echo     POST or PUT: the body back

    \b
    Example:
      sseproxy serve --listen 127.0.0.1:9000 --heartbeat 0
      curl -N 'http://127.0.0.1:9000/events?interval=250ms'
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
        trio.run(_serve, host, port, settings)


async def _serve(host: str, port: int, settings: OriginSettings) -> None:
    import trio

    from sseproxy import origin

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                bound = await nursery.start(origin.serve, host, port, settings)
            except OSError as error:
                raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
            print(f"serving SSE on http://{host}:{bound}/events", flush=True)
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
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
def demo(
    scenario_name: str | None,
    port: int,
    streams_port: int,
    proxy_port: int,
    origin_port: int,
    seed: int | None,
    journal_path: str | None,
    open_page: bool,
) -> None:
    """A workshop in one command: server, proxy and a live page, all on 127.0.0.1.

    The page opens EventSource clients through the proxy, adds and removes faults,
    steps through a story and draws every close as it happens (docs/workshop.md).

    \b
    Examples:
      sseproxy demo --open
      sseproxy demo --scenario idle-3s --port 8000 --journal demo.jsonl

    Stop with Ctrl-C: streams end, the journal is complete, the exit status is 0.
    """
    import trio

    from sseproxy.demo.app import DemoSettings
    from sseproxy.demo.app import main as demo_main
    from sseproxy.demo.catalog import scenario_named

    with _friendly_errors():
        settings = DemoSettings(
            scenario=scenario_named(scenario_name or "none"),
            port=port,
            streams_port=streams_port,
            proxy_port=proxy_port,
            origin_port=origin_port,
            seed=seed,
        )
        out: TextIO = sys.stderr if journal_path == "-" else sys.stdout
        with _journal_stream(journal_path) as stream:
            trio.run(partial(demo_main, open_page=open_page), settings, stream, out)


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
