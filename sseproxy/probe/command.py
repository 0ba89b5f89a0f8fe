"""`sseproxy probe URL`: the click command (registered in cli.py); the work is in `runner`.

Exit status: 0 every verdict held (or none was asked), 1 a verdict failed (one line
each), 2 a usage or configuration error.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, TextIO

import click

from sseproxy.errors import ConfigError, SseproxyError, UnitError

if TYPE_CHECKING:
    import ssl

    from sseproxy.probe.output import Progress
    from sseproxy.probe.runner import Probe, ProbeSettings
    from sseproxy.probe.target import Target

__all__ = ["probe_command"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class _UsageProblem(click.ClickException):
    exit_code = 2


def _duration(option: str, text: str | None, *, zero: bool = False) -> float | None:
    from sseproxy.units import parse_duration

    if text is None:
        return None
    seconds = parse_duration(text, bare_seconds=True)
    if seconds < 0 or (seconds == 0 and not zero):
        raise ConfigError(f"{option} must be more than 0, e.g. 10s")
    return seconds


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not _TOKEN.match(name.strip()):
        raise ConfigError(
            f"--header {text!r}: write NAME:VALUE, e.g. --header 'Authorization: Bearer x'"
        )
    return name.strip(), value.strip()


@click.command(
    "probe", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.argument("url")
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="How many EventSource clients at once.",
)
@click.option(
    "--duration",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="How long the probe runs (Ctrl-C stops it early, with a report).",
)
@click.option(
    "--ramp",
    default="0s",
    show_default=True,
    metavar="DURATION",
    help="Start the clients evenly over this long.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="NAME:VALUE",
    help="An extra request header (repeatable).",
)
@click.option(
    "--last-event-id", metavar="ID", help="The Last-Event-ID each client's first connection sends."
)
@click.option(
    "--watchdog",
    metavar="DURATION",
    help="Drop and reconnect a stream that went this long without an event, as "
    "SDKs that count only events do (comments do not reset it).",
)
@click.option(
    "--connect-timeout",
    default="10s",
    show_default=True,
    metavar="DURATION",
    help="Give up a connect (with its TLS handshake, for https) after this long (seen as refused).",
)
@click.option(
    "--ca",
    "ca_file",
    metavar="FILE",
    help="For https:// URLs: trust the CA certificates in this PEM file instead of the system's.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="For https:// URLs: check neither the certificate nor its name (self-signed "
    "test servers).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON on stdout.")
@click.option(
    "--journal",
    "journal_path",
    metavar="FILE",
    help="Append an sseproxy journal of the run, from the clients' side "
    "(sseproxy report FILE reads it).",
)
@click.option(
    "--max-drops",
    type=click.IntRange(min=0),
    metavar="N",
    help="Fail if there are more than N drops (any end but the probe's own).",
)
@click.option(
    "--max-gap",
    metavar="DURATION",
    help="Fail if a client went longer than this without an event (across reconnects).",
)
@click.option(
    "--no-loss",
    is_flag=True,
    help="Fail if an event id was skipped (integer ids counting up by one).",
)
@click.option(
    "--min-duration",
    metavar="DURATION",
    help="Fail if a stream ended (other than by the probe's stop) sooner than this.",
)
def probe_command(
    url: str,
    clients: int,
    duration: str,
    ramp: str,
    headers: tuple[str, ...],
    last_event_id: str | None,
    watchdog: str | None,
    connect_timeout: str,
    ca_file: str | None,
    insecure: bool,
    as_json: bool,
    journal_path: str | None,
    max_drops: int | None,
    max_gap: str | None,
    no_loss: bool,
    min_duration: str | None,
) -> None:
    """Many EventSource clients against an SSE endpoint: what they saw, and verdicts.

    Each client reconnects as a browser's EventSource does (after 3 s, or the stream's
    `retry:`, sending Last-Event-ID; a non-200 answer or another content type stops it
    for good). The report counts connects, drops by how the clients saw them (clean
    end, incomplete chunked body, RST, watchdog, status, refused), reconnect delays,
    gaps, ids lost and repeated, time to the first event and stream durations.

    \b
    Examples:
      sseproxy probe http://127.0.0.1:8080/events --clients 10 --duration 2m
      sseproxy probe http://127.0.0.1:8080/events --duration 30s --max-drops 0
      sseproxy probe http://api.example.com/sse --header 'Authorization: Bearer t0k'
      sseproxy probe http://127.0.0.1:8080/events --watchdog 45s --no-loss --json
      sseproxy probe http://127.0.0.1:8080/events --journal probe.jsonl
        (then: sseproxy report probe.jsonl [the proxy's journal])
      sseproxy probe https://localhost:8443/events --ca ca.pem

    Exit status: 0 every verdict held, 1 one failed (a line each), 2 a usage error.
    """
    import json

    import trio

    from sseproxy.probe.output import Progress, render_text
    from sseproxy.probe.runner import ProbeSettings
    from sseproxy.probe.summary import summarize
    from sseproxy.probe.target import Target
    from sseproxy.probe.verdicts import Thresholds, check

    try:
        target = Target.parse(url)
        settings = ProbeSettings(
            target,
            clients=clients,
            duration=_duration("--duration", duration) or 0.0,
            ramp=_duration("--ramp", ramp, zero=True) or 0.0,
            headers=tuple(_header(h) for h in headers),
            last_event_id=last_event_id or "",
            watchdog=_duration("--watchdog", watchdog),
            connect_timeout=_duration("--connect-timeout", connect_timeout) or 10.0,
            tls=_tls(target, ca_file, insecure),
        )
        thresholds = Thresholds(
            max_drops=max_drops,
            max_gap=_duration("--max-gap", max_gap, zero=True),
            no_loss=no_loss,
            min_duration=_duration("--min-duration", min_duration, zero=True),
        )
        if journal_path == "-":
            raise ConfigError("--journal: give a file (stdout carries the report)")
        stream = _open_journal(journal_path)
    except (SseproxyError, UnitError) as error:
        raise _UsageProblem(str(error)) from None
    progress = Progress()
    try:
        probe = trio.run(_probe, settings, stream, progress)
    finally:
        progress.clear()
        if stream is not None:
            stream.close()
    result = summarize(probe)
    verdicts = check(result, thresholds)
    if as_json:
        result["verdicts"] = [v.json() for v in verdicts]
        click.echo(json.dumps(result, indent=2))
        for verdict in verdicts:
            if not verdict.ok:
                click.echo(f"FAIL {verdict.line}", err=True)
    else:
        click.echo(render_text(result, verdicts), nl=False)
    sys.exit(1 if any(not v.ok for v in verdicts) else 0)


def _tls(target: Target, ca_file: str | None, insecure: bool) -> ssl.SSLContext | None:
    """The TLS context for an https:// target (None: the system's CAs, made once)."""
    if ca_file is None and not insecure:
        return None
    if target.scheme != "https":
        raise ConfigError("--ca and --insecure need an https:// URL")
    from sseproxy.tls import client_context

    return client_context(ca_file, insecure=insecure, option="--ca")


def _open_journal(path: str | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")  # closed by the command
    except OSError as error:
        raise ConfigError(f"cannot write the journal {path}: {error.strerror}") from None


async def _probe(settings: ProbeSettings, stream: TextIO | None, progress: Progress) -> Probe:
    import signal

    import trio

    from sseproxy.journal import Journal
    from sseproxy.probe.journaling import ProbeJournal
    from sseproxy.probe.runner import Probe

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Journal(stream) as journal:
            hooks = ProbeJournal(journal, settings) if stream is not None else None
            probe = Probe(settings, hooks=hooks)
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        probe.stop()
                        return

                nursery.start_soon(stop_on_signal)
                await probe.run(progress)
                nursery.cancel_scope.cancel()
    return probe
