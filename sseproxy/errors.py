"""The project's error hierarchy: one base, one kind per audience.

Injected faults are journal records, never exceptions; these are for input a user or a
peer got wrong, so each carries enough to say what to fix.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ScenarioError", "SseproxyError", "UnitError"]


class SseproxyError(Exception):
    """Base of every error sseproxy raises on purpose."""


class ConfigError(SseproxyError):
    """A command-line option or setting that cannot work (exit status 2)."""


class UnitError(SseproxyError, ValueError):
    """A duration or size that does not parse; the message says what is allowed."""


class ScenarioError(SseproxyError):
    """A scenario file that is refused as a whole.

    `where` names the file, the fault (index and name) and the field, so the message
    alone is enough to find and fix the mistake.
    """

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file = file
        self.where = where
        self.message = message
        prefix = ": ".join(part for part in (file, where) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)
