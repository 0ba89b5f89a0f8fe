"""`sseproxy ctl`: drive a running proxy's control API (`sseproxy run --control ...`).

The client is the standard library's `http.client`, so `ctl` needs nothing beyond
sseproxy's own dependencies. Output is for people unless `--json` is given. Exit status:
0 done, 1 the proxy refused the change (unknown fault, name taken, invalid value...),
2 a usage or connection problem (no proxy there, wrong token). Errors are one line.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import sys
import tomllib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import click

from sseproxy.scenario import preset_names, preset_path

__all__ = ["DEFAULT_URL", "ControlClient", "ctl", "parse_assignment"]

DEFAULT_URL: Final = "http://127.0.0.1:8474"
TIMEOUT: Final = 10.0
STREAM_TIMEOUT: Final = 60.0
"""`ctl journal` gives up after this long without a byte (the API sends a heartbeat
every 15 s of silence)."""


class Unreachable(click.ClickException):
    """A usage or connection problem: exit status 2."""

    exit_code = 2


class Refused(click.ClickException):
    """The proxy refused the request: exit status 1."""

    exit_code = 1


# -- the client ---------------------------------------------------------------------------


@dataclass
class ControlClient:
    """A few JSON calls to the control API at `url` (http://HOST:PORT[/prefix])."""

    url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = TIMEOUT

    def _target(self) -> tuple[str, str, int, str]:
        text = self.url if "//" in self.url else f"http://{self.url}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable(f"--control {self.url!r}: expected a URL like {DEFAULT_URL}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 8474)
        except ValueError:
            raise Unreachable(f"--control {self.url!r}: the port is not a number") from None
        return parts.scheme, parts.hostname, port, parts.path.rstrip("/")

    @contextlib.contextmanager
    def _send(
        self, method: str, path: str, body: bytes | None, content_type: str | None, timeout: float
    ) -> Iterator[http.client.HTTPResponse]:
        """The response to one request on a connection of its own, closed on the way out."""
        scheme, host, port, prefix = self._target()
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(host, port, timeout=timeout)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        with contextlib.closing(connection):
            try:
                connection.request(method, prefix + path, body=body, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                raise Unreachable(
                    f"cannot reach the control API at {self.url}: {reason} "
                    "(is `sseproxy run --control HOST:PORT` running? see --control)"
                ) from None
            with contextlib.closing(response):
                yield response

    def call(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[str, bytes]:
        """(content type, body) of a successful answer; Refused or Unreachable otherwise."""
        if data is not None:
            body, content_type = json.dumps(data).encode(), "application/json"
        with self._send(method, path, body, content_type, self.timeout) as response:
            try:
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise Unreachable(f"the control API at {self.url} broke off: {error}") from None
            if response.status >= 400:
                raise self._problem(response.status, payload)
            return response.getheader("Content-Type", ""), payload

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        content_type, payload = self.call(method, path, **kwargs)
        try:
            return json.loads(payload)
        except ValueError:
            raise Unreachable(
                f"{self.url} answered {content_type or 'something'} that is not JSON; "
                "is it an sseproxy control API?"
            ) from None

    def _problem(self, status: int, payload: bytes) -> click.ClickException:
        try:
            message = str(json.loads(payload)["error"])
        except (ValueError, KeyError, TypeError):
            text = payload.decode("utf-8", "replace").strip().splitlines()
            message = text[0] if text else f"HTTP {status}"
        if status in (401, 403):
            hint = "" if self.token else " (give --token or $SSEPROXY_CONTROL_TOKEN)"
            return Unreachable(f"{message}{hint}")
        if status >= 500 or status == 405:
            return Unreachable(f"the control API failed (HTTP {status}): {message}")
        return Refused(message)

    def lines(self, path: str) -> Generator[str, None, None]:
        """The lines of a streamed answer (the journal), as they arrive."""
        with self._send("GET", path, None, None, STREAM_TIMEOUT) as response:
            if response.status >= 400:
                raise self._problem(response.status, response.read())
            try:
                while line := response.readline():
                    yield line.decode("utf-8", "replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as error:
                raise Unreachable(
                    f"the journal stream from {self.url} broke off: {error}"
                ) from None


# -- values given on the command line -----------------------------------------------------


def _plain(value: Any) -> bool:
    """A value JSON can carry as it is (no dates, no inf/nan)."""
    if isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def parse_value(text: str) -> Any:
    """A TOML value (0.5, 3, true, ["a"], { path = "/x" }, "quoted") or else the text:
    `200ms` and `/events*` are strings, as in a scenario file."""
    if "\n" not in text:
        try:
            value = tomllib.loads(f"v = {text}")
        except tomllib.TOMLDecodeError:
            pass
        else:
            if set(value) == {"v"} and _plain(value["v"]):
                return value["v"]
    return text


def parse_assignment(text: str, into: dict[str, Any], *, unset: bool = False) -> None:
    """'delay=200ms' or 'match.path=/events*' into a nested dict (`unset`: KEY -> null)."""
    key, sep, raw = text.partition("=")
    if unset:
        key, sep, raw = text, "=", ""
    if not sep or not key.strip() or any(not part.strip() for part in key.split(".")):
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE, e.g. delay=200ms")
    *parents, last = [part.strip() for part in key.split(".")]
    table = into
    for part in parents:
        child = table.setdefault(part, {})
        if not isinstance(child, dict):
            raise click.BadParameter(f"{text!r}: {part} is set twice")
        table = child
    table[last] = None if unset else parse_value(raw)


# -- output -------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return (
            value
            if value and all(c.isprintable() and c not in " ,=" for c in value)
            else (json.dumps(value))
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _settings(fault: dict[str, Any]) -> str:
    rest = [f"{k}={_show(v)}" for k, v in fault.items() if k not in ("type", "name")]
    return ", ".join(rest) or "defaults"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _size(octets: int) -> str:
    value = float(octets)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{octets}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{octets}B"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(command)


# -- commands -----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--control",
    "url",
    envvar="SSEPROXY_CONTROL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="The control API (`sseproxy run --control HOST:PORT`); also $SSEPROXY_CONTROL.",
)
@click.option(
    "--token",
    envvar="SSEPROXY_CONTROL_TOKEN",
    metavar="TOKEN",
    help="The proxy's --control-token; also $SSEPROXY_CONTROL_TOKEN.",
)
@click.pass_context
def ctl(ctx: click.Context, url: str, token: str | None) -> None:
    """Change a running proxy's faults, list and kill its connections.

    The proxy must run with a control API: `sseproxy run --control 127.0.0.1:8474`.
    Exit status: 0 done, 1 refused by the proxy, 2 usage or connection problem.

    \b
    Examples:
      sseproxy ctl status
      sseproxy ctl faults add --type latency --set delay=200ms
      sseproxy ctl kill --all --reset
      sseproxy ctl --control http://10.0.0.5:8474 --token "$TOKEN" connections
    """
    ctx.obj = ControlClient(url, token)


@ctl.command()
@_json_option
@click.pass_obj
def status(client: ControlClient, as_json: bool) -> None:
    """The proxy, its scenario and faults, and its connections.

    Example: sseproxy ctl status
    """
    info = client.json("GET", "/status")
    if as_json:
        _dump(info)
        return
    connections = info.get("connections", {})
    click.echo(
        f"proxy      http://{info.get('listen')} -> {info.get('upstream')} ({info.get('mode')})"
    )
    click.echo(f"scenario   {info.get('scenario')} (seed {info.get('seed')})")
    click.echo(f"faults     {', '.join(info.get('faults', [])) or 'none'}")
    click.echo(
        f"open       {_plural(connections.get('open', 0), 'connection')} "
        f"({connections.get('total')} since start)"
    )
    click.echo(f"uptime     {_age(float(info.get('uptime', 0)))}")
    click.echo(f"control    {client.url} (sseproxy {info.get('version')})")


def _print_faults(client: ControlClient, as_json: bool) -> None:
    answer = client.json("GET", "/faults")
    if as_json:
        _dump(answer)
        return
    faults = answer.get("faults", [])
    if not faults:
        click.echo(f"no faults (scenario {answer.get('scenario')})")
        return
    _table(
        [[f["name"], f["type"], _settings(f)] for f in faults],
        ["NAME", "TYPE", "SETTINGS"],
    )


@ctl.group(invoke_without_command=True)
@_json_option
@click.pass_context
def faults(ctx: click.Context, as_json: bool) -> None:
    """List, add, change and remove faults, live (open connections too).

    \b
    Examples:
      sseproxy ctl faults
      sseproxy ctl faults add --type latency --set delay=200ms --name slow
      sseproxy ctl faults set slow --set delay=1s
      sseproxy ctl faults rm slow
    """
    if ctx.invoked_subcommand is None:
        _print_faults(ctx.obj, as_json)


@faults.command("list")
@_json_option
@click.pass_obj
def faults_list(client: ControlClient, as_json: bool) -> None:
    """The faults in force, with their settings (defaults left out).

    Example: sseproxy ctl faults list --json
    """
    _print_faults(client, as_json)


_SET_HELP = (
    "A fault field, repeatable: delay=200ms, probability=0.5, match.path=/events*. "
    'Values are read as TOML (numbers, true, [lists], {tables}, "quoted"); '
    "anything else is a string."
)


@faults.command("add")
@click.option(
    "--type",
    "kind",
    required=True,
    metavar="FAULT",
    help="The fault (see `sseproxy scenarios describe`).",
)
@click.option("--name", help="Its name for the journal and for `set`/`rm` (default: the type).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@_json_option
@click.pass_obj
def faults_add(
    client: ControlClient,
    kind: str,
    name: str | None,
    assignments: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add a fault; open connections get it too.

    \b
    Examples:
      sseproxy ctl faults add --type latency --set delay=200ms
      sseproxy ctl faults add --type reset --name kick --set events=5
      sseproxy ctl faults add --type idle-timeout --set timeout=20s --set match.path='/sse*'
    """
    table: dict[str, Any] = {"type": kind}
    if name is not None:
        table["name"] = name
    for text in assignments:
        parse_assignment(text, table)
    fault = client.json("POST", "/faults", data=table)
    if as_json:
        _dump(fault)
    else:
        click.echo(f"added {fault['name']} ({fault['type']}): {_settings(fault)}")


@faults.command("set")
@click.argument("name")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option(
    "--unset", "removals", multiple=True, metavar="KEY", help="Back to the default, repeatable."
)
@_json_option
@click.pass_obj
def faults_set(
    client: ControlClient,
    name: str,
    assignments: tuple[str, ...],
    removals: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change a fault's fields; open connections get the new version.

    \b
    Examples:
      sseproxy ctl faults set latency --set delay=1s --set jitter=100ms
      sseproxy ctl faults set latency --unset jitter
    """
    if not assignments and not removals:
        raise click.UsageError("give --set KEY=VALUE or --unset KEY")
    patch: dict[str, Any] = {}
    for text in assignments:
        parse_assignment(text, patch)
    for text in removals:
        parse_assignment(text, patch, unset=True)
    fault = client.json("PATCH", f"/faults/{quote(name, safe='')}", data=patch)
    if as_json:
        _dump(fault)
    else:
        click.echo(f"changed {fault['name']} ({fault['type']}): {_settings(fault)}")


@faults.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every fault.")
@_json_option
@click.pass_obj
def faults_rm(
    client: ControlClient, names: tuple[str, ...], everything: bool, as_json: bool
) -> None:
    """Remove faults by name; what they held back is released.

    \b
    Examples:
      sseproxy ctl faults rm latency
      sseproxy ctl faults rm --all
    """
    if everything == bool(names):
        raise click.UsageError("give fault names or --all")
    removed: list[str] = []
    if everything:
        removed = client.json("DELETE", "/faults")["removed"]
    for name in names:
        removed += client.json("DELETE", f"/faults/{quote(name, safe='')}")["removed"]
    if as_json:
        _dump({"removed": removed})
    else:
        click.echo(f"removed {', '.join(removed)}" if removed else "no faults to remove")


@ctl.command()
@_json_option
@click.pass_obj
def connections(client: ControlClient, as_json: bool) -> None:
    """The open connections: client, age, path, bytes and events down, last id, faults.

    Example: sseproxy ctl connections
    """
    answer = client.json("GET", "/connections")
    if as_json:
        _dump(answer)
        return
    rows = [
        [
            str(c.get("id")),
            f"{c.get('client')}:{c.get('client_port')}"
            if c.get("client_port")
            else str(c.get("client")),
            _age(float(c.get("age") or 0)),
            f"{c.get('method') or ''} {c.get('path') or ''}".strip() or "-",
            _size(int(c.get("bytes_down") or 0)),
            str(c.get("events_down", 0)),
            str(c.get("last_id") or "-"),
            ",".join(c.get("faults") or []) or "-",
        ]
        for c in answer.get("connections", [])
    ]
    if not rows:
        click.echo("no open connections")
        return
    _table(rows, ["ID", "CLIENT", "AGE", "REQUEST", "DOWN", "EVENTS", "LAST-ID", "FAULTS"])


@ctl.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every open connection.")
@click.option("--reset", is_flag=True, help="Send a TCP RST instead of closing (FIN).")
@_json_option
@click.pass_obj
def kill(
    client: ControlClient, ids: tuple[str, ...], everything: bool, reset: bool, as_json: bool
) -> None:
    """Close (or reset) connections by id (see `ctl connections`), or all of them.

    \b
    Examples:
      sseproxy ctl kill c3
      sseproxy ctl kill --all --reset
    """
    if everything == bool(ids):
        raise click.UsageError("give connection ids (e.g. c3) or --all")
    how = urlencode({"how": "reset" if reset else "close"})
    killed: list[str] = []
    if everything:
        killed = client.json("DELETE", f"/connections?{how}")["killed"]
    for conn_id in ids:
        killed += client.json("DELETE", f"/connections/{quote(conn_id, safe='')}?{how}")["killed"]
    if as_json:
        _dump({"killed": killed, "how": "reset" if reset else "close"})
    elif not killed:
        click.echo("no open connections")
    else:
        click.echo(f"{'reset' if reset else 'closed'} {', '.join(killed)}")


@ctl.group()
def scenario() -> None:
    """Show the scenario in force, or replace it with a file.

    \b
    Examples:
      sseproxy ctl scenario show > now.toml
      sseproxy ctl scenario load nginx-default
    """


@scenario.command("show")
@_json_option
@click.pass_obj
def scenario_show(client: ControlClient, as_json: bool) -> None:
    """Print the scenario in force as a scenario file (TOML).

    Example: sseproxy ctl scenario show > now.toml
    """
    answer = client.json("GET", "/scenario")
    if as_json:
        _dump(answer)
    else:
        click.echo(str(answer["toml"]).rstrip())


@scenario.command("load")
@click.argument("file", metavar="FILE|PRESET|-")
@_json_option
@click.pass_obj
def scenario_load(client: ControlClient, file: str, as_json: bool) -> None:
    """Replace the scenario: checked by the proxy first (same messages as `run`); a bad
    one is refused (exit 1) and the old one stays.

    \b
    Examples:
      sseproxy ctl scenario load my-scenario.toml
      sseproxy ctl scenario load nginx-default
    """
    text, name = _read_scenario(file)
    answer = client.json(
        "PUT",
        f"/scenario?{urlencode({'file': name})}",
        body=text,
        content_type="application/toml",
    )
    if as_json:
        _dump(answer)
        return
    names = [fault["name"] for fault in answer.get("faults", [])]
    click.echo(
        f"loaded scenario {answer['name']}: {len(names)} faults"
        + (f" ({', '.join(names)})" if names else "")
    )


def _read_scenario(file: str) -> tuple[bytes, str]:
    """The file's bytes and the name errors will give (as `run --scenario` would)."""
    if file == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    path = Path(file)
    if not path.is_file():
        preset = preset_path(file) if "/" not in file else None
        if preset is None:
            raise Unreachable(
                f"{file}: no such file, and no preset of that name "
                f"(presets: {', '.join(preset_names())})"
            )
        path = preset
    try:
        return path.read_bytes(), str(path)
    except OSError as error:
        raise Unreachable(f"{path}: cannot read: {error.strerror or error}") from None


@ctl.command()
@click.pass_obj
def metrics(client: ControlClient) -> None:
    """Print the Prometheus metrics (text format), as a scraper sees them.

    Example: sseproxy ctl metrics | grep sseproxy_connections
    """
    _, payload = client.call("GET", "/metrics")
    click.echo(payload.decode("utf-8", "replace").rstrip())


@ctl.command()
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only these kinds (opened, closed, fault...).",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="First the records the proxy still keeps (its last 10000), then live ones.",
)
@_json_option
@click.pass_obj
def journal(
    client: ControlClient,
    count: int | None,
    kinds: tuple[str, ...],
    from_start: bool,
    as_json: bool,
) -> None:
    """Follow the journal live, from now on (Ctrl-C to stop).

    \b
    Examples:
      sseproxy ctl journal --kind closed --kind fault
      sseproxy ctl journal --json --count 100 > records.jsonl
    """
    params = {"kind": ",".join(kinds)} if kinds else {}
    if from_start:
        params["after"] = "0"
    query = f"?{urlencode(params)}" if params else ""
    seen = 0
    lines = client.lines(f"/journal{query}")
    with contextlib.suppress(KeyboardInterrupt), contextlib.closing(lines):
        for line in lines:
            if not line.startswith("data:"):
                continue
            text = line[5:].strip()
            click.echo(text if as_json else _journal_line(json.loads(text)))
            seen += 1
            if count is not None and seen >= count:
                return


def _journal_line(record: dict[str, Any]) -> str:
    skip = ("t", "ts", "kind", "conn", "scenario", "seed")
    rest = " ".join(f"{k}={_show(v)}" for k, v in record.items() if k not in skip)
    t, conn, kind = float(record.get("t", 0)), record.get("conn", "-"), record.get("kind", "?")
    return f"{t:10.3f}  {conn:<5} {kind:<9} {rest}"
