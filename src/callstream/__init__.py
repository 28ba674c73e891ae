"""callstream: live call-audio streaming, KVS-compatible, self-hosted."""

__version__ = "0.1.0"
