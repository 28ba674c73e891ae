"""Names the NATS backend uses: JetStream streams, subjects, KV bucket and keys.

Everything one callstream deployment keeps in a NATS cluster lives under a ``prefix``
(default ``callstream``), so several deployments (or test runs) can share a cluster:

* KV bucket ``<prefix>_streams`` -- the stream catalog: ``s.<hex name>`` (the stream),
  ``l.<hex name>`` (its producer lease), ``q.<hex name>`` (fragment sequences reserved),
  ``k.<digest>`` (master key fingerprints);
* JetStream stream ``<prefix>_<id>`` per KVS stream, subject ``<prefix>.f.<id>`` -- the
  fragments (``id``: a digest of the stream ARN, so a re-created stream starts afresh);
* core subjects ``<prefix>.live.<id>`` (live fragments as they arrive) and
  ``<prefix>.sync.<id>`` (the producer's node answers with the fragments open now).
"""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = [
    "DEFAULT_PREFIX",
    "bucket",
    "check_prefix",
    "fragment_subject",
    "js_stream",
    "lease_key",
    "live_subject",
    "stream_id",
    "stream_key",
    "sync_subject",
]

DEFAULT_PREFIX = "callstream"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def check_prefix(prefix: str) -> str:
    """``prefix`` if usable in bucket, stream and subject names; :class:`ValueError` else."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"NATS prefix must be 1-32 of [A-Za-z0-9_-], got {prefix!r}")
    return prefix


@functools.lru_cache(maxsize=65536)
def stream_id(arn: str) -> str:
    """The short id of a KVS stream in NATS names (24 hex digits of its ARN's SHA-256)."""
    return hashlib.sha256(arn.encode()).hexdigest()[:24]


def bucket(prefix: str) -> str:
    return f"{prefix}_streams"


def stream_key(name: str) -> str:
    return "s." + name.encode().hex()


def lease_key(name: str) -> str:
    return "l." + name.encode().hex()


def reserve_key(name: str) -> str:
    return "q." + name.encode().hex()


def name_of_key(key: str) -> str:
    """The stream name in a ``s.<hex>`` key."""
    return bytes.fromhex(key[2:]).decode()


def js_stream(prefix: str, arn: str) -> str:
    return f"{prefix}_{stream_id(arn)}"


def fragment_subject(prefix: str, arn: str) -> str:
    return f"{prefix}.f.{stream_id(arn)}"


def live_subject(prefix: str, arn: str) -> str:
    return f"{prefix}.live.{stream_id(arn)}"


def sync_subject(prefix: str, arn: str) -> str:
    return f"{prefix}.sync.{stream_id(arn)}"
