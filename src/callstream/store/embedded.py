"""The embedded store backend (moved to :mod:`callstream.store.backends.embedded`).

This module keeps the names it always offered so that existing imports go on working;
new code imports from :mod:`callstream.store.backends.embedded`.
"""

from callstream.kvs.model import MAX_RETENTION_HOURS, MAX_TAGS
from callstream.store.backends.embedded import (
    DEFAULT_FILE_SIZE_LIMIT,
    DEFAULT_RESERVE_BYTES,
    MEMORY_BUFFER_BYTES,
    MEMORY_BUFFER_MS,
    RECORD_HEADER_SIZE,
    RECORD_MAGIC,
    DataDirLocked,
    EmbeddedBackend,
    EmbeddedStore,
    decode_fragment_data,
    encode_fragment_data,
)
from callstream.store.backends.embedded.files import default_max_open_files

__all__ = [
    "DEFAULT_FILE_SIZE_LIMIT",
    "DEFAULT_RESERVE_BYTES",
    "MAX_RETENTION_HOURS",
    "MAX_TAGS",
    "MEMORY_BUFFER_BYTES",
    "MEMORY_BUFFER_MS",
    "RECORD_HEADER_SIZE",
    "RECORD_MAGIC",
    "DataDirLocked",
    "EmbeddedBackend",
    "EmbeddedStore",
    "decode_fragment_data",
    "default_max_open_files",
    "encode_fragment_data",
]
