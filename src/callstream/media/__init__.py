"""callstream.media: audio building blocks for live call audio.

* :mod:`~callstream.media.g711` - µ-law / A-law codecs (numpy tables, bit-exact with audioop)
* :mod:`~callstream.media.pcm` - 16-bit little-endian PCM helpers and MIME type parsing
* :mod:`~callstream.media.wav` - WAV reading (PCM16/PCM8/µ-law/A-law) and (streaming) writing
* :mod:`~callstream.media.resample` - soxr resampling, one-shot and streaming
* :mod:`~callstream.media.tracks` - timestamp-true timeline assembly of MKV/KVS audio frames
"""

from callstream.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from callstream.media.pcm import (
    MimeType,
    as_int16,
    deinterleave,
    interleave,
    parse_mime_type,
    pcm_to_samples,
    samples_to_pcm,
    silence,
)
from callstream.media.resample import Resampler, resample
from callstream.media.tracks import Channel, StereoAssembler, TrackTimeline, ns_to_samples
from callstream.media.wav import (
    WavAudio,
    WavWriter,
    parse_wav,
    read_wav,
    wav_bytes,
    write_raw,
    write_wav,
)

__all__ = [
    "Channel",
    "MimeType",
    "Resampler",
    "StereoAssembler",
    "TrackTimeline",
    "WavAudio",
    "WavWriter",
    "alaw_decode",
    "alaw_encode",
    "as_int16",
    "deinterleave",
    "interleave",
    "ns_to_samples",
    "parse_mime_type",
    "parse_wav",
    "pcm_to_samples",
    "read_wav",
    "resample",
    "samples_to_pcm",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
    "wav_bytes",
    "write_raw",
    "write_wav",
]
