"""Where a reader starts in a stream: the six GetMedia start selectors (kvs-wire §2.3),
plus "from this fragment on" (a Connect ``StartFragmentNumber``), declared once for the
GetMedia client, the store's readers and the command line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["StartSelector", "StartSelectorType"]

StartSelectorType = Literal[
    "NOW",
    "EARLIEST",
    "FRAGMENT_NUMBER",
    "PRODUCER_TIMESTAMP",
    "SERVER_TIMESTAMP",
    "CONTINUATION_TOKEN",
]


@dataclass(frozen=True, slots=True)
class StartSelector:
    """Where GetMedia starts (kvs-wire §2.3). Build with the class methods.

    ``FRAGMENT_NUMBER`` starts *after* ``fragment_number``; :meth:`from_fragment` asks for
    that fragment too (fetched first with GetMediaForFragmentList).
    """

    type: StartSelectorType
    fragment_number: str | None = None
    timestamp_ms: int | None = None
    continuation_token: str | None = None
    inclusive: bool = False

    @classmethod
    def now(cls) -> StartSelector:
        """The live edge."""
        return cls("NOW")

    @classmethod
    def earliest(cls) -> StartSelector:
        """The oldest fragment retained."""
        return cls("EARLIEST")

    @classmethod
    def after_fragment(cls, number: str) -> StartSelector:
        """The fragment after ``number`` (GetMedia's own FRAGMENT_NUMBER semantics)."""
        return cls("FRAGMENT_NUMBER", fragment_number=number)

    @classmethod
    def from_fragment(cls, number: str) -> StartSelector:
        """Fragment ``number`` itself, then everything after it (e.g. a Connect
        ``StartFragmentNumber``)."""
        return cls("FRAGMENT_NUMBER", fragment_number=number, inclusive=True)

    @classmethod
    def producer_timestamp(cls, ms: int) -> StartSelector:
        """The fragment containing producer timestamp ``ms`` (epoch ms)."""
        return cls("PRODUCER_TIMESTAMP", timestamp_ms=ms)

    @classmethod
    def server_timestamp(cls, ms: int) -> StartSelector:
        """The fragment containing server timestamp ``ms`` (epoch ms)."""
        return cls("SERVER_TIMESTAMP", timestamp_ms=ms)

    @classmethod
    def continuation(cls, token: str) -> StartSelector:
        """Where a previous response ended (its last ``CONTINUATION_TOKEN``)."""
        return cls("CONTINUATION_TOKEN", continuation_token=token)

    def to_api(self) -> dict[str, Any]:
        """The ``StartSelector`` request member as boto3 takes it."""
        out: dict[str, Any] = {"StartSelectorType": self.type}
        if self.type == "FRAGMENT_NUMBER":
            if not self.fragment_number:
                raise ValueError("FRAGMENT_NUMBER needs a fragment number")
            out["AfterFragmentNumber"] = self.fragment_number
        elif self.type in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
            if self.timestamp_ms is None:
                raise ValueError(f"{self.type} needs a timestamp")
            out["StartTimestamp"] = dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)
        elif self.type == "CONTINUATION_TOKEN":
            if not self.continuation_token:
                raise ValueError("CONTINUATION_TOKEN needs a token")
            out["ContinuationToken"] = self.continuation_token
        elif self.type not in ("NOW", "EARLIEST"):
            raise ValueError(f"unknown StartSelectorType {self.type!r}")
        return out
