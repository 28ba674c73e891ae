"""Encryption at rest for the embedded store.

Envelope encryption, as KVS does with KMS:

* every stream has its own random 256-bit **data key**; fragment records are sealed with
  AES-256-GCM under it, each with a fresh random 96-bit nonce and associated data binding the
  record to ``(stream ARN, fragment number)`` — a record moved to another stream or position
  fails authentication;
* the data key is stored **wrapped** (AES-256-GCM, associated data = key id + stream ARN) by a
  **master key** that the stream's ``KmsKeyId`` names;
* master keys live in a local key file (:class:`Keyring`): JSON, mode 0600, created on first
  use, one key per KMS key id / alias / ARN.

Random 96-bit nonces under one data key stay far below the GCM collision bound (2**32
records per key — 136 years of one fragment per second).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import stat
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callstream.durable import replace_file
from callstream.store.base import IntegrityError, StoreError

__all__ = [
    "DATA_KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "Keyring",
    "KeyringError",
    "RecordCipher",
    "default_kms_key_id",
    "new_data_key",
    "normalize_kms_key_id",
]

DATA_KEY_BYTES = 32
"""AES-256 key length."""
NONCE_BYTES = 12
"""AES-GCM nonce length (96 bits)."""
TAG_BYTES = 16
"""AES-GCM authentication tag length."""

_KEYRING_FORMAT = "callstream-keyring-v1"
_WRAP_VERSION = b"\x01"
_WRAP_AAD = b"callstream/data-key/v1\x00"
_RECORD_AAD = b"callstream/fragment/v1\x00"
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_MRK_RE = re.compile(r"mrk-[0-9a-fA-F]{32}")


class KeyringError(StoreError):
    """The key file is unreadable, malformed or readable by other users."""


def default_kms_key_id(region: str, account_id: str) -> str:
    """The KmsKeyId real KVS reports when the creator gave none."""
    return f"arn:aws:kms:{region}:{account_id}:alias/aws/kinesisvideo"


def normalize_kms_key_id(key_id: str, region: str, account_id: str) -> str:
    """Canonical keyring entry name for ``key_id``.

    KMS accepts a key as ``alias/name``, a bare key id or an ARN; the short forms are
    expanded to the ARN in ``region``/``account_id`` so both spellings select one master
    key. Anything else (ARNs, arbitrary strings) is used verbatim.
    """
    if key_id.startswith("alias/"):
        return f"arn:aws:kms:{region}:{account_id}:{key_id}"
    if _UUID_RE.fullmatch(key_id) or _MRK_RE.fullmatch(key_id):
        return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"
    return key_id


def stream_key_ids(kms_key_id: str | None, region: str, account_id: str) -> tuple[str, str]:
    """``(the KmsKeyId a new stream reports, the keyring entry of its master key)`` for
    the KmsKeyId its creator gave (None: the account's default key)."""
    reported = kms_key_id or default_kms_key_id(region, account_id)
    return reported, normalize_kms_key_id(reported, region, account_id)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=8 * DATA_KEY_BYTES)


