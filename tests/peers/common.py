"""What the peer tests share: processes, raw upstreams, and a client that records the wire.

The client (`fetch`) speaks HTTP/1.1 on a plain socket and keeps every `recv` with its
time, so a test can tell a terminating chunk (`0\\r\\n\\r\\n`) from a FIN without one, a FIN
from an RST (`ECONNRESET` on `recv`), and when each SSE event arrived. Waits are bounded:
on a ready line, on a port accepting, on the client's deadline; nothing sleeps to wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import h11

from tests.subprocesses import Lines

STARTUP = 20.0  # seconds a subprocess may take to be ready
HOST = "127.0.0.1"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def find_binary(name: str) -> str | None:
    """`name` on PATH, or in the sbin folders a non-root PATH often lacks."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


# -- subprocesses ------------------------------------------------------------------------


@contextlib.contextmanager
def spawn(*command: str, cwd: Path | None = None) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """A subprocess in its own process group (nginx forks workers); killed on the way out."""
    popen = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    try:
        assert popen.stdout is not None
        yield popen, Lines(popen.stdout)
    finally:
        stop_group(popen)


def stop_group(popen: subprocess.Popen[str]) -> None:
    """SIGTERM the process (and its group: nginx's workers), then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        os.killpg(popen.pid, signal.SIGKILL)  # workers left behind, if any
    popen.wait(timeout=10)


def wait_accepting(
    port: int,
    popen: subprocess.Popen[str],
    out: Lines,
    log: Callable[[], str] = str,
    timeout: float = STARTUP,
) -> None:
    """Block until something accepts on `port` (a peer that prints no ready line)."""
    deadline = time.monotonic() + timeout
    while True:
        if popen.poll() is not None:
            with contextlib.suppress(AssertionError):
                out.wait_for(r"(?!)", timeout=1)  # never matches: collects the output to its end
            shown = f"{popen.args!r} exited with {popen.returncode}: {out.seen} {log()}"
            raise AssertionError(shown)
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing accepts on {HOST}:{port}") from None
            time.sleep(0.01)  # polling a port: the one wait with nothing to block on


@contextlib.contextmanager
def origin(*args: str) -> Iterator[int]:
    """`sseproxy serve` on a free port; yields the port once it prints its ready line."""
    port = free_port()
    command = (sys.executable, "-m", "sseproxy", "serve", "--listen", f"{HOST}:{port}", *args)
    with spawn(*command) as (_, out):
        out.wait_for(rf"^serving SSE on http://127\.0\.0\.1:{port}/events$")
        yield port


@contextlib.contextmanager
def sseproxy_run(upstream_port: int, scenario: str, folder: Path, *extra: str) -> Iterator[int]:
    """`sseproxy run --scenario FILE [extra...]` in front of `upstream_port`; yields its port."""
    path = folder / f"scenario-{upstream_port}-{time.monotonic_ns()}.toml"
    path.write_text(scenario, encoding="utf-8")
    command = (
        *(sys.executable, "-m", "sseproxy", "run", "--listen", f"{HOST}:0"),
        *("--upstream", f"http://{HOST}:{upstream_port}", "--scenario", str(path), *extra),
    )
    with spawn(*command) as (_, out):
        port = int(out.wait_for(r"^sseproxy http proxy on http://127\.0\.0\.1:(\d+) ").group(1))
        out.wait_for(r"^stop with Ctrl-C$")
        yield port


def scenario_toml(name: str, fault: dict[str, str | bool | int]) -> str:
    """A one-fault scenario file."""
    lines = [f'[scenario]\nname = "{name}"\n\n[[faults]]']
    for key, value in fault.items():
        shown = (
            ("true" if value else "false")
            if isinstance(value, bool)
            else str(value)
            if isinstance(value, int)
            else f'"{value}"'
        )
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def parallel(*calls: Callable[[], T]) -> list[T]:
    """Run independent observations at once (each takes seconds of wall time)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


