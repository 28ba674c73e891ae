"""Sans-I/O EBML/Matroska reader and writer, and the KVS fragment layer."""

from callstream.mkv.ebml import ID, UNKNOWN_SIZE, MkvError
from callstream.mkv.kvs import (
    Fragment,
    FragmentReader,
    Frame,
    TrackInfo,
    format_kvs_timestamp,
    iter_fragments,
    parse_kvs_timestamp,
    render_fragment,
)
from callstream.mkv.reader import Block, BlockRun, EbmlReader, End, Event, Leaf, Start

__all__ = [
    "ID",
    "UNKNOWN_SIZE",
    "Block",
    "BlockRun",
    "EbmlReader",
    "End",
    "Event",
    "Fragment",
    "FragmentReader",
    "Frame",
    "Leaf",
    "MkvError",
    "Start",
    "TrackInfo",
    "format_kvs_timestamp",
    "iter_fragments",
    "parse_kvs_timestamp",
    "render_fragment",
]
