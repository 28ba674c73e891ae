"""The media store: streams and their fragments (see :mod:`callstream.store.base`)."""

from callstream.store.base import (
    Backend,
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    IntegrityError,
    InvalidArgument,
    StorageFull,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    TagsLimitExceeded,
    VersionMismatch,
)
from callstream.store.crypto import Keyring, KeyringError, RecordCipher, default_kms_key_id
from callstream.store.embedded import DataDirLocked, EmbeddedBackend
from callstream.store.numbers import (
    FRAGMENT_NUMBER_DIGITS,
    MAX_SEQUENCE,
    InvalidFragmentNumber,
    is_valid_fragment_number,
    make_fragment_number,
    parse_fragment_number,
)

__all__ = [
    "FRAGMENT_NUMBER_DIGITS",
    "MAX_SEQUENCE",
    "Backend",
    "DataDirLocked",
    "EmbeddedBackend",
    "FragmentAppend",
    "FragmentData",
    "FragmentNotFound",
    "FragmentRecord",
    "IntegrityError",
    "InvalidArgument",
    "InvalidFragmentNumber",
    "Keyring",
    "KeyringError",
    "RecordCipher",
    "StorageFull",
    "StoreError",
    "StreamInUse",
    "StreamLimitExceeded",
    "StreamNotFound",
    "StreamRecord",
    "TagsLimitExceeded",
    "VersionMismatch",
    "default_kms_key_id",
    "is_valid_fragment_number",
    "make_fragment_number",
    "parse_fragment_number",
]
