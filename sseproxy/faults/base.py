"""What a fault is: a synchronous, socket-free decider, and the actions it may answer.

Faults decide, the link acts. A fault is told about a piece of data, a timer it asked for,
or the end of the stream, together with the current time, and answers with a list of
actions. It never awaits and never sees a socket, so its tests are loops over
(time, chunk) pairs and the link (`sseproxy.link`) is the only code that does I/O.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sseproxy.params import Param
from sseproxy.sse import Block, Event

__all__ = [
    "NO_DRAWS",
    "Action",
    "Close",
    "Deliver",
    "End",
    "Fault",
    "Note",
    "Piece",
    "Reset",
    "ResponseHead",
    "Wake",
    "draws_for",
]


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """An HTTP response's status line and headers (lower-case names), as the upstream sent them."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    reason: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


# Built per event on the hot path, where a frozen dataclass costs 4x to build: not
# frozen, but nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class Piece:
    """What travels through a link: a chunk as read, or one whole SSE block when framed.

    `event` is the block's dispatched event (framed links only); a framed comment or
    id-only block has `framed=True` and `event=None`. In HTTP mode the first piece of a
    response is its `head` (with no data), so faults can time, hold or rewrite it too.
    Pieces due at one instant go out in one write, unless a fault cut a piece on purpose
    (`boundary`, the slicer): then its edges are kept.
    """

    data: bytes
    framed: bool = False
    event: Event | None = None
    head: ResponseHead | None = None
    boundary: bool = False
    """Write this piece on its own (an HTTP chunk of its own), never merged with others."""
    last_id: str | None = None
    """For a block as the framer cut it: the stream's last event ID after it, so the
    journal can count it without parsing it again (None: unknown)."""
    blocks: Sequence[Block] | None = None
    """Several whole blocks passed on at once (`Fault.on_blocks`): `data` is their raw
    bytes joined, and `last_id` the last event ID after the last one. Such a piece is not
    `framed` (it is no single block); a framing stage or the journal further on takes the
    blocks as they are instead of parsing the bytes again."""


# Built per event on the hot path, where a frozen dataclass costs 4x to build: not
# frozen, but nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class Deliver:
    """Pass `piece` on (to the next fault, or to the peer) at time `at`."""

    piece: Piece
    at: float


# Built per event on the hot path, where a frozen dataclass costs 4x to build: not
# frozen, but nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class Wake:
    """Call `on_timer` at `at` (replaces this fault's previous wake-up; None cancels it)."""

    at: float | None


@dataclass(frozen=True, slots=True)
class End:
    """End the stream cleanly after what was delivered (HTTP: terminating chunk; TCP: FIN).

    `status`, like on Close and Reset: what an HTTP proxy answers instead when the
    response has not started yet (nginx 504, Cloudflare 524); None closes without one.
    """

    detail: str = ""
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection after what was delivered, without a clean end of the body."""

    detail: str = ""
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort with a TCP RST after what was delivered (stops travel in order, see link.py)."""

    detail: str = ""
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """Nothing to do, but worth a journal line: the fault changed something (held, dropped,
    released, rewrote) that the peer will notice."""

    detail: str


Action = Deliver | Wake | End | Close | Reset | Note
Terminal = End | Close | Reset


class Fault:
    """Base of every fault: override the hooks whose default does not fit.

    One instance serves one direction of one connection, so it may keep state freely.
    Parameters arrive already validated and typed (durations in seconds, sizes in bytes).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    """One line for `sseproxy scenarios describe`."""
    params: ClassVar[tuple[Param, ...]] = ()

    resizes_body: ClassVar[bool] = False
    """True when the fault may change the length of the body (rewriting or dropping
    events): an HTTP proxy then drops the upstream's Content-Length and frames the body
    itself (chunked), as nginx does when a filter changes a response."""

    uses_random: ClassVar[bool] = False
    """True when the fault draws random numbers. Only then does it get a generator of
    its own, seeded for its stream: a Mersenne Twister holds 2.5 KB, which every idle
    stream would pay. The others get `NO_DRAWS`."""

    response_started = False
    """Set by the link once a response head has passed this fault's place in the chain
    (also while the fault was inactive): a fault activated later knows it came too late."""

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        self.rng = rng

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        """Refuse combinations of parameters that cannot work (raise ParamError)."""

    @classmethod
    def unlistens(cls, settings: Mapping[str, Any]) -> bool:
        """True when the fault closes the proxy's listening socket during its window."""
        return False

    def needs_events(self) -> bool:
        """True when this fault must see whole SSE blocks rather than raw chunks."""
        return False

    def in_flight_limit(self) -> int | None:
        """Bytes the link may hold back before it stops reading (None: the link's default).

        A fault that slows delivery (bandwidth) sets a small limit so the slowness reaches
        the sender as backpressure instead of piling up in the proxy.
        """
        return None

    def request_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """HTTP mode: the request headers as the upstream should get them (lower-case names)."""
        return headers

    def holding(self) -> int:
        """Bytes this fault holds back right now; they count toward the link's backpressure."""
        return 0

    def write_timeout(self) -> float | None:
        """Longest a single write to the peer may block (a peer that stopped reading)."""
        return None

    def on_write_timeout(self, now: float) -> list[Action]:
        """A write blocked for `write_timeout`: answer how to stop (it cannot go on)."""
        return [Close("write timed out")]

    def start(self, now: float) -> list[Action]:
        """The fault becomes active on this connection (at its start, or when a window opens)."""
        return []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        return [Deliver(piece, now)]

    def on_blocks(self, piece: Piece, now: float) -> list[Action] | None:
        """Several whole blocks arrived at once (`piece.blocks`, all at `now`): answer
        exactly what `on_piece` would have answered for them one by one, with the pieces
        it would have delivered at `now` delivered as this one piece; or None to be given
        them one by one. For faults that only look at blocks (an idle timer that counts
        events): per event it saves a piece, a delivery and a trip through the chain."""
        return None

    def on_timer(self, now: float) -> list[Action]:
        return []

    def on_eof(self, now: float) -> list[Action]:
        """The stream ended cleanly upstream of this fault; by default end it here too."""
        return [End()]

    def on_abort(self, now: float) -> list[Action]:
        """A close or reset from upstream of this fault passes through: it may still let
        something out first (Deliver only), as nginx sends a held response head."""
        return []

    def stop(self, now: float) -> list[Action]:
        """The fault's window closed: hand back anything it holds (delivered in order)."""
        return []


class _NoDraws(random.Random):
    """The generator of a fault that declares no `uses_random`: a draw is a bug in that
    declaration, and says so instead of drawing from a stream shared by every fault."""

    def random(self) -> float:
        raise AssertionError("a fault drew a random number without declaring uses_random")

    def getrandbits(self, k: int, /) -> int:
        raise AssertionError("a fault drew a random number without declaring uses_random")


NO_DRAWS: random.Random = _NoDraws(0)


def draws_for(fault_class: type[Fault], seed: str) -> random.Random:
    """The generator a fault of `fault_class` gets for the stream `seed` names."""
    return random.Random(seed) if fault_class.uses_random else NO_DRAWS
