"""The journal, live: numbered records for `GET /journal` and its readers.

Its own module because it is the one stateful part of the API that is not HTTP: it
subscribes to the proxy's `Journal`, keeps a backlog for readers that resume with
`Last-Event-ID`, and queues records for each reader until its stream sends them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import trio

from sseproxy.journal import JournalReader

__all__ = ["JournalFeed", "Record"]

Record = dict[str, Any]


class _Follower:
    """One `/journal` reader: records queue up here until its task sends them."""

    def __init__(self, limit: int, kinds: frozenset[str]) -> None:
        self.queue: deque[tuple[int, Record]] = deque()
        self.limit = limit
        self.kinds = kinds
        self.lagged = False
        self._wake = trio.Event()

    def push(self, seq: int, record: Record) -> None:
        if self.kinds and record.get("kind") not in self.kinds:
            return
        if len(self.queue) >= self.limit:
            self.lagged = True  # too slow: its stream ends, it resumes with Last-Event-ID
        else:
            self.queue.append((seq, record))
        self._wake.set()

    async def next_batch(self, timeout: float) -> list[tuple[int, Record]]:
        """What arrived (waiting up to `timeout` for something; empty when nothing did)."""
        with trio.move_on_after(timeout):
            while not self.queue and not self.lagged:
                await self._wake.wait()
                self._wake = trio.Event()
        batch = list(self.queue)
        self.queue.clear()
        return batch


class JournalFeed(JournalReader):
    """A journal subscriber that numbers records (1, 2, ...: the SSE ids of `/journal`),
    keeps the last `backlog` of them for readers that resume, and wakes readers."""

    def __init__(self, backlog: int = 10_000, follower_limit: int = 10_000) -> None:
        self.seq = 0
        self.recent: deque[tuple[int, Record]] = deque(maxlen=backlog)
        self.followers: set[_Follower] = set()
        self.follower_limit = follower_limit
        self.changed = trio.Event()
        """Set (and replaced) at every record: `await feed.changed.wait()` for the next."""

    def observe(self, record: Record) -> None:
        self.seq += 1
        self.recent.append((self.seq, record))
        for follower in self.followers:
            follower.push(self.seq, record)
        self.changed.set()
        self.changed = trio.Event()

    def follow(self, after: int | None, kinds: Iterable[str] = ()) -> tuple[_Follower, int]:
        """A new reader, given the records after `after` still kept; also returns how many
        records after `after` are no longer kept (lost to it)."""
        follower = _Follower(self.follower_limit, frozenset(kinds))
        lost = 0
        if after is not None and after < self.seq:
            oldest = self.recent[0][0] if self.recent else self.seq + 1
            lost = max(0, oldest - after - 1)
            for seq, record in self.recent:
                if seq > after:
                    follower.push(seq, record)
        self.followers.add(follower)
        return follower, lost

    def unfollow(self, follower: _Follower) -> None:
        self.followers.discard(follower)
