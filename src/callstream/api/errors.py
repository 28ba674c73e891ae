"""Every error the KVS-compatible API can return, declared once.

KVS is a ``rest-json`` service: an error is an HTTP status, an ``x-amzn-ErrorType`` header
naming the error code, and a JSON body.  :data:`ERRORS` is the single table of codes,
statuses and default messages.  Statuses of modelled errors are those of the botocore
``kinesisvideo``, ``kinesis-video-media``, ``kinesis-video-archived-media`` and
``kinesis-video-signaling`` models; the authentication errors carry the 403 that real KVS
endpoints answer them with.  Nothing else in the API layer should spell an error code or
status as a literal: raise :class:`KvsError` and turn it into a response with
:func:`error_response_parts`.

Wire format produced (works with botocore, AWS JS SDK v3 and Java SDK v1)::

    HTTP/1.1 404
    x-amzn-RequestId: 6f1c...
    x-amzn-ErrorType: ResourceNotFoundException
    Content-Type: application/json

    {"__type":"ResourceNotFoundException","Message":"The requested stream is not found or not active."}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ERRORS",
    "ErrorSpec",
    "KvsError",
    "error_response_parts",
]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error table: the code, its HTTP status and its default message."""

    code: str
    status: int
    default_message: str


def _table(*specs: ErrorSpec) -> Mapping[str, ErrorSpec]:
    table: dict[str, ErrorSpec] = {}
    for spec in specs:
        if spec.code in table:  # pragma: no cover - guards the literal below
            raise AssertionError(f"duplicate error code {spec.code}")
        table[spec.code] = spec
    return MappingProxyType(table)


