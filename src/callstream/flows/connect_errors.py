"""Refusals of the Connect resources, named as the ``connect`` model's exception shapes."""

from __future__ import annotations

__all__ = ["ConnectError", "invalid", "not_found"]


class ConnectError(Exception):
    """A refused request: ``code`` is the exception shape of the ``connect`` model
    (``ResourceNotFoundException``, ...); ``problems`` lists an invalid flow's problems."""

    def __init__(self, code: str, message: str, problems: tuple[str, ...] = ()) -> None:
        self.code = code
        self.message = message
        self.problems = problems
        super().__init__(f"{code}: {message}")


def not_found(message: str) -> ConnectError:
    """``ResourceNotFoundException``."""
    return ConnectError("ResourceNotFoundException", message)


def invalid(message: str) -> ConnectError:
    """``InvalidParameterException``."""
    return ConnectError("InvalidParameterException", message)
