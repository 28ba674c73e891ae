"""Connect's JSONPath references (``$.Attributes.x``) and templated parameter values.

A reference is ``$.`` + a root from :data:`ROOTS` + dotted segments; a segment that is not a
plain word can be bracketed: ``$.Attributes['my key']``. Roots resolve against a
:class:`~callstream.flows.contact.Contact`; a missing value resolves to None and renders as
the empty string, as Connect renders an unset attribute.

Parameter values fall in three restriction classes (connect-flows.md §1.1, see
:class:`~callstream.flows.actions.Restriction`); :func:`check_restriction` enforces them at
load time and :func:`render` / :func:`evaluate` produce the value at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callstream.flows.actions import Restriction
from callstream.flows.contact import Contact, media_streams_json

__all__ = [
    "ROOTS",
    "Reference",
    "check_restriction",
    "evaluate",
    "find_references",
    "parse_reference",
    "render",
    "resolve",
    "to_text",
]


def _endpoint(value: Any) -> dict[str, str] | None:
    return value.to_json() if value is not None else None


def _queue(contact: Contact) -> dict[str, Any] | None:
    queue = contact.queue
    if queue is None:
        return None
    caller = {"Address": queue.outbound_caller_id} if queue.outbound_caller_id else None
    return {"Name": queue.name, "ARN": queue.arn, "OutboundCallerId": caller}


ROOTS: Mapping[str, Callable[[Contact], Any]] = {
    "Attributes": lambda c: c.attributes,
    "External": lambda c: c.external,
    "Lex": lambda c: c.lex,
    "MediaStreams": media_streams_json,
    "Channel": lambda c: c.channel,
    "ContactId": lambda c: c.contact_id,
    "InitialContactId": lambda c: c.initial_contact_id,
    "PreviousContactId": lambda c: c.previous_contact_id,
    "InitiationMethod": lambda c: c.initiation_method,
    "InstanceARN": lambda c: c.instance_arn,
    "LanguageCode": lambda c: c.language_code,
    "Name": lambda c: c.name,
    "Description": lambda c: c.description,
    "CustomerId": lambda c: c.customer_id,
    "CustomerEndpoint": lambda c: _endpoint(c.customer_endpoint),
    "SystemEndpoint": lambda c: _endpoint(c.system_endpoint),
    "Queue": _queue,
    "StoredCustomerInput": lambda c: c.stored_customer_input,
    "References": lambda c: c.references,
    "TextToSpeechVoice": lambda c: c.text_to_speech_voice,
    "CustomerCallbackNumber": lambda c: c.callback_number,
    # Namespaces callstream has no data for: valid references that resolve to nothing.
    "Agent": lambda c: None,
    "Metrics": lambda c: None,
    "Customer": lambda c: None,
    "Segments": lambda c: None,
    "FlowAttributes": lambda c: None,
    "SegmentAttributes": lambda c: None,
    "Case": lambda c: None,
    "Tags": lambda c: None,
    "Campaign": lambda c: None,
    "AgentHierarchy": lambda c: None,
}
"""Every ``$.<root>`` callstream knows and how it resolves against a contact."""

_SEGMENT = r"(?:\.[A-Za-z0-9_\-]+|\.?\[(?:'[^']*'|\"[^\"]*\")\])"
_REFERENCE = re.compile(r"\$\.([A-Za-z_][A-Za-z0-9_]*)((?:" + _SEGMENT + r")*)")
_SEGMENTS = re.compile(r"\.([A-Za-z0-9_\-]+)|\.?\['([^']*)'\]|\.?\[\"([^\"]*)\"\]")


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``$.`` reference found in a value: its text span and path segments."""

    text: str
    start: int
    end: int
    path: tuple[str, ...]
    """Root first: ``("Attributes", "x")``."""

    @property
    def root(self) -> str:
        """The first segment (``Attributes``, ``External``, ...)."""
        return self.path[0]

    @property
    def known(self) -> bool:
        """True when the root is in :data:`ROOTS`."""
        return self.root in ROOTS


def _segments(rest: str) -> tuple[str, ...]:
    return tuple(a or b or c for a, b, c in _SEGMENTS.findall(rest))


def find_references(text: str) -> list[Reference]:
    """Every ``$.<word>...`` reference in ``text``, left to right."""
    return [
        Reference(m.group(0), m.start(), m.end(), (m.group(1), *_segments(m.group(2))))
        for m in _REFERENCE.finditer(text)
    ]


def parse_reference(text: str) -> Reference | None:
    """The reference when ``text`` is exactly one reference (surrounding blanks allowed)."""
    stripped = text.strip()
    m = _REFERENCE.fullmatch(stripped)
    if m is None:
        return None
    return Reference(stripped, 0, len(stripped), (m.group(1), *_segments(m.group(2))))


def resolve(path: Reference | tuple[str, ...] | str, contact: Contact) -> Any:
    """The value at ``path`` (a Reference, segments or ``"$.X.y"`` text), or None."""
    if isinstance(path, str):
        ref = parse_reference(path)
        if ref is None:
            raise ValueError(f"not a JSONPath reference: {path!r}")
        segments = ref.path
    elif isinstance(path, Reference):
        segments = path.path
    else:
        segments = path
    getter = ROOTS.get(segments[0])
    if getter is None:
        return None
    value: Any = getter(contact)
    for segment in segments[1:]:
        if isinstance(value, Mapping):
            value = value.get(segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
        if value is None:
            return None
    return value


def to_text(value: Any) -> str:
    """How a resolved value reads inside text: None is empty, scalars as JSON, objects JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(text: str, contact: Contact) -> str:
    """Substitute every known reference in ``text`` (templating); unknown roots stay literal."""
    out: list[str] = []
    pos = 0
    for ref in find_references(text):
        if not ref.known:
            continue
        out.append(text[pos : ref.start])
        out.append(to_text(resolve(ref, contact)))
        pos = ref.end
    out.append(text[pos:])
    return "".join(out)


def evaluate(value: Any, contact: Contact) -> Any:
    """A parameter value at run time: strings rendered, maps and lists rendered item-wise."""
    if isinstance(value, str):
        return render(value, contact)
    if isinstance(value, Mapping):
        return {k: evaluate(v, contact) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, contact) for v in value]
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def check_restriction(value: Any, restriction: Restriction) -> tuple[str | None, list[str]]:
    """Validate ``value`` (string, or strings inside maps/lists) against a restriction.

    Returns ``(error, warnings)``: ``error`` is a sentence (or None); warnings name
    references with roots callstream does not know in templated text.
    """
    warnings: list[str] = []
    for text in _strings(value):
        refs = find_references(text)
        if restriction is Restriction.STATIC:
            if refs:
                return f"must be defined statically, found JSONPath {refs[0].text!r}", warnings
        elif restriction in (Restriction.PATH, Restriction.PATH_ONLY):
            single = parse_reference(text)
            if restriction is Restriction.PATH_ONLY and single is None:
                return f"must be a single JSONPath reference, not {text!r}", warnings
            if refs and single is None:
                return (
                    f"must be static or a single JSONPath reference, not templated text {text!r}",
                    warnings,
                )
            if single is not None and not single.known:  # newer consoles add roots
                warnings.append(f"unknown JSONPath root in {single.text!r} (resolves to nothing)")
        else:
            warnings.extend(
                f"unknown JSONPath root in {ref.text!r} (left as text)"
                for ref in refs
                if not ref.known
            )
    return None, warnings
