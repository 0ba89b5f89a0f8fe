"""Counted nouns for sentences people read: "1 stream", "2 streams", never "1 streams"."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 stream', '3 streams'; `many` for irregular plurals ('1 was', '2 were')."""
    return f"{count} {word if count == 1 else many or word + 's'}"
