"""Connect API operations on an instance's resources beyond flows: Lambda associations,
phone numbers, queues, hours of operation and tags (the HTTP side of
:class:`callstream.flows.instance_resources.ResourcesMixin`).

List operations page with ``NextToken`` / ``MaxResults`` as Connect does.
"""

from __future__ import annotations

import time
from typing import Any

from callstream.api.app import ServerState
from callstream.flows.instance_resources import HoursRow, PhoneNumber, QueueRow

__all__ = ["OPERATIONS"]


def paged(p: dict[str, Any], items: list[Any], key: str, *, default: int = 100) -> dict[str, Any]:
    """See :func:`callstream.api.connect.paged`."""
    from callstream.api.connect import paged as paged_

    return paged_(p, items, key, default=default)


# --- Lambda functions ---------------------------------------------------------------------------
async def associate_lambda(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /instance/{InstanceId}/lambda-function``."""
    await state.run(state.connect.associate_lambda, p["InstanceId"], p["FunctionArn"])
    return {}


async def list_lambdas(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}/lambda-functions``."""
    arns = await state.run(state.connect.list_lambdas, p["InstanceId"])
    return paged(p, arns, "LambdaFunctions", default=10)


async def disassociate_lambda(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /instance/{InstanceId}/lambda-function?functionArn=``."""
    await state.run(state.connect.disassociate_lambda, p["InstanceId"], p["FunctionArn"])
    return {}


# --- phone numbers ------------------------------------------------------------------------------
def _number_target(state: ServerState, p: dict[str, Any]) -> str:
    """The instance a request names by ``InstanceId`` or ``TargetArn``."""
    from callstream.flows.connect_errors import invalid

    ref = p.get("InstanceId") or p.get("TargetArn")
    if not ref:
        raise invalid("Give InstanceId or TargetArn.")
    return str(ref)


def number_json(number: PhoneNumber, *, claimed: bool = False) -> dict[str, Any]:
    """``ListPhoneNumbersSummary`` (or, ``claimed``, ``ClaimedPhoneNumberSummary``)."""
    out: dict[str, Any] = {
        "PhoneNumberId": number.id,
        "PhoneNumberArn": number.arn,
        "PhoneNumber": number.number,
        "PhoneNumberCountryCode": number.country_code,
        "PhoneNumberType": number.type,
        "TargetArn": number.instance_arn,
        "InstanceId": number.instance_id,
    }
    if number.description:
        out["PhoneNumberDescription"] = number.description
    if claimed:
        out["Tags"] = number.tags
        out["PhoneNumberStatus"] = {"Status": "CLAIMED"}
    return out


async def search_available(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /phone-number/search-available``: free numbers of the server's pool."""
    limit = int(p.get("MaxResults") or 10)
    numbers = await state.run(
        lambda: state.connect.available_numbers(
            p.get("PhoneNumberPrefix"),
            limit,
            country=p["PhoneNumberCountryCode"],
            kind=p["PhoneNumberType"],
        )
    )
    return {
        "AvailableNumbersList": [
            {
                "PhoneNumber": n,
                "PhoneNumberCountryCode": p["PhoneNumberCountryCode"],
                "PhoneNumberType": p["PhoneNumberType"],
            }
            for n in numbers
        ]
    }


async def claim_number(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /phone-number/claim``."""
    number = await state.run(
        lambda: state.connect.claim_number(
            p["PhoneNumber"],
            instance_id=_number_target(state, p),
            description=p.get("PhoneNumberDescription"),
            tags=p.get("Tags"),
        )
    )
    return {"PhoneNumberId": number.id, "PhoneNumberArn": number.arn}


async def describe_number(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /phone-number/{PhoneNumberId}``."""
    number = await state.run(state.connect.get_number, p["PhoneNumberId"])
    return {"ClaimedPhoneNumberSummary": number_json(number, claimed=True)}


async def release_number(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /phone-number/{PhoneNumberId}``."""
    await state.run(state.connect.release_number, p["PhoneNumberId"])
    return {}


async def list_numbers_v2(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /phone-number/list``."""
    target = p.get("InstanceId") or p.get("TargetArn")
    numbers = await state.run(state.connect.list_numbers, target)
    prefix = p.get("PhoneNumberPrefix")
    countries = p.get("PhoneNumberCountryCodes")
    types = p.get("PhoneNumberTypes")
    selected = [
        number_json(n)
        for n in numbers
        if (not prefix or n.number.startswith(prefix))
        and (not countries or n.country_code in countries)
        and (not types or n.type in types)
    ]
    return paged(p, selected, "ListPhoneNumbersSummaryList")


async def list_numbers(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /phone-numbers-summary/{InstanceId}`` (ListPhoneNumbers, v1)."""
    numbers = await state.run(state.connect.list_numbers, p["InstanceId"])
    types = p.get("PhoneNumberTypes")
    countries = p.get("PhoneNumberCountryCodes")
    summaries = [
        {
            "Id": n.id,
            "Arn": n.arn,
            "PhoneNumber": n.number,
            "PhoneNumberType": n.type,
            "PhoneNumberCountryCode": n.country_code,
        }
        for n in numbers
        if (not types or n.type in types) and (not countries or n.country_code in countries)
    ]
    return paged(p, summaries, "PhoneNumberSummaryList")


async def associate_number_flow(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /phone-number/{PhoneNumberId}/contact-flow``."""
    await state.run(
        state.connect.associate_number_flow,
        p["PhoneNumberId"],
        p["InstanceId"],
        p["ContactFlowId"],
    )
    return {}


async def disassociate_number_flow(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /phone-number/{PhoneNumberId}/contact-flow?instanceId=``."""
    await state.run(state.connect.disassociate_number_flow, p["PhoneNumberId"], p["InstanceId"])
    return {}


# --- queues and hours ---------------------------------------------------------------------------
def _last_modified(arn: str) -> dict[str, Any]:
    """``LastModifiedTime`` (now, in whole ms: no modification time is kept) and
    ``LastModifiedRegion`` (the region of ``arn``)."""
    now_s = time.time_ns() // 1_000_000 / 1000
    return {"LastModifiedTime": now_s, "LastModifiedRegion": arn.split(":")[3]}


def _summary(row: QueueRow | HoursRow, **members: Any) -> dict[str, Any]:
    """A list operation's summary of a queue or hours of operation, with ``members``."""
    return {"Id": row.id, "Arn": row.arn, "Name": row.name, **members, **_last_modified(row.arn)}


def queue_json(queue: QueueRow) -> dict[str, Any]:
    """The model's ``Queue``."""
    data = queue.data
    out: dict[str, Any] = {
        "Name": queue.name,
        "QueueArn": queue.arn,
        "QueueId": queue.id,
        "HoursOfOperationId": data.get("HoursOfOperationId"),
        "Status": data.get("Status", "ENABLED"),
        "Tags": data.get("Tags") or {},
        **_last_modified(queue.arn),
    }
    for key in ("Description", "OutboundCallerConfig", "MaxContacts"):
        if data.get(key) is not None:
            out[key] = data[key]
    return out


def hours_json(hours: HoursRow) -> dict[str, Any]:
    """The model's ``HoursOfOperation``."""
    data = hours.data
    out: dict[str, Any] = {
        "HoursOfOperationId": hours.id,
        "HoursOfOperationArn": hours.arn,
        "Name": hours.name,
        "TimeZone": data.get("TimeZone", "UTC"),
        "Config": data.get("Config", []),
        "Tags": data.get("Tags") or {},
        **_last_modified(hours.arn),
    }
    if data.get("Description") is not None:
        out["Description"] = data["Description"]
    return out


async def create_queue(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /queues/{InstanceId}``."""
    data = {
        k: p[k]
        for k in (
            "Description",
            "OutboundCallerConfig",
            "HoursOfOperationId",
            "MaxContacts",
            "Tags",
        )
        if k in p
    }
    queue = await state.run(state.connect.create_queue, p["InstanceId"], p["Name"], data)
    return {"QueueArn": queue.arn, "QueueId": queue.id}


async def describe_queue(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /queues/{InstanceId}/{QueueId}``."""
    queue = await state.run(state.connect.get_queue, p["InstanceId"], p["QueueId"])
    return {"Queue": queue_json(queue)}


async def list_queues(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /queues-summary/{InstanceId}`` (standard queues)."""
    queues = await state.run(state.connect.list_queues, p["InstanceId"])
    types = p.get("QueueTypes")
    summaries = [
        _summary(q, QueueType="STANDARD") for q in queues if not types or "STANDARD" in types
    ]
    return paged(p, summaries, "QueueSummaryList")


async def create_hours(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /hours-of-operations/{InstanceId}``."""
    data = {k: p[k] for k in ("Description", "TimeZone", "Config", "Tags") if k in p}
    hours = await state.run(state.connect.create_hours, p["InstanceId"], p["Name"], data)
    return {"HoursOfOperationId": hours.id, "HoursOfOperationArn": hours.arn}


async def describe_hours(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /hours-of-operations/{InstanceId}/{HoursOfOperationId}``."""
    hours = await state.run(state.connect.get_hours, p["InstanceId"], p["HoursOfOperationId"])
    return {"HoursOfOperation": hours_json(hours)}


async def list_hours(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /hours-of-operations-summary/{InstanceId}``."""
    hours = await state.run(state.connect.list_hours, p["InstanceId"])
    return paged(p, [_summary(h) for h in hours], "HoursOfOperationSummaryList")


# --- tags ---------------------------------------------------------------------------------------
async def tag_resource(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /tags/{resourceArn}``."""
    await state.run(state.connect.tag_resource, p["resourceArn"], p["tags"])
    return {}


async def untag_resource(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /tags/{resourceArn}?tagKeys=``."""
    await state.run(state.connect.untag_resource, p["resourceArn"], p["tagKeys"])
    return {}


async def list_tags(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /tags/{resourceArn}``."""
    return {"tags": await state.run(state.connect.list_tags, p["resourceArn"])}


OPERATIONS = {
    "AssociateLambdaFunction": associate_lambda,
    "ListLambdaFunctions": list_lambdas,
    "DisassociateLambdaFunction": disassociate_lambda,
    "SearchAvailablePhoneNumbers": search_available,
    "ClaimPhoneNumber": claim_number,
    "DescribePhoneNumber": describe_number,
    "ReleasePhoneNumber": release_number,
    "ListPhoneNumbersV2": list_numbers_v2,
    "ListPhoneNumbers": list_numbers,
    "AssociatePhoneNumberContactFlow": associate_number_flow,
    "DisassociatePhoneNumberContactFlow": disassociate_number_flow,
    "CreateQueue": create_queue,
    "DescribeQueue": describe_queue,
    "ListQueues": list_queues,
    "CreateHoursOfOperation": create_hours,
    "DescribeHoursOfOperation": describe_hours,
    "ListHoursOfOperations": list_hours,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags,
}
"""The operations of this module, by the model's operation name."""
