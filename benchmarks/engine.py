"""CPU cost of the framed path without sockets: µs per event in the framer, the fault chain
and the journal's tally, measured in process time (so other load on the machine matters
little).

    python benchmarks/engine.py            # every case, median of 5 runs each
    python benchmarks/engine.py --quick    # a smoke check

Cases: 100-byte events arriving one per read and 655 per read (a 64 KiB read), and 64 KiB
events one per read. "chain" is one `idle-timeout counts = "events"` fault, as in
`run.py`'s framed path; "chain + tally" adds the journal's count of what is written.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable

import trio

from sseproxy.engine import Chain, FaultSlot
from sseproxy.faults import get_fault
from sseproxy.faults.base import Piece
from sseproxy.journal import Tally
from sseproxy.sse import Framer


def event(size: int, number: int) -> bytes:
    head = f"id: {number}\ndata: ".encode()
    return head + b"x" * (size - len(head) - 2) + b"\n\n"


def reads(size: int, per_read: int, total: int) -> list[bytes]:
    events = [event(size, n) for n in range(total)]
    return [b"".join(events[i : i + per_read]) for i in range(0, total, per_read)]


def framer_only(chunks: list[bytes]) -> None:
    framer = Framer()
    for chunk in chunks:
        framer.feed(chunk)


def chain_run(chunks: list[bytes], tally: Tally | None) -> None:
    idle = get_fault("idle-timeout")
    assert idle is not None
    fault = idle(
        {"timeout": 3600.0, "counts": "events", "action": "close", "lazy": 0.0},
        random.Random(0),
    )
    chain = Chain([FaultSlot("idle", fault)], 0.0)
    if tally is not None:
        tally.framer = Framer()
    now = 0.0
    for chunk in chunks:
        now += 0.001
        chain.feed(Piece(chunk), now)
        due = chain.take_due(now)
        if tally is not None:
            tally.observe(due.pieces)


def measure(run: Callable[[], None], events: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.process_time()
        run()
        times.append(time.process_time() - began)
    return statistics.median(times) / events * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke check)")
    args = parser.parse_args()
    scale, repeats = (20, 1) if args.quick else (1, 5)
    cases = [
        ("100 B events, 1 per read", 100, 1, 100_000 // scale),
        ("100 B events, 655 per read", 100, 655, 400_000 // scale),
        ("64 KiB events, 1 per read", 65536, 1, 2_000 // scale),
    ]

    async def in_trio() -> None:  # the tally reads trio's clock
        print(f"{'case':<28} {'framer':>9} {'chain':>9} {'chain+tally':>12}   (µs per event)")
        for title, size, per_read, total in cases:
            chunks = reads(size, per_read, total)
            figures = [
                measure(functools.partial(framer_only, chunks), total, repeats),
                measure(functools.partial(chain_run, chunks, None), total, repeats),
                measure(lambda c=chunks: chain_run(c, Tally()), total, repeats),
            ]
            print(f"{title:<28} {figures[0]:>9.2f} {figures[1]:>9.2f} {figures[2]:>12.2f}")

    trio.run(in_trio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
