"""The writer threads that store PutMedia fragments in batches (moved to
:mod:`callstream.store.backends.embedded.writers`, where the embedded store's async
append path uses them too)."""

from callstream.store.backends.embedded.writers import Persister

__all__ = ["Persister"]
