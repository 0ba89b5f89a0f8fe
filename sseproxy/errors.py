"""The project's error hierarchy: one base, one kind per audience.

Injected faults are journal records, never exceptions; these are for input a user or a
peer got wrong, so each carries enough to say what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    alone is enough to find and fix the mistake. A scenario with several mistakes gets
    one error that carries them all (`errors`, in line order): a user fixes a file in
    one round, not one round per mistake. Its attributes are those of the first.
    """

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file = file
        self.where = where
        self.message = message
        self.errors: tuple[ScenarioError, ...] = (self,)
        prefix = ": ".join(part for part in (file, where) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    @classmethod
    def of(cls, errors: Sequence[ScenarioError]) -> ScenarioError:
        """One error for all of `errors` (at least one): `str()` gives one line each."""
        if len(errors) == 1:
            return errors[0]
        first = errors[0]
        combined = cls(first.message, file=first.file, where=first.where)
        combined.errors = tuple(errors)
        combined.args = ("\n".join(error.line for error in errors),)
        return combined

    @property
    def line(self) -> str:
        """This error alone, on one line (the first of several, when it carries several)."""
        return str(self.errors[0].args[0])

    @property
    def lines(self) -> list[str]:
        """Every error this one carries, one line each."""
        return [error.line for error in self.errors]
