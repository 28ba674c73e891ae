"""The ``callstream`` command line, end to end: real processes, a real server, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.media.wav import read_wav, write_wav
from shared_data import SHARED

KEY, SECRET = "AKIDCLITEST", "cli-secret"


def lca_flow() -> Path:
    """The published LCA contact flow; skips the test when ../shared is absent."""
    flow = SHARED / "testdata" / "connect-flows" / "lca-contact-flow.json"
    if not flow.exists():
        pytest.skip(f"shared test data not found at {flow}")
    return flow


def cli(
    *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "callstream.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"callstream {args[0]} failed: {proc.stderr.decode()}")
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={KEY: SECRET}, live_idle_timeout_s=0.5)
    with ServerThread(tmp_path_factory.mktemp("store"), config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def kv(server: ServerThread) -> Any:
    return boto3.client(
        "kinesisvideo",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture()
def call_wav(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    samples = rng.integers(-8000, 8000, size=(8000 * 5 + 77, 2)).astype(np.int16)
    path = tmp_path / "call.wav"
    write_wav(path, samples, 8000)
    return path, samples


def test_put_media_then_get_audio_from_a_fragment_is_sample_exact(
    server: ServerThread, kv: Any, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, samples = call_wav
    kv.create_stream(StreamName="cli-a", DataRetentionInHours=1)
    out = cli("put-media", "--stream", "cli-a", "--endpoint-url", server.url, "--wav", str(wav))
    acks = [json.loads(line) for line in out.stdout.decode().splitlines()]
    buffering = [a for a in acks if a["EventType"] == "BUFFERING"]
    persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
    assert len(buffering) == len(persisted) == 6  # 5.01 s in 1 s fragments
    # from fragment N on: exactly the audio sent from that fragment's first sample
    third = buffering[2]["FragmentNumber"]
    part = tmp_path / "part.wav"
    cli(
        "get-audio",
        "--stream",
        "cli-a",
        "--endpoint-url",
        server.url,
        "--start-fragment",
        third,
        "--track",
        "all",
        "--out",
        str(part),
    )
    got = read_wav(part)
    assert got.channels == 2 and got.rate == 8000
    np.testing.assert_array_equal(got.samples, samples[16000:])
    # each mono track alone
    for track, channel in (("AUDIO_FROM_CUSTOMER", 0), ("AUDIO_TO_CUSTOMER", 1)):
        mono = tmp_path / f"{track}.wav"
        cli(
            "get-audio",
            "--stream",
            "cli-a",
            "--endpoint-url",
            server.url,
            "--start",
            "earliest",
            "--track",
            track,
            "--out",
            str(mono),
        )
        np.testing.assert_array_equal(read_wav(mono).samples[:, 0], samples[:, channel])


def test_get_audio_contact_window_on_a_pooled_stream(
    server: ServerThread, kv: Any, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, samples = call_wav
    kv.create_stream(StreamName="cli-pool", DataRetentionInHours=1)
    start = time.time()
    for n, contact in enumerate(("contact-1", "contact-2")):
        cli(
            "put-media",
            "--stream",
            "cli-pool",
            "--endpoint-url",
            server.url,
            "--wav",
            str(wav),
            "--tag",
            f"ContactId={contact}",
            "--start-timestamp",
            str(start + 10 * n),
        )
    for contact in ("contact-1", "contact-2"):
        out = tmp_path / f"{contact}.wav"
        cli(
            "get-audio",
            "--stream",
            "cli-pool",
            "--endpoint-url",
            server.url,
            "--contact-id",
            contact,
            "--out",
            str(out),
        )
        np.testing.assert_array_equal(read_wav(out).samples, samples)


@pytest.mark.parametrize("shape_args", [[], ["--swap-tracks"], ["--codec", "pcm"]])
def test_encode_inspect_get_audio_round_trip_is_bit_exact(
    call_wav: tuple[Path, np.ndarray], tmp_path: Path, shape_args: list[str]
) -> None:
    wav, samples = call_wav
    mkv = tmp_path / "call.mkv"
    cli("encode", "--wav", str(wav), "--out", str(mkv), "--tag", "ContactId=c-9", *shape_args)
    lines = cli("inspect", str(mkv)).stdout.decode().splitlines()
    fragments = [json.loads(line) for line in lines]
    assert len(fragments) == 6
    assert all(f["tags"]["ContactId"] == "c-9" for f in fragments)
    names = {t["number"]: t["name"] for t in fragments[0]["tracks"]}
    expected = (
        {1: "AUDIO_TO_CUSTOMER", 2: "AUDIO_FROM_CUSTOMER"}
        if shape_args == ["--swap-tracks"]
        else {1: "AUDIO_FROM_CUSTOMER", 2: "AUDIO_TO_CUSTOMER"}
    )
    assert names == expected
    assert fragments[0]["frames_per_track"] == {"1": 50, "2": 50}
    back = tmp_path / "back.wav"
    cli("get-audio", "--input", str(mkv), "--out", str(back))
    np.testing.assert_array_equal(read_wav(back).samples, samples)
    # also through a pipe, raw PCM
    raw = cli(
        "get-audio",
        "--input",
        "-",
        "--format",
        "raw",
        "--track",
        "AUDIO_TO_CUSTOMER",
        stdin=mkv.read_bytes(),
    ).stdout
    np.testing.assert_array_equal(np.frombuffer(raw, "<i2"), samples[:, 1])


def test_chime_shape_round_trip(tmp_path: Path) -> None:
    mono = np.arange(-4000, 4000, 3, dtype=np.int16)
    wav = tmp_path / "leg.wav"
    write_wav(wav, mono, 8000)
    mkv = tmp_path / "leg.mkv"
    cli(
        "encode",
        "--shape",
        "chime",
        "--wav",
        str(wav),
        "--out",
        str(mkv),
        "--tag",
        "TransactionId=t-1",
        "--tag",
        "CallId=call-1",
    )
    first = json.loads(cli("inspect", str(mkv)).stdout.decode().splitlines()[0])
    assert first["tags"]["TransactionId"] == "t-1" and first["tags"]["CallId"] == "call-1"
    assert len(first["tracks"]) == 1
    back = tmp_path / "back.wav"
    cli("get-audio", "--input", str(mkv), "--out", str(back))  # auto: mono for one leg
    got = read_wav(back)
    assert got.channels == 1
    np.testing.assert_array_equal(got.samples[:, 0], mono)


def test_inspect_frames_and_capture(tmp_path: Path) -> None:
    capture = SHARED / "testdata" / "kvs" / "output_get_media.mkv"
    if not capture.exists():
        pytest.skip(f"shared test data not found at {capture}")
    lines = cli("inspect", "--frames", str(capture)).stdout.decode().splitlines()
    fragments = [json.loads(line) for line in lines]
    assert [f["fragment_number"][-6:] for f in fragments][:1] == ["169392"]
    assert len(fragments) == 5 and all(len(f["frames"]) == 60 for f in fragments)
    assert fragments[0]["server_timestamp"] == 1511852109.126
    assert fragments[0]["millis_behind_now"] == 15858


@pytest.mark.parametrize(
    ("args", "stdin", "expect"),
    [
        (["inspect", "-"], b"\x1aE\xdf\xa3\x88garbage", "byte offset"),
        (["inspect", "/nonexistent.mkv"], None, "cannot open"),
        (["get-audio", "--input", "-", "--format", "raw"], b"", "no audio"),
        (["get-audio", "--format", "raw"], None, "exactly one source"),
        (
            ["put-media", "--stream", "s", "--endpoint-url", "http://127.0.0.1:9"],
            None,
            "one source",
        ),
        (["encode", "--wav", "/nonexistent.wav", "--out", "-"], None, "nonexistent"),
    ],
)
def test_bad_usage_and_input_give_one_line_and_no_traceback(
    args: list[str], stdin: bytes | None, expect: str
) -> None:
    proc = cli(*args, stdin=stdin, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert expect in err
    assert len(err.strip().splitlines()) == 1


def test_contact_records_over_the_api_and_the_cli(server: ServerThread) -> None:
    from botocore.credentials import Credentials

    from callstream.cli import signed_request

    for n, channel in enumerate(("VOICE", "CHAT")):
        ctr = {
            "ContactId": f"contact-{n}",
            "Channel": channel,
            "InitiationTimestamp": f"2026-11-22T10:0{n}:00Z",
        }
        status, _ = signed_request(
            "POST",
            server.url + "/callstream/contacts",
            region="us-east-1",
            body=json.dumps(ctr).encode(),
            credentials=Credentials(KEY, SECRET),
        )
        assert status == 200
    listed = [
        json.loads(x) for x in cli("contacts", "--endpoint-url", server.url).stdout.splitlines()
    ]
    assert [c["ContactId"] for c in listed] == ["contact-1", "contact-0"]  # newest first
    voice = cli("contacts", "--endpoint-url", server.url, "--channel", "VOICE").stdout.splitlines()
    assert [json.loads(x)["ContactId"] for x in voice] == ["contact-0"]
    one = json.loads(cli("contacts", "contact-1", "--endpoint-url", server.url).stdout)
    assert one["Channel"] == "CHAT"
    missing = cli("contacts", "nope", "--endpoint-url", server.url, check=False)
    assert missing.returncode == 1 and b"HTTP 404" in missing.stderr
    # unsigned requests are refused like every other API
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "/callstream/contacts", timeout=10)
    assert err.value.code == 403


def test_call_runs_the_lca_flow_and_stores_the_ctr(
    server: ServerThread, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    flow = lca_flow()
    wav, samples = call_wav
    handler = Path(__file__).parent / "flows" / "lca_handlers.py"
    proc = cli(
        "call",
        "--flow",
        str(flow),
        "--customer-audio",
        str(wav),
        "--endpoint-url",
        server.url,
        "--lambda",
        f"StartLCA={handler}:start_lca",
        "--speed",
        "8",
    )
    ctr = json.loads(proc.stdout)
    assert ctr["Channel"] == "VOICE" and ctr["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    recording = ctr["Recordings"][0]
    start = recording["FragmentStartNumber"]
    stored = json.loads(cli("contacts", ctr["ContactId"], "--endpoint-url", server.url).stdout)
    assert stored["Recordings"][0]["FragmentStartNumber"] == start
    # the customer's audio from the moment streaming started, sample-exact
    stream = recording["Location"].split("/")[1]
    out = tmp_path / "from-start.wav"
    cli(
        "get-audio",
        "--stream",
        stream,
        "--endpoint-url",
        server.url,
        "--start-fragment",
        start,
        "--track",
        "AUDIO_FROM_CUSTOMER",
        "--out",
        str(out),
    )
    got = read_wav(out).samples[:, 0]
    offset = len(samples) - len(got)
    assert 0 < offset < len(samples)
    np.testing.assert_array_equal(got, samples[offset:, 0])
    # broken flows and bad bindings: one line, no traceback
    broken = tmp_path / "broken.json"
    data = json.loads(flow.read_text())
    data["Actions"][0]["Transitions"]["NextAction"] = "no-such-action"
    broken.write_text(json.dumps(data))
    bad = cli(
        "call",
        "--flow",
        str(broken),
        "--customer-audio",
        str(wav),
        "--endpoint-url",
        server.url,
        check=False,
    )
    assert bad.returncode == 1 and "no-such-action" in bad.stderr.decode()
    assert "Traceback" not in bad.stderr.decode()


def test_get_audio_takes_one_call_of_a_pooled_stream_by_default(
    call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, samples = call_wav
    files = []
    for n, contact in enumerate(("first", "second")):
        mkv = tmp_path / f"{contact}.mkv"
        cli(
            "encode",
            "--wav",
            str(wav),
            "--out",
            str(mkv),
            "--tag",
            f"ContactId={contact}",
            "--start-timestamp",
            str(1_700_000_000 + 10 * n),
        )
        files.append(mkv.read_bytes())
    pooled = tmp_path / "pooled.mkv"
    pooled.write_bytes(b"".join(files))

    def extract(*extra: str) -> np.ndarray:
        out = tmp_path / "out.wav"
        cli("get-audio", "--input", str(pooled), "--out", str(out), *extra)
        return read_wav(out).samples

    np.testing.assert_array_equal(extract(), samples)  # the first call only
    np.testing.assert_array_equal(extract("--contact-id", "second"), samples)
    both = extract("--all-contacts")  # 10 s apart: the gap between the calls is silence
    assert len(both) == 8000 * 10 + len(samples)
    np.testing.assert_array_equal(both[: len(samples)], samples)
    np.testing.assert_array_equal(both[8000 * 10 :], samples)
    assert not both[len(samples) : 8000 * 10].any()


def test_get_audio_from_a_cut_off_file_writes_what_arrived_and_says_so(
    call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, samples = call_wav
    mkv = tmp_path / "call.mkv"
    cli("encode", "--wav", str(wav), "--out", str(mkv))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv.read_bytes()[:-100])  # the last block is cut off mid-way
    out = tmp_path / "out.wav"
    proc = cli("get-audio", "--input", str(cut), "--out", str(out), check=False)
    assert proc.returncode == 1 and b"invalid MKV" in proc.stderr
    got = read_wav(out).samples
    assert len(got) == len(samples)  # the customer's last frame arrived whole
    np.testing.assert_array_equal(got[:, 0], samples[:, 0])
    # the agent's last block was cut: everything before it is there, the rest is silence
    np.testing.assert_array_equal(got[:-160, 1], samples[:-160, 1])
    lines = cli("inspect", str(cut), check=False).stdout.splitlines()
    assert len(lines) == 6  # every fragment printed, the cut one too


def test_get_audio_start_timestamp_on_a_file(
    call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, samples = call_wav
    mkv = tmp_path / "call.mkv"
    cli("encode", "--wav", str(wav), "--out", str(mkv), "--start-timestamp", "1700000000")
    out = tmp_path / "out.wav"
    # 2.5 s in: starts with the fragment holding that time (the one starting at 2 s)
    cli(
        "get-audio",
        "--input",
        str(mkv),
        "--out",
        str(out),
        "--start-timestamp",
        "2023-11-14T22:13:22.500",
    )  # no zone: UTC, = 1700000002.5
    np.testing.assert_array_equal(read_wav(out).samples, samples[16000:])


def test_get_audio_start_timestamp_on_a_stream(
    server: ServerThread, kv: Any, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """As on a file, to the millisecond: GetMedia starts with the fragment holding the
    time, not one holding an earlier time (botocore before 1.43.93 sends whole seconds)."""
    wav, samples = call_wav
    kv.create_stream(StreamName="cli-start-ts", DataRetentionInHours=1)
    put = ["put-media", "--stream", "cli-start-ts", "--endpoint-url", server.url]
    cli(*put, "--wav", str(wav), "--start-timestamp", "1700000000.5")  # 1 s fragments
    out = tmp_path / "out.wav"
    # 2.2 s in: the fragment starting 2 s in (1700000002.5), not the one holding 1700000002
    get = ["get-audio", "--stream", "cli-start-ts", "--endpoint-url", server.url]
    cli(*get, "--out", str(out), "--start-timestamp", "1700000002.7")
    np.testing.assert_array_equal(read_wav(out).samples, samples[16000:])


def test_a_chime_leg_asked_for_in_stereo_streams_with_a_silent_agent_channel(
    tmp_path: Path,
) -> None:
    mono = (np.arange(8000 * 3) % 2000 - 1000).astype(np.int16)
    wav = tmp_path / "leg.wav"
    write_wav(wav, mono, 8000)
    mkv = tmp_path / "leg.mkv"
    cli("encode", "--shape", "chime", "--wav", str(wav), "--out", str(mkv))
    raw = cli("get-audio", "--input", str(mkv), "--track", "all", "--format", "raw").stdout
    stereo = np.frombuffer(raw, "<i2").reshape(-1, 2)
    np.testing.assert_array_equal(stereo[:, 0], mono)
    assert not stereo[:, 1].any()

    from callstream.media.extract import AudioExtractor, Selection
    from callstream.mkv import iter_fragments

    extractor = AudioExtractor(Selection.ALL)
    first = extractor.add(next(iter(iter_fragments([mkv.read_bytes()]))))
    assert len(first) == 8000 * 4  # 1 s of stereo right away, not at the end


def test_call_with_a_lambda_that_never_returns_ends_and_imports_from_cwd(
    server: ServerThread, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """The installed command imports `module:function` handlers from the working
    directory, and a handler that never returns takes the Error branch at the block's
    time limit without keeping the command alive (else the command would never exit)."""
    import shutil

    flow_path = lca_flow()
    exe = shutil.which("callstream")
    if exe is None:
        pytest.skip("the callstream console script is not installed")
    wav, _ = call_wav
    (tmp_path / "stuck_handlers.py").write_text(
        "import threading\ndef handler(event, context):\n    threading.Event().wait()\n"
    )
    flow = json.loads(flow_path.read_text())
    for action in flow["Actions"]:
        if action["Type"] == "InvokeLambdaFunction":
            action["Parameters"]["InvocationTimeLimitSeconds"] = "1"
    (tmp_path / "flow.json").write_text(json.dumps(flow))
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = subprocess.run(
        [
            exe,
            "call",
            "--flow",
            "flow.json",
            "--customer-audio",
            str(wav),
            "--lambda",
            "StartLCA=stuck_handlers:handler",
            "--endpoint-url",
            server.url,
            "--speed",
            "1.5",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,  # a command that waits for the handler fails here instead of hanging
    )
    assert proc.returncode == 0, proc.stderr.decode()
    log = proc.stderr.decode()
    assert "timed out after 1 s" in log and "Error NoMatchingError" in log


def test_call_instance_settings_name_the_stream_or_disable_streaming(
    server: ServerThread, call_wav: tuple[Path, np.ndarray]
) -> None:
    flow = lca_flow()
    wav, _ = call_wav
    base = [
        "call",
        "--flow",
        str(flow),
        "--customer-audio",
        str(wav),
        "--endpoint-url",
        server.url,
        "--speed",
        "10",
    ]
    named = json.loads(cli(*base, "--stream-prefix", "acme", "--instance-alias", "shop").stdout)
    location = named["Recordings"][0]["Location"]
    assert f"stream/acme-connect-shop-contact-{named['ContactId']}/" in location
    off = cli(*base, "--no-live-media-streaming")
    assert not json.loads(off.stdout).get("Recordings")
    assert b"UpdateContactMediaStreamingBehavior" in off.stderr and b"Error" in off.stderr


# --- empty, unreadable and out-of-range inputs: one line each ---------------------------------


def one_line_error(proc: subprocess.CompletedProcess[bytes], status: int = 1) -> str:
    """The single stderr line of a failed command (asserts there is exactly one)."""
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_inspect_an_empty_file_or_stdin_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    assert one_line_error(cli("inspect", str(empty), check=False)) == (
        f"callstream inspect: {empty} is empty"
    )
    proc = cli("inspect", "-", stdin=b"", check=False)
    assert one_line_error(proc) == "callstream inspect: stdin is empty"
    assert proc.stdout == b""


def test_put_media_of_an_empty_or_missing_mkv_says_so(
    server: ServerThread, kv: Any, tmp_path: Path
) -> None:
    kv.create_stream(StreamName="cli-empty", DataRetentionInHours=1)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    base = ["put-media", "--stream", "cli-empty", "--endpoint-url", server.url, "--mkv"]
    proc = cli(*base, str(empty), check=False)
    assert one_line_error(proc) == f"callstream put-media: {empty} is empty"
    assert proc.stdout == b""
    missing = one_line_error(cli(*base, str(tmp_path / "nope.mkv"), check=False))
    assert missing.endswith("nope.mkv: No such file or directory")
    assert "cannot open" in missing and "Errno" not in missing
    assert kv.list_streams()["StreamInfoList"]  # the server is still fine


def test_get_audio_with_a_bad_start_fragment_prints_one_line(
    server: ServerThread, kv: Any, tmp_path: Path
) -> None:
    """GetMediaForFragmentList's warning used to come first, then the GetMedia error."""
    kv.create_stream(StreamName="cli-frag", DataRetentionInHours=1)
    out = str(tmp_path / "o.wav")
    for source in (["--stream", "cli-frag", "--endpoint-url", server.url], ["--input", "-"]):
        proc = cli("get-audio", *source, "--start-fragment", "abc", "--out", out, check=False)
        assert one_line_error(proc) == (
            "callstream get-audio: --start-fragment expects a fragment number (1-128 digits),"
            " got 'abc'"
        )


