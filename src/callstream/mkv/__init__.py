"""Sans-I/O EBML/Matroska reader and writer, the element-consumer layer (what Tags,
Tracks and Clusters a stream holds) and the KVS fragment layer built on it."""

from callstream.mkv.ebml import ID, UNKNOWN_SIZE, MkvError
from callstream.mkv.elements import ElementWalker, MkvVisitor
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
    "ElementWalker",
    "End",
    "Event",
    "Fragment",
    "FragmentReader",
    "Frame",
    "Leaf",
    "MkvError",
    "MkvVisitor",
    "Start",
    "TrackInfo",
    "format_kvs_timestamp",
    "iter_fragments",
    "parse_kvs_timestamp",
    "render_fragment",
]
