"""REST endpoints under /api/1/profiles/: the seed's five and what the app needs beyond them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import UNSET

from application.messages import iso_utc
from application.use_cases.acknowledge_notification import AcknowledgeNotification
from application.use_cases.assign_work import AssignWork, AssignWorkCommand, WorkAssignment
from application.use_cases.cancel_work import CancelWork
from application.use_cases.complete_work import CompleteWork
from application.use_cases.get_delivery_stats import GetDeliveryStats
from application.use_cases.get_profile import ShowProfile
from application.use_cases.get_work_order import GetWorkOrder
from application.use_cases.list_active_providers import ListActiveProviders
from application.use_cases.list_notifications import ListNotifications
from application.use_cases.list_work_orders import ListWorkOrders
from application.use_cases.offer_work import OfferWork, OfferWorkCommand, WorkOffer
from application.use_cases.register_device import RegisterDevice
from application.use_cases.respond_to_work import RespondToWork
from application.use_cases.set_provider_availability import SetProviderAvailability
from application.use_cases.unregister_device import UnregisterDevice
from domain.devices import AddressKind
from domain.errors import InvalidInput
from domain.geo import MAX_RADIUS_KM, GeoPoint
from domain.work_orders import WorkStatus
from entrypoints.http import views
from entrypoints.http.guards import authenticated, in_order
from entrypoints.http.guards import caller_id as authenticated_caller
from entrypoints.http.idempotency import IdempotencyKey, idempotent
from entrypoints.http.limits import rate_limited
from entrypoints.http.schemas import (
    ActiveProvidersData,
    AssignWorkData,
    AssignWorkRequest,
    DeliveryStatsData,
    Envelope,
    FcmTokenData,
    FcmTokenRequest,
    NotificationData,
    NotificationPage,
    OfferWorkData,
    OfferWorkRequest,
    ProfileData,
    ProviderStatusData,
    ProviderStatusRequest,
    RespondData,
    RespondRequest,
    UnregisterDeviceRequest,
    WorkOrderData,
    WorkOrderPage,
    envelope,
    error_responses,
)
from entrypoints.http.strict import StrictJsonRequest, canonical_numbers

PageLimit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]
Cursor = Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1, description="next_cursor of the previous page")]
PathId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


class ProfilesController(Controller):
    path = "/api/1/profiles"
    tags = ["profiles"]
    security = [{"BearerToken": []}]
    guards = [in_order(authenticated, rate_limited, canonical_numbers)]

    @post(
        "/fcm-token/",
        status_code=HTTP_200_OK,
        operation_id="registerDevice",
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def register_device(
        self,
        data: JSONBody[FcmTokenRequest],
        caller_id: NamedDependency[int],
        register_device: NamedDependency[RegisterDevice],
    ) -> Envelope[FcmTokenData]:
        """Register the caller's device for pushes (an FCM registration token, or a Firebase installation id)."""
        if (data.fcm_token is None) == (data.fid is None):
            raise InvalidInput("send exactly one of fcm_token and fid", field="fcm_token")
        kind = AddressKind.REGISTRATION_TOKEN if data.fcm_token is not None else AddressKind.INSTALLATION_ID
        token = data.fcm_token if data.fcm_token is not None else data.fid
        registered = await register_device.execute(caller_id, token or "", data.platform, kind)
        assert registered.device.id is not None
        return envelope(
            "FCM token updated successfully",
            FcmTokenData(
                user_id=str(caller_id),
                user_type=registered.profile.role.value,
                fcm_token_set=True,
                device_id=registered.device.id,
                platform=registered.device.platform,
                address_kind=registered.device.kind.value,
            ),
        )

    @post(
        "/assign-work/",
        status_code=HTTP_201_CREATED,
        operation_id="assignWork",
        opt={"rate_group": "assign"},
        responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
    )
    async def assign_work(
        self, request: Request, data: JSONBody[AssignWorkRequest], idempotency_key: IdempotencyKey = None
    ) -> Envelope[AssignWorkData]:
        """A seeker offers a job to a provider; the provider hears about it by push and WebSocket.

        With an ``Idempotency-Key``, a retry of the same request within 24 h answers the first answer
        (``Idempotent-Replayed: true``) and creates nothing."""
        # The caller and the use case come from the request, not as two injected dependencies: Litestar resolves
        # two or more in an anyio task group, a task each (anyio alone was ~4 % of this endpoint's CPU, cProfile).
        # (Most requests never get here: entrypoints.http.fast_assign serves them ahead of Litestar's routing.)
        caller_id = authenticated_caller(request)
        assign_work: AssignWork = request.app.state.assign_work
        once = idempotent(idempotency_key, caller_id, "assign-work", data, lambda r: (201, assigned_envelope(r)))
        return assigned_envelope(await assign_work.execute(assignment_command(caller_id, data), once))

    @post(
        "/work-offers/",
        status_code=HTTP_201_CREATED,
        operation_id="offerWork",
        opt={"rate_group": "assign"},
        responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
    )
    async def offer_work(
        self,
        data: JSONBody[OfferWorkRequest],
        caller_id: NamedDependency[int],
        offer_work: NamedDependency[OfferWork],
        idempotency_key: IdempotencyKey = None,
    ) -> Envelope[OfferWorkData]:
        """A seeker offers a job at once to the nearest active providers within ``radius_km`` (those with the
        app open first); the first to accept gets it, the others hear ``work_taken``. No provider in reach:
        409 ``no_providers_nearby``. Honours ``Idempotency-Key`` as assign-work does."""
        command = OfferWorkCommand(
            seeker_id=caller_id,
            service_type=data.service_type,
            message=data.message,
            distance=data.distance,
            location=GeoPoint(data.latitude, data.longitude),
            radius_km=data.radius_km,
            max_providers=data.max_providers,
        )
        once = idempotent(idempotency_key, caller_id, "work-offers", data, lambda r: (201, _offered(r)))
        return _offered(await offer_work.execute(command, once))

    @get("/work-orders/", operation_id="listWorkOrders", responses=error_responses(400, 401, 422, 503))
    async def list_work_orders(
        self,
        caller_id: NamedDependency[int],
        list_work_orders: NamedDependency[ListWorkOrders],
        status: FromQuery[WorkStatus | None] = None,
        limit: PageLimit = 20,
        cursor: Cursor = None,
    ) -> Envelope[WorkOrderPage]:
        """The caller's work orders, newest first: a seeker's created ones, a provider's assigned ones."""
        page = await list_work_orders.execute(caller_id, status, limit, cursor)
        orders = [views.work_order(o) for o in page.items]
        return envelope("Work orders", WorkOrderPage(orders, len(orders), page.next_cursor))

    @patch(
        "/provider-status/",
        operation_id="setProviderStatus",
        responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    )
    async def set_provider_status(
        self,
        data: JSONBody[ProviderStatusRequest],
        caller_id: NamedDependency[int],
        set_provider_availability: NamedDependency[SetProviderAvailability],
    ) -> Envelope[ProviderStatusData]:
        """A provider goes on or off duty, optionally with their location (both coordinates or neither)."""
        if (data.latitude is UNSET) != (data.longitude is UNSET):
            missing = "longitude" if data.longitude is UNSET else "latitude"
            raise InvalidInput("send latitude and longitude together", field=missing)
        location = GeoPoint(data.latitude, data.longitude) if data.latitude is not UNSET else None  # type: ignore[arg-type]
        profile = await set_provider_availability.execute(caller_id, data.is_active_for_work, location)
        assert profile.id is not None
        return envelope(
            "Provider status updated successfully",
            ProviderStatusData(
                user_id=profile.id,
                is_active_for_work=profile.is_active_for_work,
                latitude=profile.location.latitude if profile.location else None,
                longitude=profile.location.longitude if profile.location else None,
            ),
        )

    @get("/active-providers/", operation_id="listActiveProviders", responses=error_responses(400, 401, 422, 503))
    async def active_providers(
        self,
        caller_id: NamedDependency[int],
        list_active_providers: NamedDependency[ListActiveProviders],
        latitude: Annotated[float | None, QueryParameter(ge=-90, le=90)] = None,
        longitude: Annotated[float | None, QueryParameter(ge=-180, le=180)] = None,
        radius_km: Annotated[float | None, QueryParameter(gt=0, le=MAX_RADIUS_KM)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> Envelope[ActiveProvidersData]:
        """Providers accepting work; near latitude/longitude: nearest first, within radius_km if given."""
        if (latitude is None) != (longitude is None):
            raise InvalidInput(
                "send latitude and longitude together", field="latitude" if latitude is None else "longitude"
            )
        near = GeoPoint(latitude, longitude) if latitude is not None and longitude is not None else None
        found = await list_active_providers.execute(caller_id, near, radius_km, limit)
        providers = [views.active_provider(p) for p in found]
        return envelope("Active providers", ActiveProvidersData(providers, len(providers)))

    @post(
        "/work-orders/{work_id:int}/respond/",
        status_code=HTTP_200_OK,
        operation_id="respondToWork",
        responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    )
    async def respond(
        self,
        work_id: PathId,
        data: JSONBody[RespondRequest],
        caller_id: NamedDependency[int],
        respond_to_work: NamedDependency[RespondToWork],
        idempotency_key: IdempotencyKey = None,
    ) -> Envelope[RespondData]:
        """The assigned provider accepts or rejects (the REST twin of the WebSocket work_response)."""

        def answered(result) -> Envelope[RespondData]:
            return envelope(
                "Work accepted" if data.accepted else "Work rejected",
                RespondData(work_id, result.order.status.value, data.accepted, result.seeker_notified_live),
            )

        once = idempotent(idempotency_key, caller_id, f"respond:{work_id}", data, lambda r: (200, answered(r)))
        return answered(await respond_to_work.execute(caller_id, work_id, data.accepted, once))

    @post(
        "/work-orders/{work_id:int}/cancel/",
        status_code=HTTP_200_OK,
        operation_id="cancelWork",
        responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def cancel(
        self,
        work_id: PathId,
        caller_id: NamedDependency[int],
        cancel_work: NamedDependency[CancelWork],
        idempotency_key: IdempotencyKey = None,
    ) -> Envelope[WorkOrderData]:
        """The seeker withdraws a pending or accepted order; the provider is told."""

        def cancelled(order) -> Envelope[WorkOrderData]:
            return envelope("Work cancelled", views.work_order(order))

        once = idempotent(idempotency_key, caller_id, f"cancel:{work_id}", None, lambda o: (200, cancelled(o)))
        return cancelled(await cancel_work.execute(caller_id, work_id, once))

    @get("/me/", operation_id="showMyProfile", responses=error_responses(400, 401, 503))
    async def me(
        self, caller_id: NamedDependency[int], show_profile: NamedDependency[ShowProfile]
    ) -> Envelope[ProfileData]:
        """The caller's profile (``data.id`` is the id other endpoints use) and active devices."""
        profile, devices = await show_profile.execute(caller_id)
        return envelope("Profile", views.profile(profile, devices))

    @delete(
        "/fcm-token/",
        operation_id="unregisterDevice",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def unregister_device(
        self,
        request: StrictJsonRequest,
        caller_id: NamedDependency[int],
        unregister_device: NamedDependency[UnregisterDevice],
    ) -> None:
        """Logout: forget this device (``{"fcm_token"}`` or ``{"fid"}``), or with no body every device of the caller."""
        token = None
        if await request.body():
            body = await request.json_as(UnregisterDeviceRequest)
            if (body.fcm_token is None) == (body.fid is None):
                raise InvalidInput(
                    "send exactly one of fcm_token and fid, or no body for every device", field="fcm_token"
                )
            token = body.fcm_token or body.fid
        await unregister_device.execute(caller_id, token)

    @get(
        "/work-orders/{work_id:int}/",
        operation_id="getWorkOrder",
        responses=error_responses(400, 401, 404, 422, 503),
    )
    async def work_order(
        self, work_id: PathId, caller_id: NamedDependency[int], get_work_order: NamedDependency[GetWorkOrder]
    ) -> Envelope[WorkOrderData]:
        """One order, for its seeker and provider (others get 404, as for a missing id)."""
        return envelope("Work order", views.work_order(await get_work_order.execute(caller_id, work_id)))

    @post(
        "/work-orders/{work_id:int}/complete/",
        status_code=HTTP_200_OK,
        operation_id="completeWork",
        responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def complete(
        self, work_id: PathId, caller_id: NamedDependency[int], complete_work: NamedDependency[CompleteWork]
    ) -> Envelope[WorkOrderData]:
        """The assigned provider finished accepted work; the seeker hears ``work_completed``."""
        return envelope("Work completed", views.work_order(await complete_work.execute(caller_id, work_id)))

    @get("/notifications/", operation_id="listNotifications", responses=error_responses(400, 401, 422, 503))
    async def notifications(
        self,
        caller_id: NamedDependency[int],
        list_notifications: NamedDependency[ListNotifications],
        limit: PageLimit = 20,
        cursor: Cursor = None,
    ) -> Envelope[NotificationPage]:
        """The caller's notifications with their delivery state, newest first."""
        page = await list_notifications.execute(caller_id, limit, cursor)
        items = [views.notification(n) for n in page.items]
        return envelope("Notifications", NotificationPage(items, len(items), page.next_cursor))

    @get("/notifications/stats/", operation_id="deliveryStats", responses=error_responses(400, 401, 403, 422, 503))
    async def delivery_stats(
        self,
        caller_id: NamedDependency[int],
        get_delivery_stats: NamedDependency[GetDeliveryStats],
        hours: Annotated[float, QueryParameter(gt=0, le=744, description="window, in hours")] = 24,
    ) -> Envelope[DeliveryStatsData]:
        """Operators only: delivery counts by status and channel, and push error codes, over a time window."""
        stats = await get_delivery_stats.execute(caller_id, timedelta(hours=hours))
        return envelope(
            "Delivery statistics",
            DeliveryStatsData(
                window_hours=hours,
                total=stats.total,
                by_delivery_status=dict(stats.by_delivery_status),
                by_push_state=dict(stats.by_push_state),
                by_socket_state=dict(stats.by_socket_state),
                push_errors=dict(stats.push_errors),
                opened=stats.opened,
                by_kind={kind: dict(funnel) for kind, funnel in stats.by_kind.items()},
                by_platform={platform: dict(funnel) for platform, funnel in stats.by_platform.items()},
                time_to_ack=dict(stats.time_to_ack),
                time_to_open=dict(stats.time_to_open),
            ),
        )

    @post(
        "/notifications/{notification_id:int}/ack/",
        status_code=HTTP_200_OK,
        operation_id="acknowledgeNotification",
        responses=error_responses(400, 401, 404, 422, 503),
    )
    async def acknowledge(
        self,
        notification_id: PathId,
        caller_id: NamedDependency[int],
        acknowledge_notification: NamedDependency[AcknowledgeNotification],
    ) -> Envelope[NotificationData]:
        """The app displayed the notification: it counts as delivered and is not replayed again."""
        n = await acknowledge_notification.execute(caller_id, notification_id)
        return envelope("Notification acknowledged", views.notification(n))

    @post(
        "/notifications/{notification_id:int}/opened/",
        status_code=HTTP_200_OK,
        operation_id="openedNotification",
        responses=error_responses(400, 401, 404, 422, 503),
    )
    async def opened(
        self,
        notification_id: PathId,
        caller_id: NamedDependency[int],
        acknowledge_notification: NamedDependency[AcknowledgeNotification],
    ) -> Envelope[NotificationData]:
        """The user opened the notification (tapped the push or the in-app item): push analytics. Implies
        ``ack``; opening twice keeps the first time."""
        n = await acknowledge_notification.execute(caller_id, notification_id, opened=True)
        return envelope("Notification opened", views.notification(n))


def _offered(result: WorkOffer) -> Envelope[OfferWorkData]:
    order = result.order
    assert order.id is not None
    return envelope(
        "Work offered",
        OfferWorkData(
            work_order_id=order.id,
            offered_to=result.offered_to,
            service_type=order.service_type,
            status=order.status.value,
            created_at=iso_utc(order.created_at) or "",
            expires_at=iso_utc(order.expires_at) or "",
        ),
    )


def assignment_command(caller_id: int, data: AssignWorkRequest) -> AssignWorkCommand:
    return AssignWorkCommand(
        seeker_id=caller_id,
        provider_id=data.provider_id,
        service_type=data.service_type,
        message=data.message,
        distance=data.distance,
        location=GeoPoint(data.latitude, data.longitude),
    )


def assigned_envelope(result: WorkAssignment) -> Envelope[AssignWorkData]:
    order = result.order
    assert order.id is not None
    return envelope(
        "Work assigned successfully",
        AssignWorkData(
            work_order_id=order.id,
            provider_name=result.provider_name,
            provider_mobile=result.provider_mobile,
            service_type=order.service_type,
            fcm_sent=result.fcm_sent,
            websocket_sent=result.websocket_sent,
            created_at=iso_utc(order.created_at) or "",
            status=order.status.value,
            expires_at=iso_utc(order.expires_at) or "",
            notification_id=result.notification_id,
        ),
    )