def test_usage_errors_are_one_line_too() -> None:
    proc = cli("get-audio", "--stream", "s", "--start-timestamp", "abc", check=False)
    assert one_line_error(proc, status=2) == (
        "callstream get-audio: argument --start-timestamp: not a timestamp: 'abc'"
        " (see callstream get-audio --help)"
    )
    line = one_line_error(cli(check=False), status=2)
    assert line.startswith("callstream: the following arguments are required: COMMAND")


def test_serve_with_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "store"
    afile.write_text("not a directory")
    line = one_line_error(cli("serve", "--data-dir", str(afile), "--port", "0", check=False))
    assert line == f"callstream serve: --data-dir {afile} is a file, not a directory"
    under = afile / "sub"
    line = one_line_error(cli("serve", "--data-dir", str(under), "--port", "0", check=False))
    assert line == f"callstream serve: --data-dir {under}: cannot create it: Not a directory"
    assert afile.read_text() == "not a directory"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_serve_with_an_unwritable_data_dir(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        line = one_line_error(cli("serve", "--data-dir", str(locked), "--port", "0", check=False))
        assert line == f"callstream serve: --data-dir {locked} is not writable"
        sub = locked / "sub"
        line = one_line_error(cli("serve", "--data-dir", str(sub), "--port", "0", check=False))
        assert line == f"callstream serve: --data-dir {sub}: cannot create it: Permission denied"
    finally:
        locked.chmod(0o700)


def test_serve_with_a_data_dir_in_use_by_another_server(tmp_path: Path) -> None:
    with ServerThread(tmp_path / "store") as running:
        line = one_line_error(
            cli("serve", "--data-dir", str(tmp_path / "store"), "--port", "0", check=False)
        )
        assert line == (
            f"callstream serve: --data-dir {tmp_path / 'store'} is in use by another"
            " callstream server"
        )
        import urllib.request

        with urllib.request.urlopen(running.url + "/callstream/contacts", timeout=10) as resp:
            assert resp.status == 200  # still serving


def test_serve_on_a_busy_or_impossible_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(
            cli("serve", "--data-dir", str(tmp_path), "--port", str(port), check=False)
        )
    assert line.startswith(f"callstream serve: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line
    line = one_line_error(cli("serve", "--data-dir", str(tmp_path), "--port", "70000", check=False))
    assert line == "callstream serve: --port must be 0..65535, got 70000"
    line = one_line_error(
        cli("serve", "--data-dir", str(tmp_path), "--max-streams", "0", check=False)
    )
    assert line == "callstream serve: --max-streams must be at least 1, got 0"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (
            ["contacts", "--endpoint-url", "http://127.0.0.1:9", "--limit", "0"],
            "callstream contacts: --limit must be at least 1, got 0",
        ),
        (
            ["encode", "--wav", "{wav}", "--out", "-", "--fragment-ms", "0"],
            "callstream encode: --fragment-ms must be a positive number of milliseconds, got 0",
        ),
        (
            ["encode", "--wav", "{wav}", "--out", "-", "--frame-ms", "-20"],
            "callstream encode: --frame-ms must be a positive number of milliseconds, got -20",
        ),
        (
            ["encode", "--wav", "{wav}", "--out", "{tmp}/no/such/dir/x.mkv"],
            "callstream encode: cannot write {tmp}/no/such/dir/x.mkv: No such file or directory",
        ),
        (
            ["get-audio", "--input", "-", "--out", "{tmp}/no/such/dir/x.wav"],
            "callstream get-audio: cannot write {tmp}/no/such/dir/x.wav: No such file or directory",
        ),
        (
            ["call", "--flow", "{empty}", "--customer-audio", "{wav}"],
            "callstream call: {empty} is empty",
        ),
        (
            ["call", "--flow", "{flow}", "--also-flow", "{empty}", "--customer-audio", "{wav}"],
            "callstream call: {empty} is empty",
        ),
        (
            ["call", "--flow", "{flow}", "--also-flow", "{broken}", "--customer-audio", "{wav}"],
            "callstream call: {broken}: flow 'broken': action 'hi': Transitions.Errors must be"
            " a list",
        ),
        (
            ["call", "--flow", "{flow}", "--customer-audio", "{wav}", "--retention-hours", "-1"],
            "callstream call: --retention-hours must be 0 or more, got -1",
        ),
    ],
    ids=[
        "contacts limit",
        "fragment-ms",
        "frame-ms",
        "encode out",
        "get-audio out",
        "empty flow",
        "empty also-flow",
        "broken also-flow",
        "retention",
    ],
)
def test_bad_numbers_and_files_give_one_clear_line(
    args: list[str], expect: str, call_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wav, _ = call_wav
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    hi = {"Identifier": "hi", "Type": "MessageParticipant", "Parameters": {"Text": "Hi"}}
    bye = {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}}
    doc = {"Version": "2019-10-30", "StartAction": "hi", "Metadata": {"name": "broken"}}
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps({**doc, "Actions": [{**hi, "Transitions": {"NextAction": "bye"}}, bye]})
    )
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps({**doc, "Actions": [{**hi, "Transitions": {"Errors": True}}, bye]})
    )
    names = {"wav": wav, "tmp": tmp_path, "empty": empty, "flow": flow, "broken": broken}
    argv = [a.format(**names) for a in args]
    if argv[0] == "call":
        argv += ["--endpoint-url", "http://127.0.0.1:9"]
    assert one_line_error(cli(*argv, stdin=b"", check=False)) == expect.format(**names)
