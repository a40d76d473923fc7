"""Every error stove-ctl raises, in one place.

Each type says what happened; ``retryable`` says whether trying again can help.
The retry policy itself lives in :mod:`stove_ctl.retry`.
"""

from __future__ import annotations


class StoveCtlError(Exception):
    """Base of every stove-ctl error."""

    retryable = False


class ConfigError(StoveCtlError):
    """The configuration file cannot be used. ``problems`` holds one line per fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class CommandError(StoveCtlError):
    """A command was refused before anything happened (bad input, not allowed).

    ``code`` is a short machine-readable reason, e.g. ``unknown_burner``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RelayError(StoveCtlError):
    """A relay did not do what it was told."""

    retryable = True


class RelayUnreachable(RelayError):
    """No answer from the relay (offline, timeout, network)."""


class RelayRejected(RelayError):
    """The relay answered with an error code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RelayBadReply(RelayError):
    """The relay answered with something that is not a valid reply."""


class RelayMismatch(RelayError):
    """The relay acknowledged a set, but reading it back shows another state."""


class RelayAuthError(RelayError):
    """The relay refused our credentials (wrong token). Retrying will not fix it."""

    retryable = False


class DaemonNotRunning(StoveCtlError):
    """The CLI found no daemon on the control socket."""
