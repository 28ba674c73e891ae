"""The errors that carry the SIP status a request should be answered with.

:class:`SipError` is raised by the SIP parsers (:mod:`~callstream.voice.sip`,
:mod:`~callstream.voice.sipheaders`) for a message that cannot be accepted;
:class:`SiprecError` by the recording-offer parsers (:mod:`~callstream.voice.multipart`,
:mod:`~callstream.voice.rsmetadata`, :mod:`~callstream.voice.siprec`) for an offer the server
cannot take. Both name the status and a short reason.
"""

from __future__ import annotations

__all__ = ["SipError", "SiprecError"]


class SipError(Exception):
    """A message that cannot be accepted: ``status`` is the SIP response code the peer
    should get (400, 413, 416, 505, 513) and ``reason`` names the offending part."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class SiprecError(ValueError):
    """A recording offer the server cannot take, with the SIP status to answer it with:
    400 malformed, 413 too large, 415 unsupported body type, 488 not acceptable here."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
