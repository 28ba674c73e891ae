"""Contact records over HTTP (callstream's own API, beside the KVS ones).

``POST /callstream/contacts`` stores a CTR (what ``callstream call`` does when a contact
ends): it publishes the contact's ``ContactEnded`` event carrying the record on the
call-event bus and, once that is durable, stores the record (the bus's contact-record
subscriber would store it too; see :mod:`callstream.events.recorder`), so the record is
readable when the answer arrives. ``GET /callstream/contacts`` lists the newest,
``GET /callstream/contacts/{id}`` returns one. Requests are SigV4-signed like every other
call.
"""

from __future__ import annotations

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response, read_json
from callstream.api.errors import KvsError
from callstream.api.events import publish_durably
from callstream.events.recorder import contact_ended, store_contact

__all__ = ["GET_ROUTES", "ROUTES"]

CONTACTS_PATH = "/callstream/contacts"


async def put_contact(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Store a contact record (as a ``ContactEnded`` event; see the module docstring)."""
    record = await read_json(request)
    event = contact_ended(record)  # InvalidArgument (400) before anything is published
    (cursor,) = await publish_durably(state.events, [event])
    await state.run(store_contact, state.contacts, event.with_cursor(cursor))
    return json_response({"ContactId": record["ContactId"], "Cursor": cursor})


async def list_contacts(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The newest contact records (``?limit=N&channel=VOICE``)."""
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise KvsError("InvalidArgumentException", "limit must be an integer.") from None
    records = await state.run(
        state.contacts.list, limit=limit, channel=request.query.get("channel")
    )
    return json_response({"Contacts": records})


async def get_contact(request: web.Request, state: ServerState) -> web.StreamResponse:
    """One contact record."""
    contact_id = request.match_info["contact_id"]
    record = await state.run(state.contacts.get, contact_id)
    if record is None:
        raise KvsError("ResourceNotFoundException", f"Contact {contact_id} not found.")
    return json_response(record)


ROUTES: dict[str, Handler] = {CONTACTS_PATH: put_contact}
GET_ROUTES: dict[str, Handler] = {
    CONTACTS_PATH: list_contacts,
    CONTACTS_PATH + "/{contact_id}": get_contact,
}
