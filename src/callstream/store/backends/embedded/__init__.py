"""The embedded store backend: one data directory on local disk — a SQLite index plus
append-only, encrypted fragment files — served through the async seam by
:class:`EmbeddedStore`.

Modules, in the order a fragment meets them:

* :mod:`.store` -- :class:`EmbeddedStore`, the async facade (catalog, log, leases);
* :mod:`.feeds` -- subscriptions to what is appended;
* :mod:`.writers` -- the writer threads that store appends in batches;
* :mod:`.backend` -- :class:`EmbeddedBackend`, the synchronous backend: the data
  directory and its streams;
* :mod:`.streams` -- the streams as kept in memory;
* :mod:`.fragments` -- appending, reading, querying and deleting fragments;
* :mod:`.sequences` -- fragment sequence counters;
* :mod:`.records` -- the record format and its sealing;
* :mod:`.files` -- per-stream append-only files, open descriptors, crash recovery;
* :mod:`.index` -- the SQLite schema, its queries and group commit;
* :mod:`.memory` -- the retention-0 host buffer;
* :mod:`.space` -- full-disk handling and the reserve.
"""

from callstream.store.backends.embedded.backend import DataDirLocked, EmbeddedBackend
from callstream.store.backends.embedded.files import DEFAULT_FILE_SIZE_LIMIT
from callstream.store.backends.embedded.memory import MEMORY_BUFFER_BYTES, MEMORY_BUFFER_MS
from callstream.store.backends.embedded.records import (
    RECORD_HEADER_SIZE,
    RECORD_MAGIC,
    decode_fragment_data,
    encode_fragment_data,
)
from callstream.store.backends.embedded.space import DEFAULT_RESERVE_BYTES
from callstream.store.backends.embedded.store import EmbeddedCatalog, EmbeddedLog, EmbeddedStore
from callstream.store.backends.embedded.writers import Persister

__all__ = [
    "DEFAULT_FILE_SIZE_LIMIT",
    "DEFAULT_RESERVE_BYTES",
    "MEMORY_BUFFER_BYTES",
    "MEMORY_BUFFER_MS",
    "RECORD_HEADER_SIZE",
    "RECORD_MAGIC",
    "DataDirLocked",
    "EmbeddedBackend",
    "EmbeddedCatalog",
    "EmbeddedLog",
    "EmbeddedStore",
    "Persister",
    "decode_fragment_data",
    "encode_fragment_data",
]
