"""Subprocesses in tests: read their output line by line and wait for a line, bounded."""

from __future__ import annotations

import queue
import re
import threading
import time
from typing import IO

STARTUP = 20.0  # seconds a subprocess may take to print its ready line


class Lines:
    """Lines of a text stream, read by a thread; `wait_for` blocks until one matches."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {waiting_for}; saw {self.seen}") from None
        if line is None:
            self._ended = True
        else:
            self.seen.append(line)
        return line

    def wait_for(self, pattern: str, timeout: float = STARTUP) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while not self._ended:
            line = self._next(deadline, repr(pattern))
            if line is not None and (found := re.search(pattern, line)):
                return found
        raise AssertionError(f"the stream ended before {pattern!r}; saw {self.seen}")

    def rest(self, timeout: float = STARTUP) -> list[str]:
        """Every line up to the end of the stream."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            self._next(deadline, "the end of the stream")
        return self.seen