# -- raw upstreams ---------------------------------------------------------------------


class RawServer:
    """A loopback TCP server on a thread; `handle(sock, stop)` runs per connection.

    The port is bound before the server is handed out, so there is no startup race.
    `stop` is set on the way out; handlers wait on it instead of sleeping.
    """

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.handle = handle
        self.stop = threading.Event()
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.ended: list[float] = []  # monotonic times a handler saw its peer go away
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.connections:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.handle(sock, self.stop)
        except OSError:
            self.ended.append(time.monotonic())
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def read_request_head(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("the client went away before its request head")
        head += data
    return head


def silent(sock: socket.socket, stop: threading.Event) -> None:
    """Accept, read the request, never answer (a hung backend)."""
    read_request_head(sock)
    stop.wait(30)


def sse_head(extra: str = "", *, chunked: bool = False) -> bytes:
    """An event-stream response head: chunked, or close-delimited (valid for HTTP/1.0 too)."""
    framing = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        f"{extra}{framing}\r\n"
    ).encode()


def _chunk(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def timed_event(n: int, size: int = 0) -> bytes:
    """Event `n` stamped with the `time.monotonic()` it was sent at, padded to `size`."""
    text = f'id: {n}\ndata: {{"n": {n}, "sent": {time.monotonic():.6f}'
    return (text + " " * (size - len(text) - 3) + "}\n\n").encode()


def trickle(
    count: int,
    interval: float,
    extra_headers: str = "",
    *,
    chunked: bool = False,
    size: int = 0,
) -> Callable[[socket.socket, threading.Event], None]:
    """Events (`timed_event`, padded to `size`) every `interval` s, then the end.

    No X-Accel-Buffering unless `extra_headers` has it. `chunked`: chunked transfer coding
    when the request is HTTP/1.1 (what an HTTP/1.1 server does), else close-delimited.
    """

    def handle(sock: socket.socket, stop: threading.Event) -> None:
        request_line = read_request_head(sock).split(b"\r\n", 1)[0]
        use_chunks = chunked and request_line.endswith(b"/1.1")
        sock.sendall(sse_head(extra_headers, chunked=use_chunks))
        start = time.monotonic()
        for n in range(1, count + 1):
            if stop.wait(max(start + (n - 1) * interval - time.monotonic(), 0)):
                return
            sock.sendall(_chunk(timed_event(n, size), use_chunks))
        if use_chunks:
            sock.sendall(b"0\r\n\r\n")
        stop.wait(0.2 if use_chunks else 0)  # let a keep-alive peer close first

    return handle


def events_at(*times: float) -> Callable[[socket.socket, threading.Event], None]:
    """A close-delimited event stream with `X-Accel-Buffering: no`: event n at `times[n-1]`
    seconds after the request arrived, then silence (never the end)."""

    def handle(sock: socket.socket, stop: threading.Event) -> None:
        read_request_head(sock)
        start = time.monotonic()
        sock.sendall(sse_head("X-Accel-Buffering: no\r\n"))
        for n, at in enumerate(times, 1):
            if stop.wait(max(start + at - time.monotonic(), 0)):
                return
            sock.sendall(timed_event(n))
        stop.wait(30)

    return handle


def flood(size: int, extra_headers: str = "") -> Callable[[socket.socket, threading.Event], None]:
    """`size`-byte events as fast as the peer takes them; the failing send is timed."""

    def handle(sock: socket.socket, stop: threading.Event) -> None:
        read_request_head(sock)
        sock.settimeout(30)
        sock.sendall(sse_head(extra_headers))
        n = 0
        while not stop.is_set():
            n += 1
            head = f"id: {n}\ndata: "
            sock.sendall((head + "x" * max(size - len(head) - 2, 0) + "\n\n").encode())

    return handle


# -- the client --------------------------------------------------------------------------


@dataclass
class Observed:
    """Everything one client saw of one request, times in seconds after the request went out."""

    started: float = 0.0  # time.monotonic() when the request went out
    raw: list[tuple[float, bytes]] = field(default_factory=list)
    ending: str = "open"  # "fin", "rst", or "open" (still open at the client's deadline)
    ended_at: float | None = None
    status: int | None = None
    head_at: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: list[tuple[float, bytes]] = field(default_factory=list)
    complete: bool = False  # the body ended as HTTP says (terminating chunk, full length)
    error: str = ""  # why the body is incomplete, as h11 puts it

    @property
    def data(self) -> bytes:
        return b"".join(data for _, data in self.raw)

    @property
    def body_bytes(self) -> bytes:
        return b"".join(data for _, data in self.body)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "")

    @property
    def terminating_chunk(self) -> bool:
        return self.chunked and self.data.endswith(b"\r\n0\r\n\r\n")

    def blocks(self) -> list[tuple[float, bytes]]:
        """Each complete SSE block (event or comment) with the time it was complete."""
        found: list[tuple[float, bytes]] = []
        pending = b""
        for at, data in self.body:
            pending += data
            while b"\n\n" in pending:
                block, pending = pending.split(b"\n\n", 1)
                found.append((at, block))
        return found

    def heartbeats(self) -> list[float]:
        """Arrival times of comment blocks (`: heartbeat`)."""
        return [at for at, block in self.blocks() if block.startswith(b":")]

    def events(self) -> list[tuple[float, int]]:
        """(arrival time, id) of each event with an id."""
        return [
            (at, int(found.group(1)))
            for at, block in self.blocks()
            if (found := re.search(rb"^id: (\d+)$", block, re.MULTILINE))
        ]

    def summary(self) -> dict[str, Any]:
        """The facts a fidelity comparison is about, for messages and the docs."""
        return {
            "status": self.status,
            "ending": self.ending,
            "ended_at": None if self.ended_at is None else round(self.ended_at, 3),
            "chunked": self.chunked,
            "terminating_chunk": self.terminating_chunk,
            "complete": self.complete,
            "body_bytes": len(self.body_bytes),
            "events": [n for _, n in self.events()],
        }


