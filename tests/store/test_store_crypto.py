"""Encryption at rest: keyring file, data-key wrapping, record sealing."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from callstream.store.base import IntegrityError
from callstream.store.crypto import (
    NONCE_BYTES,
    Keyring,
    KeyringError,
    RecordCipher,
    default_kms_key_id,
    new_data_key,
    normalize_kms_key_id,
)

ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/call-1/1720751492346"
ARN2 = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/call-2/1720751492347"
FN1 = "91343852333181432392682062607743920146159169392"
FN2 = "91343852333181531502161607852955530730504675150"


def test_default_kms_key_id_matches_kvs() -> None:
    assert (
        default_kms_key_id("ap-southeast-2", "210362323009")
        == "arn:aws:kms:ap-southeast-2:210362323009:alias/aws/kinesisvideo"
    )


def test_normalize_kms_key_id() -> None:
    arn = "arn:aws:kms:eu-west-1:111122223333:alias/calls"
    assert normalize_kms_key_id("alias/calls", "eu-west-1", "111122223333") == arn
    assert normalize_kms_key_id(arn, "us-east-1", "1") == arn
    kid = "1234abcd-12ab-34cd-56ef-1234567890ab"
    assert normalize_kms_key_id(kid, "eu-west-1", "111122223333") == (
        f"arn:aws:kms:eu-west-1:111122223333:key/{kid}"
    )
    assert normalize_kms_key_id("my-local-key", "r", "1") == "my-local-key"


def test_keyring_created_on_first_use_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.json"
    ring = Keyring(path)
    assert not path.exists()
    k1 = ring.master_key("alias/a")
    assert len(k1) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    k2 = ring.master_key("alias/b")
    assert k1 != k2
    assert ring.master_key("alias/a") == k1
    text = path.read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=1, sort_keys=True) + "\n"
    assert doc["format"] == "callstream-keyring-v1"
    assert sorted(os.listdir(path.parent)) == ["keys.json", "keys.json.lock"]
    assert sorted(doc["keys"]) == ["alias/a", "alias/b"]
    # A second keyring on the same file sees the same keys.
    other = Keyring(path)
    assert other.master_key("alias/a") == k1
    assert other.key_ids() == ["alias/a", "alias/b"]


def test_keyring_concurrent_creation_keeps_every_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    rings = [Keyring(path) for _ in range(4)]
    results: dict[str, bytes] = {}

    def make(i: int) -> None:
        results[f"k{i}"] = rings[i % 4].master_key(f"k{i}")

    threads = [threading.Thread(target=make, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = Keyring(path)
    assert fresh.key_ids() == sorted(results)
    assert sorted(os.listdir(tmp_path)) == ["keys.json", "keys.json.lock"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for kid, key in results.items():
        assert fresh.master_key(kid, create=False) == key


def test_keyring_refuses_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    Keyring(path).master_key("a")
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring(path).master_key("a")


def test_keyring_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"{not json")
    os.close(fd)
    with pytest.raises(KeyringError, match="malformed"):
        Keyring(path).master_key("a")


def test_missing_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(KeyringError):
        Keyring(tmp_path / "keys.json").master_key("nope", create=False)


def test_wrap_unwrap_bound_to_context_and_key(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys.json")
    dk = new_data_key()
    wrapped = ring.wrap_data_key("alias/a", dk, context=ARN)
    assert dk not in wrapped
    assert ring.unwrap_data_key("alias/a", wrapped, context=ARN) == dk
    with pytest.raises(IntegrityError):
        ring.unwrap_data_key("alias/a", wrapped, context=ARN2)
    ring.master_key("alias/b")
    with pytest.raises(IntegrityError):
        ring.unwrap_data_key("alias/b", wrapped, context=ARN)
    with pytest.raises(IntegrityError):  # unknown master key: no silent creation
        ring.unwrap_data_key("alias/zzz", wrapped, context=ARN)
    bad = bytearray(wrapped)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        ring.unwrap_data_key("alias/a", bytes(bad), context=ARN)
    with pytest.raises(IntegrityError):
        ring.unwrap_data_key("alias/a", wrapped[:-1], context=ARN)


def test_lost_key_file_makes_data_key_unrecoverable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    wrapped = Keyring(path).wrap_data_key("alias/a", new_data_key(), context=ARN)
    path.unlink()
    ring = Keyring(path)
    ring.master_key("alias/a")  # a new, different key under the same name
    with pytest.raises(IntegrityError):
        ring.unwrap_data_key("alias/a", wrapped, context=ARN)


def test_record_seal_open_round_trip() -> None:
    cipher = RecordCipher(new_data_key(), ARN)
    plaintext = os.urandom(1000)
    sealed = cipher.seal(FN1, plaintext)
    assert len(sealed) == len(plaintext) + RecordCipher.OVERHEAD
    assert cipher.open(FN1, sealed) == plaintext
    # fresh nonce per record
    again = cipher.seal(FN1, plaintext)
    assert again[:NONCE_BYTES] != sealed[:NONCE_BYTES]
    assert cipher.open(FN1, again) == plaintext
    assert cipher.open(FN1, cipher.seal(FN1, b"")) == b""


def test_record_bound_to_position_and_stream() -> None:
    key = new_data_key()
    cipher = RecordCipher(key, ARN)
    sealed = cipher.seal(FN1, b"audio")
    with pytest.raises(IntegrityError):
        cipher.open(FN2, sealed)
    with pytest.raises(IntegrityError):
        RecordCipher(key, ARN2).open(FN1, sealed)
    with pytest.raises(IntegrityError):
        RecordCipher(new_data_key(), ARN).open(FN1, sealed)


@pytest.mark.parametrize("index", [0, NONCE_BYTES, NONCE_BYTES + 2, -1])
def test_record_tampering_detected(index: int) -> None:
    cipher = RecordCipher(new_data_key(), ARN)
    sealed = bytearray(cipher.seal(FN1, b"some audio bytes"))
    sealed[index] ^= 0x40
    with pytest.raises(IntegrityError):
        cipher.open(FN1, bytes(sealed))


def test_record_truncation_detected() -> None:
    cipher = RecordCipher(new_data_key(), ARN)
    sealed = cipher.seal(FN1, b"some audio bytes")
    for cut in (0, 5, len(sealed) - 1):
        with pytest.raises(IntegrityError):
            cipher.open(FN1, sealed[:cut])


def test_bad_key_length() -> None:
    with pytest.raises(ValueError):
        RecordCipher(b"short", ARN)
