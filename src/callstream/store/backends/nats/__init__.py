"""The NATS JetStream backend: the media store on a NATS cluster, shared by several
``callstream serve`` nodes (``--store nats://host:4222[,host2:4222...]``).

Modules:

* :mod:`.store` -- :class:`NatsStore`, the backend (connection, bucket, lifecycle);
* :mod:`.catalog` -- the stream catalog in a JetStream KV bucket (compare-and-set);
* :mod:`.fragments` -- fragments as JetStream messages, the per-node index;
* :mod:`.live` -- live fragments between nodes over core NATS;
* :mod:`.names` -- bucket, stream and subject names.
"""

from callstream.store.backends.nats.names import DEFAULT_PREFIX
from callstream.store.backends.nats.store import DEFAULT_MAX_PAYLOAD, NatsStore

__all__ = ["DEFAULT_MAX_PAYLOAD", "DEFAULT_PREFIX", "NatsStore"]
