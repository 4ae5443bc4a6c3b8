"""The WebSocket protocol as types: every message, both directions, as msgspec Structs.

The server decodes what apps send with these types, encodes its own replies with them, and the
AsyncAPI 3.0 document at ``/schema/asyncapi.json`` is generated from them (``asyncapi_document``), so
the document cannot drift from the code. Notifications are built as dicts in the application layer
(which imports no library); their Structs here describe them, and the end-to-end tests decode every
message the server sends with ``SERVER_MESSAGE`` (unknown fields forbidden), so a change on either side
fails a test.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Id = Annotated[int, Meta(ge=1, le=2**63 - 1, description="a positive 64-bit id, as in the REST paths")]
Timestamp = Annotated[str, Meta(description="ISO 8601 UTC to the second, e.g. 2025-01-30T10:30:00Z")]
OrderStatus = Literal["pending", "accepted", "rejected", "cancelled", "expired", "completed"]


class _Message(Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=False):
    pass


# --- app -> server -----------------------------------------------------------------------------------


class Ping(_Message, tag="ping", forbid_unknown_fields=False):
    """Keep-alive from the app; answered by ``pong``."""


class WorkResponse(_Message, tag="work_response", forbid_unknown_fields=False):
    """A provider accepts or rejects an offer (the socket twin of POST .../respond/). Answering acknowledges it."""

    work_id: Id
    accepted: bool


class Ack(_Message, tag="ack", forbid_unknown_fields=False):
    """The app displayed this notification: it counts as delivered and is never sent or replayed again."""

    notification_id: Id


class Opened(_Message, tag="opened", forbid_unknown_fields=False):
    """The user opened this notification (tapped the push or the in-app item): push analytics; implies ``ack``."""

    notification_id: Id


class Location(_Message, tag="location", forbid_unknown_fields=False):
    """A provider's position (send it as often as every second; no HTTP request per position). Taken silently:
    only a refusal is answered (``error`` naming the field). A nearby search sees it within about 2 s."""

    latitude: float
    longitude: float


APP_MESSAGE = Ping | WorkResponse | Ack | Opened | Location


# --- server -> app: notifications ---------------------------------------------------------------------


class _Notification(_Message):
    notification_id: Id
    work_id: Id
    service_type: str
    status: Annotated[OrderStatus, Meta(description="the order's status now (on replay: now, not when sent)")]


class WorkAssigned(_Notification, tag="work_assigned"):
    """To a provider: a job offer. Answer with ``work_response`` before ``expires_at``."""

    seeker_id: Id
    seeker_name: str
    seeker_mobile: str
    message: str
    distance: str
    latitude: float
    longitude: float
    created_at: Timestamp
    expires_at: Timestamp
    # A broadcast (POST work-offers/): how many providers were offered it; the first to accept gets it.
    offered_to: Annotated[int, Meta(ge=1)] | None = None


class _Answered(_Notification):
    accepted: bool
    provider_id: Id
    provider_name: str
    provider_mobile: str
    responded_at: Timestamp | None


class WorkAccepted(_Answered, tag="work_accepted"):
    """To the seeker: the provider accepted."""


class WorkRejected(_Answered, tag="work_rejected"):
    """To the seeker: the provider declined."""


class WorkCancelled(_Notification, tag="work_cancelled"):
    """To the provider: the seeker withdrew the order."""

    seeker_id: Id
    seeker_name: str
    cancelled_at: Timestamp | None


class WorkCompleted(_Notification, tag="work_completed"):
    """To the seeker: the provider finished the job."""

    provider_id: Id
    provider_name: str
    completed_at: Timestamp | None


class WorkExpired(_Notification, tag="work_expired"):
    """To both: nobody answered in time (a broadcast: also when every provider declined; no provider then)."""

    provider_id: Id | None
    provider_name: str | None
    expired_at: Timestamp | None


class WorkTaken(_Notification, tag="work_taken"):
    """To a provider offered a broadcast: another provider accepted it first; drop the offer."""

    taken_at: Timestamp | None


# --- server -> app: replies ---------------------------------------------------------------------------


class WorkResponseResult(_Message, tag="work_response_result"):
    """Answers a ``work_response``."""

    work_id: Id
    status: OrderStatus
    accepted: bool
    seeker_notified: bool


class Acked(_Message, tag="acked"):
    """Answers an ``ack``."""

    notification_id: Id


class OpenRecorded(_Message, tag="open_recorded"):
    """Answers an ``opened``."""

    notification_id: Id


class Pong(_Message, tag="pong"):
    """Answers a ``ping``."""


class ReplayComplete(_Message, tag="replay_complete"):
    """Ends the replay on connect. ``truncated``: older unacknowledged ones were left out: read GET /notifications/."""

    count: Annotated[int, Meta(ge=0)]
    truncated: bool


class Error(_Message, tag="error"):
    """Answers a message the server could not act on; the socket stays open."""

    code: str
    message: str
    field: str | None
    request_type: str | None


NOTIFICATIONS = (WorkAssigned, WorkAccepted, WorkRejected, WorkCancelled, WorkExpired, WorkCompleted, WorkTaken)
REPLIES = (WorkResponseResult, Acked, OpenRecorded, Pong, ReplayComplete, Error)
SERVER_MESSAGE = (
    WorkAssigned | WorkAccepted | WorkRejected | WorkCancelled | WorkExpired | WorkCompleted | WorkTaken
    | WorkResponseResult | Acked | OpenRecorded | Pong | ReplayComplete | Error
)  # fmt: skip

encode = msgspec.json.Encoder().encode


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0 for both socket paths, with JSON schemas generated from the Structs above."""
    sent_by_app = (Ping, WorkResponse, Ack, Opened, Location)
    sent_by_server = (*NOTIFICATIONS, *REPLIES)
    _, components = msgspec.json.schema_components(
        (*sent_by_app, *sent_by_server), ref_template="#/components/schemas/{name}"
    )
    messages = {
        cls.__name__: {
            "name": cls.__struct_config__.tag,
            "title": cls.__struct_config__.tag,
            "summary": (cls.__doc__ or "").strip(),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        }
        for cls in (*sent_by_app, *sent_by_server)
    }
    to_provider = ("WorkAssigned", "WorkCancelled", "WorkExpired", "WorkTaken", "WorkResponseResult")
    to_seeker = ("WorkAccepted", "WorkRejected", "WorkExpired", "WorkCompleted")
    common_replies = ("Acked", "OpenRecorded", "Pong", "ReplayComplete", "Error")
    channels, operations = {}, {}
    for role, received in (("provider", to_provider), ("seeker", to_seeker)):
        sent = (
            ("Ping", "WorkResponse", "Ack", "Opened", "Location") if role == "provider" else ("Ping", "Ack", "Opened")
        )
        names = sorted({*received, *common_replies, *sent})
        channels[role] = {
            "address": f"/ws/work/{role}/",
            "title": f"{role} socket",
            "description": (
                "Authenticate with `Authorization: Bearer <jwt>` or `?token=<jwt>`. Close codes: 4401 bad token or"
                " unknown user, 4403 wrong role, 4408 the app does not read, 4409 replaced by a newer socket of"
                " the user, 4429 too many connects or failed logins, 1008 too many messages, 4503 database"
                " unavailable."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        }
        operations[f"{role}Receives"] = {
            "action": "send",  # the server sends; the app receives
            "channel": {"$ref": f"#/channels/{role}"},
            "messages": [{"$ref": f"#/channels/{role}/messages/{n}"} for n in sorted({*received, *common_replies})],
        }
        operations[f"{role}Sends"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{role}"},
            "messages": [{"$ref": f"#/channels/{role}/messages/{n}"} for n in sent],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "workcast sockets",
            "version": "1.0.0",
            "description": (
                "On connect the server replays unacknowledged notifications (actionable offers first, each with"
                " its order's current status), then sends replay_complete, then live messages. JSON text frames."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }
