"""Request shapes of the KVS JSON operations, botocore style, and their validator.

Each API module declares its operations once, as a table of :class:`Operation` rows
(name, path, input :class:`Structure`, handler); :func:`routes` turns the table into the
``path -> Handler`` map the app dispatches on. The handler receives the request body only
after it has passed the input rules, which mirror the constraints of the botocore service
models (kvs-wire §1.3, §3): lengths, patterns, enums, ranges, required members.

Failures are reported like AWS does::

    InvalidArgumentException: 1 validation error detected: Value 'a b' at 'StreamName'
    failed to satisfy constraint: Member must satisfy regular expression pattern:
    [a-zA-Z0-9_.-]+

A JSON value of the wrong type (a string where a number belongs) is a
``SerializationException``, as on AWS. A rule can name a more specific error code
(e.g. ``TagsPerResourceExceededLimitException`` for more than 50 tags).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

from aiohttp import web

from callstream.api.app import Handler, ServerState, read_json
from callstream.api.errors import KvsError

__all__ = [
    "Body",
    "Boolean",
    "Enum",
    "Integer",
    "ListOf",
    "MapOf",
    "Operation",
    "OperationHandler",
    "Shape",
    "String",
    "Structure",
    "Timestamp",
    "routes",
    "tag_text",
    "validate",
]

Body = dict[str, Any]
OperationHandler = Callable[[web.Request, ServerState, Body], Awaitable[web.StreamResponse]]

_INVALID = "InvalidArgumentException"
_SERIALIZATION = "SerializationException"


class Shape:
    """Base of the input rules."""

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        raise NotImplementedError


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _violation(value: Any, path: str, rule: str) -> str:
    return f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member must {rule}"


def _serialization(path: str, kind: str) -> KvsError:
    return KvsError(_SERIALIZATION, f"Expected {kind} at '{path}'.")


@dataclass(frozen=True, slots=True)
class String(Shape):
    """A string with length bounds and a pattern (a regex, or a predicate for the
    ``\\p{L}``-style classes Python's ``re`` lacks; ``pattern_text`` is what errors show)."""

    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    predicate: Callable[[str], bool] | None = None
    error: str = _INVALID
    _compiled: re.Pattern[str] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.pattern is not None and self.predicate is None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, str):
            raise _serialization(path, "a string")
        if len(value) < self.min_len:
            errors.append((self.error, _violation(value, path, f"have length >= {self.min_len}")))
        elif self.max_len is not None and len(value) > self.max_len:
            errors.append((self.error, _violation(value, path, f"have length <= {self.max_len}")))
        elif value and self.pattern is not None:
            ok = (
                self.predicate(value)
                if self.predicate is not None
                else self._compiled is not None and self._compiled.fullmatch(value) is not None
            )
            if not ok:
                errors.append(
                    (
                        self.error,
                        _violation(
                            value, path, f"satisfy regular expression pattern: {self.pattern}"
                        ),
                    )
                )


@dataclass(frozen=True, slots=True)
class Enum(Shape):
    """A string from a fixed set."""

    values: tuple[str, ...]

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, str):
            raise _serialization(path, "a string")
        if value not in self.values:
            errors.append(
                (
                    _INVALID,
                    _violation(value, path, f"satisfy enum value set: [{', '.join(self.values)}]"),
                )
            )


@dataclass(frozen=True, slots=True)
class Integer(Shape):
    """An integer (JSON number without fraction) within bounds."""

    min: int | None = None
    max: int | None = None

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _serialization(path, "a number")
        if isinstance(value, float) and not value.is_integer():
            raise _serialization(path, "an integer")
        if self.min is not None and value < self.min:
            errors.append(
                (
                    _INVALID,
                    _violation(value, path, f"have value greater than or equal to {self.min}"),
                )
            )
        elif self.max is not None and value > self.max:
            errors.append(
                (_INVALID, _violation(value, path, f"have value less than or equal to {self.max}"))
            )


@dataclass(frozen=True, slots=True)
class Boolean(Shape):
    """A JSON boolean."""

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, bool):
            raise _serialization(path, "a boolean")


@dataclass(frozen=True, slots=True)
class Timestamp(Shape):
    """Epoch seconds (number) or a decimal / ISO 8601 string; converted by the handler
    with :func:`parse_timestamp`."""

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _serialization(path, "a timestamp")
        if isinstance(value, float) and not math.isfinite(value):
            raise _serialization(path, "a finite timestamp")


@dataclass(frozen=True, slots=True)
class ListOf(Shape):
    """A list of ``member`` with a length range (``error`` when it is too long)."""

    member: Shape
    min_len: int = 0
    max_len: int | None = None
    error: str = _INVALID

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, list):
            raise _serialization(path, "a list")
        if len(value) < self.min_len:
            errors.append(
                (
                    _INVALID,
                    _violation(f"[{len(value)} items]", path, f"have length >= {self.min_len}"),
                )
            )
        elif self.max_len is not None and len(value) > self.max_len:
            errors.append(
                (
                    self.error,
                    _violation(f"[{len(value)} items]", path, f"have length <= {self.max_len}"),
                )
            )
        for i, item in enumerate(value):
            self.member.check(item, f"{path}.{i + 1}.member", errors)


@dataclass(frozen=True, slots=True)
class MapOf(Shape):
    """A JSON object of ``key`` -> ``value`` with a size range."""

    key: Shape
    value: Shape
    min_len: int = 0
    max_len: int | None = None
    error: str = _INVALID

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, dict):
            raise _serialization(path, "a map")
        if len(value) < self.min_len:
            errors.append(
                (
                    _INVALID,
                    _violation(f"{{{len(value)} entries}}", path, f"have length >= {self.min_len}"),
                )
            )
        elif self.max_len is not None and len(value) > self.max_len:
            errors.append(
                (
                    self.error,
                    _violation(f"{{{len(value)} entries}}", path, f"have length <= {self.max_len}"),
                )
            )
        for k, v in value.items():
            self.key.check(k, f"{path}.key", errors)
            self.value.check(v, f"{path}.{k}", errors)


@dataclass(frozen=True, slots=True)
class Structure(Shape):
    """A JSON object; unknown members are ignored (as AWS services do)."""

    members: Mapping[str, Shape]
    required: frozenset[str] = frozenset()

    def check(self, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
        if not isinstance(value, dict):
            raise _serialization(path or "body", "a structure")
        prefix = f"{path}." if path else ""
        for name in sorted(self.required):
            if value.get(name) is None:
                errors.append((_INVALID, _violation("null", prefix + name, "not be null")))
        for name, shape in self.members.items():
            member = value.get(name)
            if member is not None:
                shape.check(member, prefix + name, errors)


def validate(shape: Structure, body: Any) -> None:
    """Check ``body`` against ``shape``; raise the AWS-style error for the violations."""
    errors: list[tuple[str, str]] = []
    shape.check(body, "", errors)
    if not errors:
        return
    code = next((c for c, _ in errors if c != _INVALID), _INVALID)
    count = len(errors)
    noun = "error" if count == 1 else "errors"
    detail = "; ".join(message for _, message in errors)
    raise KvsError(code, f"{count} validation {noun} detected: {detail}")


def tag_text(text: str) -> bool:
    """``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``: letters, separators, numbers and ``_.:/=+-@``."""
    return all(c in "_.:/=+-@" or unicodedata.category(c)[0] in "LZN" for c in text)


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of an API's operation table."""

    name: str
    path: str
    input: Structure
    handler: OperationHandler


def routes(operations: tuple[Operation, ...]) -> dict[str, Handler]:
    """``path -> Handler`` for the app: read the JSON body, validate it, call the handler."""

    def bind(op: Operation) -> Handler:
        async def handle(request: web.Request, state: ServerState) -> web.StreamResponse:
            body = await read_json(request)
            validate(op.input, body)
            return await op.handler(request, state, body)

        handle.__name__ = handle.__qualname__ = op.name
        return handle

    table: dict[str, Handler] = {}
    for op in operations:
        if op.path in table:  # pragma: no cover - guards the literal tables
            raise AssertionError(f"duplicate operation path {op.path}")
        table[op.path] = bind(op)
    return table


Rounding = Literal["nearest", "up", "down"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ROUNDING = {"nearest": ROUND_HALF_EVEN, "up": ROUND_CEILING, "down": ROUND_FLOOR}


def parse_timestamp(value: Any, field: str, *, rounding: Rounding = "nearest") -> int:
    """A request timestamp (epoch seconds as a number, a decimal string or ISO 8601) in
    epoch ms; InvalidArgumentException naming ``field`` when it is not one or out of
    range. ``rounding`` says where a time between two milliseconds goes: the start of an
    inclusive range rounds up and its end down, so that nothing outside it is selected."""
    if isinstance(value, bool) or value is None:
        raise KvsError("InvalidArgumentException", f"{field} must be a timestamp.")
    number: Decimal | None = None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise KvsError("InvalidArgumentException", f"{field} is out of range.")
        # repr: the shortest decimal that is this float, i.e. what the client wrote
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                number = None
            else:
                if when.tzinfo is None:  # a time without a zone is UTC, as in AWS
                    when = when.replace(tzinfo=UTC)
                delta = when - _EPOCH
                number = Decimal(delta.days * 86400 + delta.seconds) + Decimal(
                    delta.microseconds
                ).scaleb(-6)
    if number is None:
        raise KvsError("InvalidArgumentException", f"{field} is not a valid timestamp: {value!r}.")
    # adjusted() first: comparing or scaling 1e999999999 would overflow the context
    if not number.is_finite() or number.adjusted() > 13 or abs(number) > 10**13:
        raise KvsError("InvalidArgumentException", f"{field} is out of range.")
    return int((number * 1000).to_integral_value(rounding=_ROUNDING[rounding]))
