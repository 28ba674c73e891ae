"""The Kinesis Video Streams protocol as both ends see it: the PutMedia ack stream
(:mod:`callstream.kvs.acks`). Clients and the server import it from here; nothing in it
does I/O."""
