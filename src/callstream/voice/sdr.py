"""Streaming detail records (SDRs), as Chime writes them to S3, under the data directory.

Chime Voice Connector writes an SDR when streaming ends, at the object key
``Amazon-Chime-Voice-Connector-SDRs/json/<VoiceConnectorId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>``
(call start time, UTC). Both legs of a call share the TransactionId and so that key: the
object holds one JSON record per line, one per leg, each with the documented SDR fields
(``SchemaVersion`` 1.0, ``AwsAccountId``, ``TransactionId``, ``CallId``,
``VoiceConnectorId``, ``StartTimeEpochSeconds``, ``EndTimeEpochSeconds``, ``Status``,
``StatusMessage``, ``ServiceCode``, ``UsageType``, ``BillableDurationSeconds``,
``Region``) plus callstream's ``StreamArn`` and ``IsCaller`` to say which leg it is.
The file is written whole (temporary file, fsync, rename): a reader never sees half.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callstream.durable import replace_file

__all__ = ["SDR_PREFIX", "LegRecord", "sdr_key", "write_sdr"]

SDR_PREFIX = "Amazon-Chime-Voice-Connector-SDRs/json"

_REGION_CODES = {
    "us-east-1": "USE1",
    "us-east-2": "USE2",
    "us-west-1": "USW1",
    "us-west-2": "USW2",
    "ca-central-1": "CAN1",
    "eu-west-1": "EU",
    "eu-west-2": "EUW2",
    "eu-west-3": "EUW3",
    "eu-central-1": "EUC1",
    "eu-north-1": "EUN1",
    "ap-northeast-1": "APN1",
    "ap-northeast-2": "APN2",
    "ap-southeast-1": "APS1",
    "ap-southeast-2": "APS2",
    "ap-south-1": "APS3",
    "sa-east-1": "SAE1",
}


@dataclass(frozen=True, slots=True)
class LegRecord:
    """What one leg's record says."""

    stream_arn: str
    is_caller: bool
    start_ms: int
    end_ms: int
    ok: bool
    message: str


def sdr_key(voice_connector_id: str, transaction_id: str, start_ms: int) -> str:
    """The object key of a call's SDR (relative to the data directory)."""
    t = time.gmtime(start_ms / 1000)
    stamp = time.strftime("%H.%M.%S", t) + f".{start_ms % 1000:03d}"
    day = time.strftime("%Y/%m/%d", t)
    return f"{SDR_PREFIX}/{voice_connector_id}/{day}/{stamp}_{transaction_id}"


def write_sdr(
    root: Path,
    *,
    voice_connector_id: str,
    transaction_id: str,
    call_id: str,
    call_start_ms: int,
    legs: Sequence[LegRecord],
    account_id: str,
    region: str,
) -> Path:
    """Write the SDR of a call's legs under ``root``; returns the file's path."""
    lines = []
    for leg in legs:
        start_s = leg.start_ms // 1000
        end_s = max(start_s, math.ceil(leg.end_ms / 1000))
        lines.append(
            json.dumps(
                {
                    "SchemaVersion": "1.0",
                    "AwsAccountId": account_id,
                    "TransactionId": transaction_id,
                    "CallId": call_id,
                    "VoiceConnectorId": voice_connector_id,
                    "StartTimeEpochSeconds": start_s,
                    "EndTimeEpochSeconds": end_s,
                    "Status": "Completed" if leg.ok else "Failed",
                    "StatusMessage": leg.message,
                    "ServiceCode": "AmazonChime",
                    "UsageType": f"{_REGION_CODES.get(region, 'USE1')}-VC-kinesis-audio-streaming",
                    "BillableDurationSeconds": end_s - start_s,
                    "Region": region,
                    "StreamArn": leg.stream_arn,
                    "IsCaller": leg.is_caller,
                },
                separators=(",", ":"),
            )
        )
    path = root / sdr_key(voice_connector_id, transaction_id, call_start_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o666)
    return path
