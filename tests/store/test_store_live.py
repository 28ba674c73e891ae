"""The live layer's hand-over of Cluster chunks to readers that have caught up."""

from __future__ import annotations

from dataclasses import dataclass, field

from callstream.store.live import LiveFragment, LiveHub


@dataclass
class ListSink:
    """A reader that takes up to ``room`` chunks, then lets go."""

    room: int = 1 << 30
    got: list[bytes] = field(default_factory=list)
    released: int = 0

    def push(self, data: bytes) -> bool:
        if len(self.got) >= self.room:
            return False
        self.got.append(data)
        return True

    def release(self) -> None:
        self.released += 1


def fragment() -> LiveFragment:
    return LiveFragment(number="1" * 47, server_timestamp_ms=1, producer_timestamp_ms=1, prefix=b"")


def test_attached_sinks_get_each_chunk_appended_after_they_attach() -> None:
    frag = fragment()
    frag.append(b"a")
    early, late = ListSink(), ListSink()
    frag.attach(early)
    frag.append(b"b")
    frag.attach(late)
    frag.append(b"c")
    assert frag.chunks == [b"a", b"b", b"c"]
    assert early.got == [b"b", b"c"] and late.got == [b"c"]


def test_a_sink_that_lets_go_is_detached_and_the_chunk_stays_in_the_fragment() -> None:
    frag = fragment()
    slow, fast = ListSink(room=1), ListSink()
    frag.attach(slow)
    frag.attach(fast)
    frag.append(b"a")
    frag.append(b"b")  # slow refuses it and is dropped; it reads b from frag.chunks
    frag.append(b"c")
    assert slow.got == [b"a"] and fast.got == [b"a", b"b", b"c"]
    assert frag.sinks == [fast] and frag.chunks == [b"a", b"b", b"c"]


def test_finishing_or_dropping_releases_every_sink_once() -> None:
    done, gone = fragment(), fragment()
    a, b = ListSink(), ListSink()
    done.attach(a)
    gone.attach(b)
    done.finish(b"trailer", 980)
    gone.drop()
    assert (done.complete, done.trailer, done.duration_ms) == (True, b"trailer", 980)
    assert gone.dropped and not gone.complete
    assert a.released == 1 and b.released == 1 and done.sinks == [] and gone.sinks == []
    done.detach(a)  # detaching after the release is harmless


def test_forgetting_a_stream_drops_its_live_fragments_and_releases_their_readers() -> None:
    hub = LiveHub()
    frag = fragment()
    hub.open("arn:s", frag)
    sink = ListSink()
    frag.attach(sink)
    hub.forget("arn:s")
    assert frag.dropped and sink.released == 1