def fetch(
    port: int,
    target: str,
    *,
    timeout: float,
    rcvbuf: int | None = None,
    pause: float = 0.0,
    linger: float = 0.3,
) -> Observed:
    """GET `target` on a raw socket and record every byte until the end or `timeout`.

    `rcvbuf` shrinks the client's receive buffer (set before connecting, so the window
    is small from the start); `pause` is how long the client waits before its first read
    (a client that stopped reading). Once a whole response is in, the client waits at
    most `linger` more seconds to see whether the peer closes the connection.
    """
    seen = Observed()
    parser = _Parser(seen)
    with socket.socket() as sock:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect((HOST, port))
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        )
        sock.sendall(request.encode())
        start = seen.started = time.monotonic()
        deadline = start + timeout
        if pause:
            threading.Event().wait(pause)  # the client deliberately reads nothing
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                seen.ending, seen.ended_at = "rst", time.monotonic() - start
                break
            at = time.monotonic() - start
            if not data:
                seen.ending, seen.ended_at = "fin", at
                break
            seen.raw.append((at, data))
            if parser.feed(at, data):
                deadline = min(deadline, time.monotonic() + linger)
    if seen.ended_at is not None:
        parser.feed(seen.ended_at, b"")
    return seen


class _Parser:
    """Feeds what the client received to h11, filling in an `Observed` as it goes."""

    def __init__(self, seen: Observed) -> None:
        self.seen = seen
        self.conn = h11.Connection(h11.CLIENT)
        self.conn.send(h11.Request(method="GET", target="/", headers=[("Host", HOST)]))
        self.conn.send(h11.EndOfMessage())
        self.done = False

    def feed(self, at: float, data: bytes) -> bool:
        """True once the response is complete (or can no longer be parsed)."""
        if self.done:
            return True
        seen = self.seen
        try:
            self.conn.receive_data(data)
            while (event := self.conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
                if isinstance(event, h11.Response):
                    seen.status, seen.head_at = event.status_code, at
                    seen.headers = {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers
                    }
                elif isinstance(event, h11.Data):
                    seen.body.append((at, bytes(event.data)))
                elif isinstance(event, h11.EndOfMessage):
                    seen.complete = self.done = True
                    return True
                elif isinstance(event, h11.ConnectionClosed):
                    self.done = True
                    return True
        except h11.RemoteProtocolError as error:
            seen.error = str(error)
            self.done = True
        return self.done


def answers_on_one_connection(
    port: int, target: str, count: int = 2, timeout: float = 5.0
) -> list[tuple[int, bytes]]:
    """GET `target` up to `count` times, one after the other on one connection: each
    answer's status and reason phrase, until the peer says or shows it closes."""
    conn = h11.Connection(h11.CLIENT)
    answers: list[tuple[int, bytes]] = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        while len(answers) < count:
            request = h11.Request(method="GET", target=target, headers=[("Host", HOST)])
            sock.sendall((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
            while not isinstance(event := conn.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))  # bounded by the socket's timeout
                elif isinstance(event, h11.Response):
                    answers.append((event.status_code, bytes(event.reason)))
                elif isinstance(event, h11.ConnectionClosed):
                    return answers
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return answers  # Connection: close
            conn.start_next_cycle()
    return answers


def within(value: float | None, expected: float, tolerance: float = 0.10) -> bool:
    """`value` is within `tolerance` (relative) of `expected`."""
    return value is not None and abs(value - expected) <= tolerance * expected


def ending_facts(seen: Observed) -> dict[str, Any]:
    """How a response ended, as a client can tell; what sseproxy must share with the peer."""
    return {
        "status": seen.status,
        "ending": seen.ending,
        "chunked": seen.chunked,
        "terminating_chunk": seen.terminating_chunk,
        "complete": seen.complete,
        "body_bytes": len(seen.body_bytes),
        "events": [n for _, n in seen.events()],
    }


def assert_ends_alike(ours: Observed, theirs: Observed, peer: str) -> None:
    """Same status, events, bytes and way of ending; the cut within 10 % of the peer's."""
    shown = f"sseproxy {ours.summary()}\n{peer} {theirs.summary()}"
    assert ending_facts(ours) == ending_facts(theirs), shown
    assert within(ours.ended_at, theirs.ended_at or 0.0), shown


def sent_at(seen: Observed) -> dict[int, float]:
    """When the upstream sent each `timed_event`, in seconds after the request went out."""
    sent = {}
    for _, block in seen.blocks():
        if found := re.search(rb'^data: \{"n": (\d+), "sent": ([0-9.]+)', block, re.MULTILINE):
            sent[int(found.group(1))] = float(found.group(2)) - seen.started
    return sent


def event_delays(seen: Observed) -> list[float]:
    """How long each `timed_event` took from the upstream to the client."""
    sent = sent_at(seen)
    return [round(at - sent[n], 3) for at, n in seen.events()]


def report(case: str, peer: str, seen: Observed, **extra: Any) -> None:
    """Append what a client saw to $SSEPROXY_FIDELITY_LOG (JSON Lines), when it is set:
    the raw material of docs/fidelity.md."""
    path = os.environ.get("SSEPROXY_FIDELITY_LOG")
    if not path:
        return
    record = {
        "case": case,
        "peer": peer,
        **seen.summary(),
        "head_at": None if seen.head_at is None else round(seen.head_at, 3),
        "event_times": [[round(at, 3), n] for at, n in seen.events()],
        "heartbeats": len(seen.heartbeats()),
        "head": seen.data.split(b"\r\n\r\n", 1)[0].decode("latin-1"),
        **extra,
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
