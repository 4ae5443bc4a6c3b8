"""Wire shapes (msgspec Structs): request bodies as the seed's app sends them, responses in the seed's envelope."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from litestar.openapi import ResponseSpec
from msgspec import UNSET, Meta, Struct, UnsetType

from domain.devices import PLATFORM_MAX, TOKEN_MAX
from domain.geo import MAX_RADIUS_KM
from domain.profiles import MOBILE_MAX, NAME_MAX
from domain.work_orders import DISTANCE_MAX, MESSAGE_MAX, SERVICE_TYPE_MAX

Latitude = Annotated[float, Meta(ge=-90, le=90, description="degrees, WGS 84")]
Longitude = Annotated[float, Meta(ge=-180, le=180, description="degrees, WGS 84")]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
T = TypeVar("T")

# --- requests -------------------------------------------------------------------------------------


class FcmTokenRequest(Struct, kw_only=True):
    fcm_token: Annotated[str, Meta(min_length=1, max_length=TOKEN_MAX)] | None = None
    fid: Annotated[str, Meta(min_length=1, max_length=TOKEN_MAX, description="Firebase installation id")] | None = None
    platform: Annotated[str, Meta(max_length=PLATFORM_MAX)] | None = None


class AssignWorkRequest(Struct, kw_only=True):
    provider_id: Id
    service_type: Annotated[str, Meta(min_length=1, max_length=SERVICE_TYPE_MAX)]
    message: Annotated[str, Meta(max_length=MESSAGE_MAX)] = ""
    distance: Annotated[str, Meta(max_length=DISTANCE_MAX, description="as shown to the seeker, e.g. 2.5km")] = ""
    latitude: Latitude
    longitude: Longitude


class OfferWorkRequest(Struct, kw_only=True):
    service_type: Annotated[str, Meta(min_length=1, max_length=SERVICE_TYPE_MAX)]
    message: Annotated[str, Meta(max_length=MESSAGE_MAX)] = ""
    distance: Annotated[str, Meta(max_length=DISTANCE_MAX, description="as shown to the providers, e.g. 2.5km")] = ""
    latitude: Latitude
    longitude: Longitude
    radius_km: Annotated[float, Meta(gt=0, le=MAX_RADIUS_KM, description="offer only to providers this near the job")]
    max_providers: Annotated[int, Meta(ge=1, le=50, description="offer to at most this many providers")] = 10


class ProviderStatusRequest(Struct, kw_only=True):
    is_active_for_work: bool
    latitude: Latitude | UnsetType = UNSET
    longitude: Longitude | UnsetType = UNSET


class RespondRequest(Struct, kw_only=True):
    accepted: bool


class ProvisionRequest(Struct, kw_only=True):
    role: Literal["seeker", "provider", "operator"]
    name: Annotated[str, Meta(min_length=1, max_length=NAME_MAX)]
    mobile: Annotated[str, Meta(max_length=MOBILE_MAX)] = ""
    is_active_for_work: bool | UnsetType = UNSET
    latitude: Latitude | UnsetType = UNSET
    longitude: Longitude | UnsetType = UNSET


class UnregisterDeviceRequest(Struct, kw_only=True):
    fcm_token: Annotated[str, Meta(min_length=1, max_length=TOKEN_MAX)] | None = None
    fid: Annotated[str, Meta(min_length=1, max_length=TOKEN_MAX)] | None = None


# --- responses ------------------------------------------------------------------------------------


class ErrorBody(Struct):
    status: Literal["error"]
    message: str
    code: str
    field: str | None = None
    data: None = None


# What each error status means here, and the codes it carries (README "Errors" has the same table).
ERROR_STATUSES: dict[int, str] = {
    400: "malformed_json (not JSON, not UTF-8, nested too deeply, a key twice, empty body), bad_request",
    401: "not_authenticated (missing, malformed, expired or forged token), unknown_user (no profile for the token)",
    403: "not_a_seeker, not_a_provider, not_an_operator: the caller's role cannot do this",
    404: "not_found, work_order_not_found, notification_not_found, profile_not_found (also for other people's things)",
    409: "already_answered, provider_unavailable, invalid_transition, role_locked, too_many_pending_orders,"
    " request_in_progress (the first request with this Idempotency-Key is still running: see Retry-After)",
    413: "payload_too_large (bodies over 64 KiB)",
    415: "unsupported_media_type (JSON bodies must be sent as application/json)",
    422: "validation_error, invalid_input, invalid_location, unknown_provider, idempotency_key_reused (the key was used"
    " for another request): `field` names the offending field",
    429: "rate_limited: too many requests from this user (or failed logins from this address); see Retry-After",
    503: "storage_unavailable, schema_not_migrated, auth_unavailable: try again after Retry-After",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for these error statuses, all in the error envelope (so generated clients model them)."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=ERROR_STATUSES[status], generate_examples=False)
        for status in sorted({*statuses, 429})  # every endpoint that checks who asks is rate limited
    }


class FcmTokenData(Struct):
    user_id: str
    user_type: str
    fcm_token_set: bool
    device_id: int
    platform: str
    address_kind: str


class AssignWorkData(Struct):
    work_order_id: int
    provider_name: str
    provider_mobile: str
    service_type: str
    fcm_sent: bool
    websocket_sent: bool
    created_at: str
    status: str
    expires_at: str
    notification_id: int


class OfferWorkData(Struct):
    work_order_id: int
    offered_to: int  # how many providers were offered the job
    service_type: str
    status: str
    created_at: str
    expires_at: str


class WorkOrderData(Struct):
    id: int
    work_id: int
    seeker_id: int
    provider_id: int | None  # None: a broadcast offer nobody has accepted (yet)
    service_type: str
    message: str
    distance: str
    latitude: float
    longitude: float
    status: str
    created_at: str
    expires_at: str
    responded_at: str | None
    closed_at: str | None


class WorkOrderPage(Struct):
    work_orders: list[WorkOrderData]
    count: int
    next_cursor: int | None


class ProviderStatusData(Struct):
    user_id: int
    is_active_for_work: bool
    latitude: float | None
    longitude: float | None


class ActiveProviderData(Struct):
    id: int
    name: str
    mobile: str
    latitude: float | None
    longitude: float | None
    distance_km: float | None
    online: bool | None


class ActiveProvidersData(Struct):
    providers: list[ActiveProviderData]
    count: int


class RespondData(Struct):
    work_id: int
    status: str
    accepted: bool
    seeker_notified: bool


class NotificationData(Struct):
    id: int
    type: str
    work_id: int
    payload: dict[str, Any]
    delivery_status: str
    push_state: str
    push_error: str | None
    socket_state: str
    socket_error: str | None
    attempts: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    opened_at: str | None = None


class AttemptData(Struct):
    notification_id: int
    channel: str
    device_id: int | None
    at: str
    outcome: str
    detail: str | None
    duration_ms: int
    instance: str


class TimelineEventData(Struct):
    at: str
    event: str
    details: dict[str, Any]


class TimelineNotificationData(Struct):
    notification: NotificationData
    recipient_id: int
    attempts: list[AttemptData]


class TimelineData(Struct):
    order: WorkOrderData
    notifications: list[TimelineNotificationData]
    events: list[TimelineEventData]


class NotificationPage(Struct):
    notifications: list[NotificationData]
    count: int
    next_cursor: int | None


class DeliveryStatsData(Struct):
    window_hours: float
    total: int
    by_delivery_status: dict[str, int]
    by_push_state: dict[str, int]
    by_socket_state: dict[str, int]
    push_errors: dict[str, int]
    opened: int = 0  # notifications the user opened (tapped)
    by_kind: dict[str, dict[str, int]] = {}  # created, sent, pushed, on_socket, delivered, opened per kind
    by_platform: dict[str, dict[str, int]] = {}  # pushed, delivered, opened per device platform
    time_to_ack: dict[str, float | None] = {}  # seconds: p50, p90, p99, samples
    time_to_open: dict[str, float | None] = {}


class DeviceData(Struct):
    id: int
    platform: str
    address_kind: str
    registered_at: str


class ProfileData(Struct):
    id: int
    external_id: str | None
    role: str
    name: str
    mobile: str
    is_active_for_work: bool
    latitude: float | None
    longitude: float | None
    devices: list[DeviceData]


class ErasedData(Struct):
    id: int
    erased: bool


class ImportRejection(Struct):
    line: int
    field: str | None
    reason: str


class ImportData(Struct):
    lines: int
    created: int
    updated: int
    rejected: int
    rejections: list[ImportRejection]


class HealthData(Struct):
    database: str
    broker: str


class Envelope(Struct, Generic[T]):
    """The seed's success envelope: ``{"status": "success", "message": ..., "data": ...}``."""

    status: Literal["success"]
    message: str
    data: T


def envelope(message: str, data: T) -> Envelope[T]:
    return Envelope(status="success", message=message, data=data)