ERRORS: Mapping[str, ErrorSpec] = _table(
    # -- modelled KVS errors (botocore service models) -------------------------------------
    ErrorSpec(
        "ResourceNotFoundException",
        404,
        "The requested stream is not found or not active.",
    ),
    ErrorSpec(
        "ResourceInUseException",
        400,
        "The resource is currently not available for this operation.",
    ),
    ErrorSpec(
        "InvalidArgumentException",
        400,
        "The value for this input parameter is invalid.",
    ),
    ErrorSpec(
        "ClientLimitExceededException",
        400,
        "Kinesis Video Streams has throttled the request because you have exceeded the limit "
        "of allowed client calls. Try making the call later.",
    ),
    ErrorSpec(
        "AccountStreamLimitExceededException",
        400,
        "The number of streams created for the account is too high.",
    ),
    ErrorSpec("DeviceStreamLimitExceededException", 400, "Not implemented."),
    ErrorSpec("InvalidDeviceException", 400, "Not implemented."),
    ErrorSpec(
        "NotAuthorizedException",
        401,
        "The caller is not authorized to perform this operation.",
    ),
    ErrorSpec(
        "AccessDeniedException",
        401,
        "You do not have required permissions to perform this operation.",
    ),
    ErrorSpec(
        "VersionMismatchException",
        400,
        "The stream version that you specified is not the latest version.",
    ),
    ErrorSpec(
        "InvalidResourceFormatException",
        400,
        "The format of the StreamARN is invalid.",
    ),
    ErrorSpec(
        "TagsPerResourceExceededLimitException",
        400,
        "You have exceeded the limit of tags that you can associate with the resource. "
        "A Kinesis video stream can support up to 50 tags.",
    ),
    ErrorSpec(
        "NoDataRetentionException",
        400,
        "The stream does not retain data (DataRetentionInHours is 0).",
    ),
    ErrorSpec(
        "ConnectionLimitExceededException",
        400,
        "Kinesis Video Streams has throttled the request because you have exceeded the limit "
        "of allowed client connections.",
    ),
    ErrorSpec(
        "InvalidEndpointException",
        400,
        "Caller used wrong endpoint to write data to a stream. Call GetDataEndpoint with "
        "APIName set to PUT_MEDIA and use the endpoint from the response.",
    ),
    ErrorSpec(
        "UnsupportedStreamMediaTypeException",
        400,
        "The type of the media could not be determined from the codec IDs of the tracks "
        "in the first fragment.",
    ),
    ErrorSpec(
        "MissingCodecPrivateDataException",
        400,
        "No codec private data was found in at least one of tracks of the video stream.",
    ),
    ErrorSpec(
        "InvalidCodecPrivateDataException",
        400,
        "The codec private data in at least one of the tracks of the video stream is not "
        "valid for this operation.",
    ),
    ErrorSpec(
        "InvalidMediaFrameException",
        400,
        "One or more frames in the requested clip could not be parsed based on the "
        "specified codec.",
    ),
    # -- modelled errors of the signaling-channel / edge APIs and of kinesis-video-signaling
    ErrorSpec(
        "AccountChannelLimitExceededException",
        400,
        "You have reached the maximum limit of active signaling channels for this account "
        "in this region.",
    ),
    ErrorSpec(
        "StreamEdgeConfigurationNotFoundException",
        404,
        "The stream's edge configuration was not found.",
    ),
    ErrorSpec("InvalidClientException", 400, "The specified client is invalid."),
    ErrorSpec("SessionExpiredException", 400, "The client session has expired."),
    # -- protocol-level errors (not in the models; every AWS JSON service has them) -------
    ErrorSpec("SerializationException", 400, "The request body could not be parsed."),
    ErrorSpec("UnknownOperationException", 404, "Unknown operation."),
    ErrorSpec("RequestEntityTooLargeException", 413, "The request body is larger than allowed."),
    ErrorSpec(
        "RequestTimeoutException",
        408,
        "The request was not received within the time limit.",
    ),
    ErrorSpec(
        "InternalFailure",
        500,
        "The request processing has failed because of an unknown error, exception or failure.",
    ),
    # -- authentication errors (SigV4); real KVS answers these with 403 --------------------
    ErrorSpec("MissingAuthenticationTokenException", 403, "Missing Authentication Token"),
    ErrorSpec(
        "UnrecognizedClientException",
        403,
        "The security token included in the request is invalid.",
    ),
    ErrorSpec(
        "InvalidSignatureException",
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.",
    ),
    ErrorSpec(
        "IncompleteSignatureException",
        403,
        "The request signature does not conform to AWS standards.",
    ),
)


class KvsError(Exception):
    """An error response the API layer should send.

    ``code`` must be a key of :data:`ERRORS`; the HTTP status comes from the table and the
    message defaults to the table's default message::

        raise KvsError("ResourceNotFoundException")
        raise KvsError("InvalidArgumentException", "StreamName must match [a-zA-Z0-9_.-]+")
    """

    code: str
    message: str
    status: int

    def __init__(self, code: str, message: str | None = None) -> None:
        spec = ERRORS.get(code)
        if spec is None:
            raise ValueError(f"unknown KVS error code {code!r}; add it to callstream.api.errors")
        self.code = code
        self.message = spec.default_message if message is None else message
        self.status = spec.status
        super().__init__(f"{code}: {self.message}")

    @property
    def spec(self) -> ErrorSpec:
        """The table row for this error."""
        return ERRORS[self.code]

    def __repr__(self) -> str:
        return f"KvsError({self.code!r}, {self.message!r})"


def error_response_parts(err: KvsError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Serialize ``err`` as a rest-json error response: ``(status, headers, body)``.

    The code is sent both as ``x-amzn-ErrorType`` (what botocore and JS v3 read first) and as
    ``__type`` in the body (what Java v1 and older parsers read); the message is sent as
    ``Message``.  The caller adds framing headers such as ``Content-Length``.
    """
    body = json.dumps(
        {"__type": err.code, "Message": err.message},
        separators=(",", ":"),
    ).encode("utf-8")
    headers = {
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": err.code,
        "Content-Type": "application/json",
    }
    return err.status, headers, body