class Keyring:
    """Master keys in a local JSON key file (mode 0600), created on first use.

    File format: ``{"format": "callstream-keyring-v1", "keys": {"<key id>": {"key":
    "<base64 32 bytes>", "created_ms": <int>}}}``. The file is replaced atomically
    (write temporary file, fsync, rename, fsync directory) under an ``flock`` on
    ``<path>.lock``, so several stores may share one key file. A key file that group or
    others can access is refused (:class:`KeyringError`), as ssh refuses private keys.
    Losing the file makes every stream it protects unreadable: back it up separately from
    the data directory.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}

    @property
    def path(self) -> Path:
        """Location of the key file."""
        return self._path

    def key_ids(self) -> list[str]:
        """Ids of the master keys in the file, sorted."""
        with self._lock:
            self._keys.update(self._load())
            return sorted(self._keys)

    def master_key(self, key_id: str, *, create: bool = True) -> bytes:
        """The 256-bit master key named ``key_id``; created (and persisted) if absent and
        ``create`` is true, else :class:`KeyringError`."""
        with self._lock:
            key = self._keys.get(key_id)
            if key is not None:
                return key
            self._keys.update(self._load())
            key = self._keys.get(key_id)
            if key is not None:
                return key
            if not create:
                raise KeyringError(f"no master key {key_id!r} in {self._path}")
            key = self._create(key_id)
            self._keys[key_id] = key
            return key

    def wrap_data_key(self, key_id: str, data_key: bytes, *, context: str) -> bytes:
        """Encrypt ``data_key`` under master key ``key_id``; ``context`` (the stream ARN) is
        authenticated, so the wrapped key only unwraps for the same stream."""
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError("data key must be 32 bytes")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.master_key(key_id)).encrypt(
            nonce, data_key, _wrap_aad(key_id, context)
        )
        return _WRAP_VERSION + nonce + sealed

    def unwrap_data_key(self, key_id: str, wrapped: bytes, *, context: str) -> bytes:
        """Inverse of :meth:`wrap_data_key`; :class:`IntegrityError` if the wrapped key, the
        master key or the context do not match."""
        if len(wrapped) != 1 + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES or not wrapped.startswith(
            _WRAP_VERSION
        ):
            raise IntegrityError("wrapped data key is malformed")
        nonce = wrapped[1 : 1 + NONCE_BYTES]
        try:
            return AESGCM(self.master_key(key_id, create=False)).decrypt(
                nonce, wrapped[1 + NONCE_BYTES :], _wrap_aad(key_id, context)
            )
        except InvalidTag:
            raise IntegrityError(
                f"cannot unwrap the data key of {context} with master key {key_id!r}"
            ) from None
        except KeyringError as exc:
            raise IntegrityError(exc.message) from None

    # --- file handling ------------------------------------------------------------------
    def _load(self) -> dict[str, bytes]:
        return {kid: _decode_key(kid, entry) for kid, entry in self._load_entries().items()}

    def _load_entries(self) -> dict[str, dict[str, object]]:
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeyringError(f"cannot open key file {self._path}: {exc}") from None
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o077:
                raise KeyringError(
                    f"key file {self._path} is accessible by other users "
                    f"(mode {stat.filemode(st.st_mode)}); chmod 600 it"
                )
            with os.fdopen(os.dup(fd), "rb") as fh:
                raw = fh.read()
        finally:
            os.close(fd)
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != _KEYRING_FORMAT:
                raise ValueError("unknown format")
            entries = doc["keys"]
            if not isinstance(entries, dict) or not all(
                isinstance(e, dict) for e in entries.values()
            ):
                raise ValueError("'keys' is not an object of objects")
        except (ValueError, KeyError) as exc:
            raise KeyringError(f"malformed key file {self._path}: {exc}") from None
        return {str(kid): dict(entry) for kid, entry in entries.items()}

    def _create(self, key_id: str) -> bytes:
        parent = self._path.parent
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self._path.with_name(self._path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            entries = self._load_entries()  # another process may have added keys meanwhile
            if key_id not in entries:
                entries[key_id] = {
                    "key": base64.b64encode(new_data_key()).decode("ascii"),
                    "created_ms": time.time_ns() // 1_000_000,
                }
                self._write(entries)
            keys = {kid: _decode_key(kid, entry) for kid, entry in entries.items()}
            self._keys.update(keys)
            return keys[key_id]
        finally:
            os.close(lock_fd)  # releases the flock

    def _write(self, entries: dict[str, dict[str, object]]) -> None:
        # the caller holds the key file's flock: no other process rewrites it meanwhile
        doc = {"format": _KEYRING_FORMAT, "keys": entries}
        text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        replace_file(self._path, text.encode("utf-8"), mode=0o600, sync_parent=True)


def _decode_key(key_id: str, entry: dict[str, object]) -> bytes:
    value = entry.get("key")
    try:
        if not isinstance(value, str):
            raise ValueError("missing 'key'")
        key = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise KeyringError(f"master key {key_id!r}: {exc}") from None
    if len(key) != DATA_KEY_BYTES:
        raise KeyringError(f"master key {key_id!r} is not 32 bytes")
    return key


def _wrap_aad(key_id: str, context: str) -> bytes:
    return _WRAP_AAD + key_id.encode() + b"\x00" + context.encode()


class RecordCipher:
    """Seals and opens one stream's fragment records with its data key.

    ``seal`` output: ``nonce (12) || ciphertext || tag (16)``; the associated data is
    ``stream ARN || fragment number``. Instances are safe to share between threads.
    """

    __slots__ = ("_aead", "_prefix", "stream_arn")

    OVERHEAD = NONCE_BYTES + TAG_BYTES
    """Bytes :meth:`seal` adds to the plaintext."""

    def __init__(self, data_key: bytes, stream_arn: str) -> None:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError("data key must be 32 bytes")
        self._aead = AESGCM(data_key)
        self.stream_arn = stream_arn
        self._prefix = _RECORD_AAD + stream_arn.encode() + b"\x00"

    def seal(self, fragment_number: str, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for position ``fragment_number`` of this stream."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._prefix + fragment_number.encode())

    def open(self, fragment_number: str, sealed: bytes | memoryview) -> bytes:
        """Decrypt a record sealed for ``fragment_number``; :class:`IntegrityError` if it was
        modified, truncated, or sealed for another stream or position."""
        if len(sealed) < self.OVERHEAD:
            raise IntegrityError(f"fragment {fragment_number}: record truncated")
        try:
            return self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._prefix + fragment_number.encode()
            )
        except InvalidTag:
            raise IntegrityError(
                f"fragment {fragment_number} of {self.stream_arn} failed authentication"
            ) from None
