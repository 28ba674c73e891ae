"""Other people's clients against the server, unchanged but for the endpoint: the AWS CLI
and the AWS SDK for JavaScript v3 (``tests/server/js``, installed with ``npm ci``)."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Kvs,
    clusters_of,
    connect_audio,
    tag_values,
    unique,
)

JS_DIR = Path(__file__).resolve().parent / "js"
JS_SDK_PACKAGES = (
    "client-kinesis-video",
    "client-kinesis-video-media",
    "client-kinesis-video-archived-media",
)


def client_env() -> dict[str, str]:
    """Credentials in the environment, no user configuration."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("AWS_"):
            del env[key]
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        NODE_NO_WARNINGS="1",
    )
    return env


# --- AWS CLI ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws() -> str:
    path = shutil.which("aws")
    if path is None:
        pytest.skip("the AWS CLI (`aws`) is not installed")
    return path


def run_aws(aws: str, kvs: Kvs, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [aws, *args, "--endpoint-url", kvs.url, "--output", "json"],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def aws_json(aws: str, kvs: Kvs, *args: str) -> Any:
    return json.loads(run_aws(aws, kvs, *args).stdout or "{}")


def test_aws_cli(aws: str, kvs: Kvs, tmp_path: Path) -> None:
    name = unique("cli")
    arn = aws_json(
        aws, kvs, "kinesisvideo", "create-stream", "--stream-name", name,
        "--data-retention-in-hours", "24", "--media-type", "audio/L16",
    )["StreamARN"]  # fmt: skip
    assert arn.startswith("arn:aws:kinesisvideo:us-east-1:") and f"/{name}/" in arn
    info = aws_json(aws, kvs, "kinesisvideo", "describe-stream", "--stream-name", name)
    assert info["StreamInfo"]["StreamARN"] == arn
    listed = aws_json(aws, kvs, "kinesisvideo", "list-streams")
    assert name in {s["StreamName"] for s in listed["StreamInfoList"]}

    audio = connect_audio(3)
    result = kvs.put(name, audio.chunks)
    numbers = [a["FragmentNumber"] for a in result.of("PERSISTED")]
    fragments = aws_json(
        aws, kvs, "kinesis-video-archived-media", "list-fragments", "--stream-name", name
    )["Fragments"]
    assert sorted(f["FragmentNumber"] for f in fragments) == numbers

    outfile = tmp_path / "media.mkv"
    meta = aws_json(
        aws, kvs, "kinesis-video-media", "get-media", "--stream-name", name,
        "--start-selector", "StartSelectorType=EARLIEST", str(outfile),
    )  # fmt: skip
    assert meta["ContentType"] == "video/webm"
    data = outfile.read_bytes()
    assert tag_values(data, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") == numbers
    assert clusters_of(data) == clusters_of(b"".join(audio.chunks))

    clip = tmp_path / "clip.wav"
    # (older botocore, as in AWS CLI v1, truncates request timestamps to whole seconds)
    start, end = audio.starts_ms[0] // 1000, audio.starts_ms[-1] // 1000 + 1
    meta = aws_json(
        aws, kvs, "kinesis-video-archived-media", "get-clip", "--stream-name", name,
        "--clip-fragment-selector",
        f"FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={{StartTimestamp={start},EndTimestamp={end}}}",
        str(clip),
    )  # fmt: skip
    assert meta["ContentType"] == "audio/wav"
    with wave.open(io.BytesIO(clip.read_bytes())) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 3 * 1600)

    missing = run_aws(
        aws, kvs, "kinesisvideo", "describe-stream", "--stream-name", unique(), check=False
    )
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
    wrong = subprocess.run(
        [aws, "kinesisvideo", "list-streams", "--endpoint-url", kvs.url],
        capture_output=True,
        text=True,
        env={**client_env(), "AWS_SECRET_ACCESS_KEY": "wrong"},
        timeout=120,
    )
    assert wrong.returncode != 0 and "InvalidSignatureException" in wrong.stderr


# --- AWS SDK for JavaScript v3 ----------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # parallel workers install once
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed() -> bool:
    return all(
        (JS_DIR / "node_modules" / "@aws-sdk" / pkg / "package.json").is_file()
        for pkg in JS_SDK_PACKAGES
    )


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    if not _installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed; cannot install the AWS SDK for JavaScript v3")
        with _locked(JS_DIR / ".npm-install.lock"):
            if not _installed():
                try:
                    proc = subprocess.run(
                        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                        cwd=JS_DIR,
                        capture_output=True,
                        text=True,
                        timeout=300,
                    )
                except subprocess.TimeoutExpired:
                    pytest.skip("`npm ci` in tests/server/js timed out")
                if proc.returncode != 0 or not _installed():
                    pytest.skip(f"`npm ci` in tests/server/js failed: {proc.stderr[-500:]}")
    return path


def run_node(node: str, *args: str) -> Any:
    proc = subprocess.run(
        [node, str(JS_DIR / "smoke.mjs"), *args],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=120,
        cwd=JS_DIR,
    )
    if proc.returncode != 0:
        raise AssertionError(f"node smoke.mjs {args[0]} failed: {proc.stderr}")
    return json.loads(proc.stdout)


def test_aws_sdk_js_v3(node: str, kvs: Kvs, tmp_path: Path) -> None:
    name = unique("js")
    created = run_node(node, "create", kvs.url, name)
    info = created["StreamInfo"]
    assert info["StreamName"] == name and info["StreamARN"] == created["StreamARN"]
    assert info["CreationTimeIsDate"] is True  # the SDK accepted a JSON-number timestamp
    assert str(info["CreationTime"]) == created["StreamARN"].rsplit("/", 1)[1]
    assert info["DataRetentionInHours"] == 24 and info["Status"] == "ACTIVE"
    assert created["listed"] == [name]
    assert created["missing"]["name"] == "ResourceNotFoundException"
    assert created["missing"]["status"] == 404

    audio = connect_audio(3)
    result = kvs.put(name, audio.chunks)
    numbers = [a["FragmentNumber"] for a in result.of("PERSISTED")]
    out = tmp_path / "js-media.mkv"
    read = run_node(node, "read", kvs.url, name, str(out))
    assert read["endpoints"] == {"LIST_FRAGMENTS": kvs.url, "GET_MEDIA": kvs.url}
    assert [f["FragmentNumber"] for f in read["fragments"]] == numbers
    assert [f["ProducerTimestamp"] for f in read["fragments"]] == audio.starts_ms
    assert read["contentType"] == "video/webm"
    data = out.read_bytes()
    assert len(data) == read["bytes"]
    assert tag_values(data, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") == numbers
    assert clusters_of(data) == clusters_of(b"".join(audio.chunks))
