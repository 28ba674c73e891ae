"""The ``callstream`` command line.

``serve`` runs the KVS-compatible store; ``inspect`` prints fragments as JSON Lines;
``get-audio`` extracts call audio (the Connect admin guide's LMSExample, without Java);
``put-media`` streams audio or an MKV into a stream. Bad usage or input prints one line
on stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from callstream import __version__
from callstream.analytics import commands as analytics_commands
from callstream.ingest import commands as ingest_commands
from callstream.mkv.ebml import MkvError
from callstream.voice import commands as voice_commands

CHUNK = 64 * 1024
LIVE_CHUNK = 4096
"""GetMedia read size: botocore blocks until a whole chunk arrives, and a live call
carries ~32 KB/s, so small reads keep latency low."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# --- shared helpers ---------------------------------------------------------------------------


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # closed by the caller
    except OSError as err:
        raise CliError(f"cannot open {path}: {err.strerror}") from None


def _open_output(path: str) -> BinaryIO:
    try:
        return open(path, "wb")  # closed by the caller
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror}") from None


def _input_name(path: str) -> str:
    return "stdin" if path == "-" else path


def _chunks(stream: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


class Progress:
    """A one-line progress display on a terminal; silent when stderr is piped."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last > 0.1:
            self._last = now
            sys.stderr.write("\r\x1b[2K" + text)
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _data_dir_default() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get("CALLSTREAM_DATA_DIR") or user_data_dir("callstream"))


# --- serve ------------------------------------------------------------------------------------


def _check_serve_start(args: argparse.Namespace) -> None:
    """Start-up problems as one clear line, before anything is printed or opened."""
    import errno
    import fcntl
    import socket

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0..65535, got {args.port}")
    for flag, value in (("--max-streams", args.max_streams), ("--max-readers", args.max_readers)):
        if value < 1:
            raise CliError(f"{flag} must be at least 1, got {value}")
    from callstream.store.backends import parse_backend_spec
    from callstream.store.backends.nats.names import check_prefix

    try:
        parse_backend_spec(args.store)
        if args.nats_prefix is not None:
            check_prefix(args.nats_prefix)
    except ValueError as err:
        raise CliError(f"--store: {err}") from None
    data_dir = Path(args.data_dir) if args.data_dir else _data_dir_default()
    if data_dir.exists() and not data_dir.is_dir():
        raise CliError(f"--data-dir {data_dir} is a file, not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise CliError(f"--data-dir {data_dir}: cannot create it: {err.strerror}") from None
    if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        raise CliError(f"--data-dir {data_dir} is not writable")
    # The store holds an flock on <data dir>/LOCK while it has the directory open.
    try:
        fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise CliError(f"--data-dir {data_dir}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise CliError(f"--data-dir {data_dir}: {err.strerror}") from None
        raise CliError(f"--data-dir {data_dir} is in use by another callstream server") from None
    finally:
        os.close(fd)
    try:
        addresses = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise CliError(f"--host {args.host}: {err.strerror}") from None
    if args.port:
        for family, kind, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(address)
                except OSError as err:
                    raise CliError(
                        f"cannot listen on {args.host}:{args.port}: {err.strerror}"
                    ) from None
    if not args.no_sip and args.sip_port:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            try:
                infos = socket.getaddrinfo(args.sip_host, args.sip_port, type=kind)
            except socket.gaierror as err:
                raise CliError(f"--sip-host {args.sip_host}: {err.strerror}") from None
            family, kind_, proto, _, address = infos[0]
            with socket.socket(family, kind_, proto) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(address)
                except OSError as err:
                    raise CliError(
                        f"cannot listen for SIP on {args.sip_host}:{args.sip_port}:"
                        f" {err.strerror} (--sip-port, or --no-sip)"
                    ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from callstream.api.app import ServerConfig
    from callstream.api.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, serve
    from callstream.api.sigv4 import load_credentials
    from callstream.events.webhooks import SECRET_ENV, WebhookConfigError, load_webhooks
    from callstream.web.config import UiConfig

    try:
        webhooks = load_webhooks(
            args.webhook, args.webhooks_file, secret=os.environ.get(SECRET_ENV) or None
        )
    except WebhookConfigError as err:
        raise CliError(str(err)) from None
    _check_serve_start(args)
    try:
        creds = load_credentials(path=args.credentials_file)
    except (ValueError, OSError) as err:
        raise CliError(f"credentials: {err}") from None
    keys = dict(creds.keys)
    if not keys:
        keys = {DEFAULT_ACCESS_KEY_ID: DEFAULT_SECRET_ACCESS_KEY}
        print(
            "callstream: no credentials configured; accepting the development key pair"
            f" {DEFAULT_ACCESS_KEY_ID}/{DEFAULT_SECRET_ACCESS_KEY}"
            " (set CALLSTREAM_ACCESS_KEY_ID and CALLSTREAM_SECRET_ACCESS_KEY)",
            file=sys.stderr,
        )
    config = ServerConfig(
        region=args.region,
        account_id=args.account_id,
        credentials=keys,
        max_readers_per_stream=args.max_readers,
        public_url=args.public_url,
        header_timeout_s=args.header_timeout,
        idle_timeout_s=args.idle_timeout,
        body_timeout_s=args.body_timeout,
        max_client_connections=args.max_client_connections,
        memory_trim_interval_s=args.memory_interval,
        store=args.store,
        store_replicas=args.nats_replicas,
        store_prefix=args.nats_prefix,
        voice=voice_commands.voice_config(args),
        analytics=analytics_commands.analytics_config(args),
        webhooks=tuple(webhooks),
        ui=UiConfig(login=args.ui_login) if args.ui == "on" else None,
        ingest=ingest_commands.ingest_config(args),
    )
    data_dir = Path(args.data_dir) if args.data_dir else _data_dir_default()
    _configure_connect(args, data_dir)
    if config.analytics is not None:
        analytics = config.analytics
        print(
            f"callstream: call analytics on ({analytics.engine}, {analytics.workers} recogniser"
            " workers; --analytics off to disable)",
            file=sys.stderr,
        )
    serve(
        data_dir,
        host=args.host,
        port=args.port,
        config=config,
        max_streams=args.max_streams,
        ssl_context=_tls_context(args, data_dir),
    )
    return 0


def _configure_connect(args: argparse.Namespace, data_dir: Path) -> None:
    """``--phone-numbers``, ``--connect-lambda``, ``--connect-outbound-audio`` into the data
    directory's registry."""
    from callstream.flows.connect_client import configure_server

    lambdas = dict(item.partition("=")[::2] for item in args.connect_lambda)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        configure_server(
            data_dir,
            region=args.region,
            account_id=args.account_id,
            phone_numbers=args.phone_numbers,
            lambdas=lambdas,
            outbound_audio=args.connect_outbound_audio,
        )
    except ValueError as err:
        raise CliError(str(err)) from None


def _tls_context(args: argparse.Namespace, data_dir: Path) -> Any:
    """The server's TLS context from ``--tls-cert/--tls-key`` or ``--tls-self-signed``."""
    from callstream.api import tls

    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    if args.tls_cert and args.tls_self_signed:
        raise CliError("use --tls-cert/--tls-key or --tls-self-signed, not both")
    if args.tls_cert:
        try:
            return tls.server_context(Path(args.tls_cert), Path(args.tls_key))
        except ValueError as err:
            raise CliError(str(err)) from None
    if not args.tls_self_signed:
        return None
    names = [args.host]
    if args.public_url:
        from urllib.parse import urlsplit

        names.append(urlsplit(args.public_url).hostname or "")
    try:
        certs = tls.development_certificates(data_dir / "tls", names)
    except OSError as err:
        raise CliError(f"TLS: cannot write the development certificates: {err}") from None
    print(
        f"callstream: development TLS certificate {certs.cert_file}, signed by the CA "
        f"{certs.ca_file}; trust that CA: AWS_CA_BUNDLE={certs.ca_file} (boto3, AWS CLI), "
        f"NODE_EXTRA_CA_CERTS={certs.ca_file} (Node.js), caCertPath (producer SDKs)",
        file=sys.stderr,
    )
    return tls.server_context(certs.cert_file, certs.key_file)


# --- inspect ----------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from callstream.mkv import FragmentReader

    source = _open_input(args.file)
    reader = FragmentReader()
    out = sys.stdout
    count = 0
    size = 0

    def emit(fragments: Iterable[Any]) -> None:
        nonlocal count
        for fragment in fragments:
            out.write(json.dumps(fragment.to_json(frames=args.frames)) + "\n")
            count += 1
        out.flush()

    try:
        for chunk in _chunks(source):
            size += len(chunk)
            emit(reader.feed(chunk))
        if size == 0:
            raise CliError(f"{_input_name(args.file)} is empty")
        emit(reader.close())
    except MkvError as err:
        emit(err.fragments)  # a cut-off capture: what arrived is still printed
        raise CliError(f"{args.file}: invalid MKV after {count} fragment(s): {err}") from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return 0


# --- get-audio --------------------------------------------------------------------------------


def _use_local_credentials_if_none(args: argparse.Namespace) -> None:
    """Against a local endpoint with no AWS credentials configured, sign with the
    development key pair ``callstream serve`` accepts by default."""
    import botocore.session

    if args.endpoint_url and botocore.session.get_session().get_credentials() is None:
        from callstream.api.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY

        os.environ["AWS_ACCESS_KEY_ID"] = DEFAULT_ACCESS_KEY_ID
        os.environ["AWS_SECRET_ACCESS_KEY"] = DEFAULT_SECRET_ACCESS_KEY


def _stream_ids(stream: str) -> tuple[str | None, str | None]:
    """(name, ARN) from a ``--stream`` value that may be either."""
    return (None, stream) if stream.startswith("arn:") else (stream, None)


def _region(args: argparse.Namespace) -> str | None:
    import botocore.session

    region: str | None = args.region or botocore.session.get_session().get_config_variable("region")
    if region is None and args.endpoint_url:
        region = "us-east-1"
    return region


def _fragments_from_stream(args: argparse.Namespace) -> Iterator[Any]:
    from callstream.client.getmedia import get_media

    _use_local_credentials_if_none(args)
    start = _start_selector(args)
    name, arn = _stream_ids(args.stream)
    fragments = get_media(
        stream_name=name,
        stream_arn=arn,
        start=start,
        endpoint_url=args.endpoint_url,
        region=_region(args),
        stop_at_ms=args.stop_timestamp,
        chunk_size=LIVE_CHUNK,
    )
    # The server selects too, but some botocore versions send whole-second timestamps:
    # the same rule applied here makes the start exact whatever the client library.
    return select_from(fragments, start)


def _fragments_from_file(path: str) -> Iterator[Any]:
    from callstream.mkv import iter_fragments

    source = _open_input(path)
    try:
        yield from iter_fragments(_chunks(source))
    finally:
        if source is not sys.stdin.buffer:
            source.close()


def _parse_time(value: str) -> int:
    """Epoch seconds or ISO 8601 (UTC unless it says otherwise) to epoch ms."""
    from datetime import datetime

    try:
        return round(float(value) * 1000)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a timestamp: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # a time without a zone is UTC, as in AWS
    return int(when.timestamp() * 1000)


def select_from(fragments: Iterator[Any], selector: Any) -> Iterator[Any]:
    from callstream.kvs.selectors import select_from as select

    return select(fragments, selector)


def _start_selector(args: argparse.Namespace) -> Any:
    """The start the ``--start-*`` options ask for (one meaning for streams and files)."""
    from callstream.kvs.selectors import StartSelector

    if args.start_fragment is not None:
        return StartSelector.from_fragment(args.start_fragment)
    if args.start_timestamp is not None:
        return StartSelector.producer_timestamp(args.start_timestamp)
    if getattr(args, "start", None) == "now":
        return StartSelector.now()
    return StartSelector.earliest()


_FRAGMENT_NUMBER = re.compile(r"[0-9]{1,128}")
"""A KVS fragment number (the API's pattern and length limit)."""


def cmd_get_audio(args: argparse.Namespace) -> int:
    from callstream.media.extract import AudioExtractor, Selection, resolve_track
    from callstream.media.wav import WavWriter

    if (args.stream is None) == (args.input is None):
        raise CliError("give exactly one source: --stream NAME|ARN or --input FILE|-")
    if args.out in (None, "-") and sys.stdout.isatty():
        raise CliError("refusing to write audio to a terminal: use --out PATH or a pipe")
    if args.start_fragment is not None and not _FRAGMENT_NUMBER.fullmatch(args.start_fragment):
        raise CliError(
            f"--start-fragment expects a fragment number (1-128 digits), got {args.start_fragment!r}"
        )

    if args.input is not None:
        fragments: Iterator[Any] = select_from(
            _fragments_from_file(args.input), _start_selector(args)
        )
    else:
        fragments = _fragments_from_stream(args)

    progress = Progress(enabled=True)
    sink: BinaryIO = sys.stdout.buffer if args.out in (None, "-") else _open_output(args.out)
    extractor: AudioExtractor | None = None
    writer: Any = None
    samples = 0

    def write(pcm: bytes) -> None:
        nonlocal samples
        if pcm and writer is not None:
            writer.write(pcm)
            samples += len(pcm) // (2 * extractor.channels if extractor else 2)

    from callstream.kvs.calls import CallWindow

    window = CallWindow(args.contact_id, follow_all=args.all_contacts)
    failure_sink: list[MkvError] = []
    try:
        for fragment in _until_error(fragments, lambda err: failure_sink.append(err)):
            verdict = window.judge(fragment.tags)
            if verdict == "skip":
                continue
            if verdict == "stop":
                progress.update("the stream moved on to another contact", force=True)
                break
            ts = fragment.producer_timestamp_ms
            if args.stop_timestamp is not None and ts is not None and ts >= args.stop_timestamp:
                break
            if extractor is None:
                if not fragment.frames:
                    continue
                selection = Selection(args.track) if args.track != "auto" else None
                if selection is None:
                    both = resolve_track(fragment, "AUDIO_TO_CUSTOMER") is not None
                    selection = Selection.ALL if both else Selection.FROM_CUSTOMER
                extractor = AudioExtractor(selection)
            pcm = extractor.add(fragment)
            if writer is None and extractor.rate is not None:
                writer = (
                    WavWriter(sink, extractor.rate, extractor.channels)
                    if args.format == "wav"
                    else _RawWriter(sink)
                )
            write(pcm)
            if extractor.rate:
                progress.update(
                    f"{extractor.fragments} fragments, {samples / extractor.rate:.1f} s of audio"
                )
        if extractor is not None:
            write(extractor.finish())
        if failure_sink:
            failure = failure_sink[0]
            where = "the input" if args.input is not None else "the stream"
            raise CliError(f"{where} is invalid MKV (audio before it was written): {failure}")
        if writer is None:
            raise CliError("no audio found in the selected fragments")
    finally:
        if writer is not None:
            writer.close()
        if sink is not sys.stdout.buffer:
            sink.close()
        progress.done()
    return 0


def _until_error(fragments: Iterator[Any], on_error: Callable[[MkvError], object]) -> Iterator[Any]:
    """The fragments up to a malformed spot; the error goes to ``on_error``."""
    try:
        yield from fragments
    except MkvError as err:
        on_error(err)


class _RawWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink

    def write(self, pcm: bytes) -> None:
        self.sink.write(pcm)

    def close(self) -> None:
        self.sink.flush()


# --- put-media --------------------------------------------------------------------------------


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--tag expects NAME=VALUE, got {item!r}")
        tags[name] = value
    return tags


def _timecode_type_of(data: bytes) -> str:
    """ABSOLUTE when the first Cluster of ``data`` carries an epoch timecode, else RELATIVE."""
    from callstream.mkv import FragmentReader

    reader = FragmentReader()
    for start in range(0, len(data), CHUNK):
        for fragment in reader.feed(data[start : start + CHUNK]):
            tc = (fragment.cluster_timecode or 0) * fragment.timecode_scale_ns // 1_000_000
            return "ABSOLUTE" if tc > 978_307_200_000 else "RELATIVE"  # after 2001
    return "RELATIVE"


def _read_mkv(path: str) -> bytes:
    """A whole MKV input (a file or - for stdin); empty or unreadable: a CliError."""
    source = _open_input(path)
    try:
        data = source.read()
    except OSError as err:
        raise CliError(f"cannot read {_input_name(path)}: {err.strerror}") from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if not data:
        raise CliError(f"{_input_name(path)} is empty")
    return data


def _producer_for(
    args: argparse.Namespace, tags: dict[str, str], start_ms: int
) -> tuple[Any, dict[str | int, bytes]]:
    """The Connect- or Chime-shaped producer and its audio, from the audio options."""
    import uuid

    from callstream.client import producer as prod

    for flag, value in (("--fragment-ms", args.fragment_ms), ("--frame-ms", args.frame_ms)):
        if value <= 0:
            raise CliError(f"{flag} must be a positive number of milliseconds, got {value}")
    audio: dict[str | int, bytes] = {}
    try:
        if args.shape == "chime":
            if args.to_customer:
                raise CliError("--shape chime streams one leg: give --wav or --from-customer")
            audio.update(prod.read_chime_audio(args.wav or args.from_customer))
            producer = prod.chime_producer(
                transaction_id=tags.pop("TransactionId", str(uuid.uuid4())),
                voice_connector_id=tags.pop("VoiceConnectorId", "callstream"),
                call_id=tags.pop("CallId", str(uuid.uuid4())),
                frame_ms=args.frame_ms,
                extra_tags=tags,
                producer_start_ms=start_ms,
            )
        else:
            audio.update(prod.read_connect_audio(args.wav or args.from_customer, args.to_customer))
            producer = prod.connect_producer(
                contact_id=tags.pop("ContactId", str(uuid.uuid4())),
                instance_id=tags.pop("InstanceId", str(uuid.uuid4())),
                frame_ms=args.frame_ms,
                extra_tags=tags,
                producer_start_ms=start_ms,
                codec=args.codec,
                swap_tracks=args.swap_tracks,
            )
    except (OSError, ValueError) as err:
        raise CliError(str(err)) from None
    return producer, audio


def _check_audio_source(args: argparse.Namespace, *, mkv: bool) -> None:
    sources = [x for x in (args.wav, getattr(args, "mkv", None), args.from_customer) if x]
    if len(sources) != 1 or (args.to_customer and not args.from_customer):
        also = ", --mkv FILE" if mkv else ""
        raise CliError(
            f"give one source: --wav FILE{also} or --from-customer WAV [--to-customer WAV]"
        )


def cmd_encode(args: argparse.Namespace) -> int:
    from callstream.client import producer as prod

    _check_audio_source(args, mkv=False)
    start_ms = args.start_timestamp or int(time.time() * 1000)
    producer, audio = _producer_for(args, _parse_tags(args.tag), start_ms)
    chunks = prod.produce(producer, audio, start_ms=start_ms, fragment_ms=args.fragment_ms)
    with (
        _open_output(args.out)
        if args.out != "-"
        else contextlib.nullcontext(sys.stdout.buffer) as sink
    ):
        for chunk in chunks:
            sink.write(chunk.data)
    return 0


def cmd_put_media(args: argparse.Namespace) -> int:
    import asyncio

    from callstream.client import producer as prod
    from callstream.client.putmedia import put_media

    tags = _parse_tags(args.tag)
    _check_audio_source(args, mkv=True)
    _use_local_credentials_if_none(args)
    start_ms = args.start_timestamp or int(time.time() * 1000)
    timecode_type = "ABSOLUTE"
    body: Any
    if args.mkv:
        data = _read_mkv(args.mkv)
        try:
            timecode_type = _timecode_type_of(data)
        except MkvError as err:
            raise CliError(f"{_input_name(args.mkv)}: invalid MKV: {err}") from None
        body = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    else:
        producer, audio = _producer_for(args, tags, start_ms)
        chunks = prod.produce(producer, audio, start_ms=start_ms, fragment_ms=args.fragment_ms)
        body = prod.pace(chunks, realtime=args.realtime)

    def on_ack(ack: Any) -> None:
        record = {
            "EventType": str(ack.event_type),
            "FragmentTimecode": ack.fragment_timecode,
            "FragmentNumber": ack.fragment_number,
        }
        if ack.error_code:
            record.update(ErrorCode=ack.error_code, ErrorId=ack.error_id)
        print(json.dumps({k: v for k, v in record.items() if v is not None}), flush=True)

    name, arn = _stream_ids(args.stream)
    result = asyncio.run(
        put_media(
            args.endpoint_url,
            body,
            stream_name=name,
            stream_arn=arn,
            region=_region(args),
            on_ack=on_ack,
            timecode_type=timecode_type,  # type: ignore[arg-type]
            producer_start_ms=start_ms,
        )
    )
    if result.errors:
        raise CliError(f"{len(result.errors)} fragment(s) rejected by the server")
    return 0


# --- call -------------------------------------------------------------------------------------


def _one_line(err: Exception) -> str:
    """A FlowError listing several problems (one per line) as one line."""
    head, *items = str(err).splitlines()
    return " ".join([head, "; ".join(item.strip().removeprefix("- ") for item in items)]).strip()


def cmd_call(args: argparse.Namespace) -> int:
    import asyncio

    from callstream.flows import FlowError, load_flow
    from callstream.flows.call import place_call

    _use_local_credentials_if_none(args)
    lambdas: dict[str, str] = {}
    for item in args.lambda_:
        name, sep, target = item.partition("=")
        if not sep or not name or not target:
            raise CliError(f"--lambda expects NAME=module:function or NAME=URL, got {item!r}")
        lambdas[name] = target
    if args.speed <= 0:
        raise CliError("--speed must be positive")
    if args.retention_hours < 0:
        raise CliError(f"--retention-hours must be 0 or more, got {args.retention_hours}")
    if args.to is not None:
        return _call_number(args, lambdas)
    from callstream.flows import Instance

    flows = []
    for path in (args.flow, *args.also_flow):
        try:
            flows.append(load_flow(Path(path)))
        except FlowError as err:  # names the file when it could not be read or parsed
            text = _one_line(err)
            raise CliError(text if path in text else f"{path}: {text}") from None
    instance = Instance(
        alias=args.instance_alias,
        live_media_streaming=not args.no_live_media_streaming,
        stream_prefix=args.stream_prefix,
        kms_key_id=args.kms_key_id,
        retention_hours=args.retention_hours,
    )
    progress = Progress(enabled=True)
    try:
        result = asyncio.run(
            place_call(
                instance=instance,
                flow=flows[0],
                flows=flows[1:],
                customer_audio=args.customer_audio,
                agent_audio=args.agent_audio,
                channel=args.channel,
                attributes=_parse_tags(args.attribute),
                lambdas=lambdas,
                endpoint_url=args.endpoint_url,
                region=_region(args) or "us-east-1",
                speed=args.speed,
                dtmf=args.dtmf,
                on_event=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except FlowError as err:
        raise CliError(f"{args.flow}: {_one_line(err)}") from None
    except (OSError, ValueError) as err:
        raise CliError(str(err)) from None
    finally:
        progress.done()
    print(json.dumps(result.ctr, indent=2))
    return 0


def _call_number(args: argparse.Namespace, lambdas: dict[str, str]) -> int:
    """``call --to NUMBER``: the server places the call (flows/connect_contacts.py)."""
    import asyncio

    from callstream.flows.connect_client import CallFailed, call_number

    try:
        result = asyncio.run(
            call_number(
                args.endpoint_url,
                args.to,
                customer_audio=args.customer_audio,
                agent_audio=args.agent_audio,
                caller=args.caller,
                attributes=_parse_tags(args.attribute),
                lambdas=lambdas,
                dtmf=args.dtmf,
                speed=args.speed,
                region=_region(args) or "us-east-1",
                on_event=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except (CallFailed, OSError) as err:
        raise CliError(str(err)) from None
    print(json.dumps(result["ContactRecord"], indent=2))
    return 0


# --- contacts ---------------------------------------------------------------------------------


def signed_request(
    method: str, url: str, *, region: str, body: bytes | None = None, credentials: Any = None
) -> tuple[int, bytes]:
    """A SigV4-signed HTTP request to a callstream server (default credentials: the
    botocore chain)."""
    import urllib.error
    import urllib.request

    import botocore.session

    from callstream.client.aws import sign_request

    creds = credentials or botocore.session.get_session().get_credentials()
    if creds is None:
        raise CliError("no AWS credentials found")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    signed = sign_request(
        method, url, credentials=creds, region=region, headers=headers, body=body or b""
    )
    http = urllib.request.Request(url, data=body, method=method, headers=signed)
    try:
        with urllib.request.urlopen(http, timeout=30) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except urllib.error.URLError as err:
        raise CliError(f"cannot reach {url}: {err.reason}") from None


def cmd_contacts(args: argparse.Namespace) -> int:
    from urllib.parse import quote, urlencode

    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, got {args.limit}")
    _use_local_credentials_if_none(args)
    base = args.endpoint_url.rstrip("/") + "/callstream/contacts"
    if args.contact_id:
        url = f"{base}/{quote(args.contact_id, safe='')}"
    else:
        query = {"limit": str(args.limit)}
        if args.channel:
            query["channel"] = args.channel
        url = f"{base}?{urlencode(query)}"
    status, body = signed_request("GET", url, region=_region(args) or "us-east-1")
    if status != 200:
        try:
            message = json.loads(body).get("Message", body.decode(errors="replace"))
        except ValueError:
            message = body.decode(errors="replace")
        raise CliError(f"HTTP {status}: {message}")
    payload = json.loads(body)
    if args.contact_id:
        print(json.dumps(payload, indent=2))
    else:
        for record in payload["Contacts"]:
            print(json.dumps(record))
    return 0


# --- argument parsing -------------------------------------------------------------------------


def _audio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wav", help="stereo (ch0 customer, ch1 agent) or mono WAV")
    p.add_argument("--from-customer", help="WAV of what the customer says")
    p.add_argument("--to-customer", help="WAV of what the customer hears")
    p.add_argument("--shape", choices=["connect", "chime"], default="connect")
    p.add_argument(
        "--codec",
        choices=["connect", "pcm"],
        default="connect",
        help="connect: A_AAC label over L16 as real Connect streams; pcm: A_PCM/INT/LIT",
    )
    p.add_argument("--swap-tracks", action="store_true", help="track 1 = AUDIO_TO_CUSTOMER")
    p.add_argument("--fragment-ms", type=int, default=1000)
    p.add_argument("--frame-ms", type=int, default=20)
    p.add_argument("--start-timestamp", type=_parse_time, help="producer time of the first sample")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="persistent metadata, e.g. ContactId=..., InstanceId=..., CallId=...",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit status 2), like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callstream", description="Live call-audio streaming, KVS-compatible.")
    parser.add_argument("--version", action="version", version=f"callstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the KVS-compatible media store")
    p.add_argument("--data-dir", help="store directory (default: per-user data directory)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account-id", default="123456789012")
    p.add_argument(
        "--store",
        default="embedded",
        help="store backend: embedded (SQLite + files in --data-dir; the default), or "
        "nats://host:4222[,host2:4222...] (a NATS JetStream cluster shared by several nodes; "
        "the master keys in --data-dir/keys.json must be the same file on every node)",
    )
    p.add_argument(
        "--nats-replicas",
        type=int,
        choices=range(1, 6),
        metavar="N",
        help="--store nats://: copies JetStream keeps of each stream (default: 3 when the "
        "cluster has 3 or more servers, else 1)",
    )
    p.add_argument(
        "--nats-prefix",
        help="--store nats://: name of this deployment in the cluster (default: callstream)",
    )
    p.add_argument("--max-streams", type=int, default=10000)
    p.add_argument("--max-readers", type=int, default=3, help="GetMedia readers per stream")
    p.add_argument("--credentials-file", help="file of access keys (AWS INI or KEY:SECRET lines)")
    p.add_argument(
        "--public-url",
        help="base URL clients reach this server at, which GetDataEndpoint returns (default: as "
        "reached; with --store nats:// other nodes send live readers of streams this node "
        "ingests here)",
    )
    p.add_argument("--tls-cert", help="serve https with this certificate (PEM, chain after it)")
    p.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    p.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve https with a development CA kept in DATA_DIR/tls (prints how to trust it)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="a new connection must send its request headers within S seconds",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="close idle keep-alive connections after S seconds",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="an API request body must arrive within S seconds",
    )
    p.add_argument(
        "--max-client-connections",
        type=int,
        default=0,
        metavar="N",
        help="connections one client address may hold (0: a quarter of the fd limit)",
    )
    p.add_argument(
        "--memory-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="collect reference cycles and return freed heap every S seconds",
    )
    voice_commands.add_serve_options(p)
    analytics_commands.add_serve_options(p)
    ingest_commands.add_serve_options(p)
    p.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL[#detail-type=D&type=T,...&format=F]",
        help="POST call events to URL (repeatable; signed when CALLSTREAM_WEBHOOK_SECRET is set)",
    )
    p.add_argument(
        "--ui",
        choices=["on", "off"],
        default="on",
        help="the web UI at /ui (GET / redirects there); default on",
    )
    p.add_argument(
        "--ui-login",
        choices=["auto", "always"],
        default="auto",
        help="auto: the UI asks for an access key and secret unless the server listens on "
        "loopback only; always: on loopback too",
    )
    p.add_argument(
        "--webhooks-file",
        type=Path,
        metavar="FILE",
        help='webhooks from a JSON file: {"webhooks": [{"url": ..., "secret": ..., ...}]}',
    )
    p.add_argument(
        "--phone-numbers",
        metavar="POOL",
        help="numbers Connect's ClaimPhoneNumber hands out: E.164 numbers or patterns, "
        "comma-separated (default +1555010xxxx; kept in the data directory)",
    )
    p.add_argument(
        "--connect-lambda",
        action="append",
        default=[],
        metavar="ARN=module:function|ARN=URL",
        help="run this handler for a Lambda ARN associated with a Connect instance",
    )
    p.add_argument(
        "--connect-outbound-audio",
        metavar="WAV",
        help="what the customer says in StartOutboundVoiceContact contacts (default silence)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("inspect", help="print each fragment of an MKV/GetMedia payload as JSON")
    p.add_argument("file", help="MKV file or - for stdin")
    p.add_argument("--frames", action="store_true", help="add per-frame details")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("get-audio", help="extract call audio from a stream or a saved payload")
    src = p.add_argument_group("source")
    src.add_argument("--stream", help="stream name or ARN (GetMedia)")
    src.add_argument("--input", help="saved GetMedia payload or MKV file, - for stdin")
    src.add_argument("--endpoint-url", help="KVS endpoint (default: AWS)")
    src.add_argument("--region")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--start-fragment", help="fragment number N: audio from N itself on")
    start.add_argument("--start-timestamp", type=_parse_time, help="epoch seconds or ISO 8601")
    start.add_argument("--start", choices=["now", "earliest"], default=None)
    p.add_argument("--stop-timestamp", type=_parse_time, help="stop at this producer time")
    p.add_argument(
        "--track",
        choices=["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER", "all", "auto"],
        default="auto",
        help="all = stereo (ch0 customer, ch1 agent); auto = all when both tracks exist",
    )
    p.add_argument("--format", choices=["wav", "raw"], default="wav")
    p.add_argument("--out", help="output path (default: stdout)")
    p.add_argument(
        "--contact-id",
        help="the call to extract (ContactId, TransactionId or CallId; default: the first"
        " call in the selection); stops when the stream moves to another call",
    )
    p.add_argument("--all-contacts", action="store_true", help="do not stop when the call changes")
    p.set_defaults(func=cmd_get_audio)

    p = sub.add_parser("put-media", help="stream audio or an MKV file with PutMedia")
    p.add_argument("--stream", required=True, help="stream name or ARN")
    p.add_argument("--endpoint-url", help="KVS endpoint (default: AWS)")
    p.add_argument("--region")
    p.add_argument("--mkv", help="an MKV file to upload as is")
    p.add_argument("--realtime", action="store_true", help="pace fragments in real time")
    _audio_options(p)
    p.set_defaults(func=cmd_put_media)

    p = sub.add_parser("call", help="place a contact through an Amazon Connect flow")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--flow", help="exported Connect flow (JSON)")
    target.add_argument(
        "--to",
        metavar="NUMBER",
        help="call a number claimed on the server: runs the flow it is bound to with its "
        "instance's settings and Lambdas (on the server)",
    )
    p.add_argument("--from", dest="caller", metavar="NUMBER", help="the caller (with --to)")
    p.add_argument(
        "--also-flow",
        action="append",
        default=[],
        metavar="FLOW.json",
        help="more flows TransferToFlow may name",
    )
    p.add_argument("--customer-audio", required=True, help="WAV of what the customer says")
    p.add_argument("--agent-audio", help="WAV the agent says once the contact is queued")
    p.add_argument("--channel", choices=["VOICE", "CHAT", "TASK"], default="VOICE")
    p.add_argument("--attribute", action="append", default=[], metavar="K=V")
    p.add_argument(
        "--lambda",
        dest="lambda_",
        action="append",
        default=[],
        metavar="NAME=module:function|NAME=URL",
        help="bind a Lambda (NAME: ARN, function name, block Identifier or block name)",
    )
    p.add_argument("--dtmf", help="digits the customer types, entries separated by commas")
    p.add_argument("--endpoint-url", required=True, help="the callstream server")
    p.add_argument("--region")
    p.add_argument("--speed", type=float, default=1.0, help="play the call N times faster")
    inst = p.add_argument_group("instance settings (live media streaming)")
    inst.add_argument("--instance-alias", default="callstream")
    inst.add_argument("--stream-prefix", default="callstream", help="stream name prefix")
    inst.add_argument("--kms-key-id", help="KMS key the streams are encrypted with")
    inst.add_argument("--retention-hours", type=int, default=24, help="stream data retention")
    inst.add_argument(
        "--no-live-media-streaming",
        action="store_true",
        help="live media streaming disabled for the instance: streaming blocks error",
    )
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("contacts", help="list contact records (CTRs), or show one")
    p.add_argument("contact_id", nargs="?", help="a ContactId: print its CTR")
    p.add_argument("--endpoint-url", required=True, help="the callstream server")
    p.add_argument("--region")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--channel", choices=["VOICE", "CHAT", "TASK"])
    p.set_defaults(func=cmd_contacts)

    p = sub.add_parser("encode", help="write Connect- or Chime-shaped MKV from WAV audio")
    p.add_argument("--out", required=True, help="output MKV path, - for stdout")
    _audio_options(p)
    p.set_defaults(func=cmd_encode)

    voice_commands.add_commands(sub)
    analytics_commands.add_commands(sub)
    ingest_commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``callstream`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"callstream {args.command}: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"callstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a clear line, never a traceback
        name = type(err).__name__
        detail = str(err) or name
        if os.environ.get("CALLSTREAM_DEBUG"):
            raise
        print(f"callstream {args.command}: {detail} ({name})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
