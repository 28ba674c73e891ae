"""Ingest gateways: call audio forked over WebSocket or TCP (Twilio Media Streams, Genesys
AudioHook, Asterisk AudioSocket, a plain L16/µ-law WebSocket) into the same streams,
events and analytics as PutMedia and the voice connector.

Each protocol is a sans-I/O core (bytes or text in, :mod:`callstream.ingest.events` out);
the socket edges and the call sink that writes the store are separate modules.
"""
