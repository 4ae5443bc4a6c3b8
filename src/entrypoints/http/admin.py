"""The provisioning API under /api/1/admin/: the app's own backend tells workcast who its users are.

Authorized by an API key from ADMIN_API_KEYS (``Authorization: Bearer <key>`` or ``X-API-Key``),
compared in constant time and never logged, or by an operator's token.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter
from msgspec import UNSET

from application.errors import InvalidToken
from application.use_cases.get_profile import GetProfile
from application.use_cases.get_work_order_timeline import GetWorkOrderTimeline
from application.use_cases.import_profiles import ImportProfiles
from application.use_cases.provision_profile import (
    EraseProfile,
    GetProvisionedProfile,
    ProfileFields,
    ProvisionProfile,
)
from domain.errors import InvalidInput, NotAnOperator, ProfileNotFound
from domain.geo import GeoPoint
from domain.profiles import EXTERNAL_ID_MAX, Role
from entrypoints.http import views
from entrypoints.http.errors import RequestRejected
from entrypoints.http.guards import caller_of, note_auth_failure
from entrypoints.http.schemas import (
    Envelope,
    ErasedData,
    ImportData,
    ImportRejection,
    ProfileData,
    ProvisionRequest,
    TimelineData,
    envelope,
    error_responses,
)
from entrypoints.http.strict import canonical_numbers

IMPORT_MAX_BYTES = 16 * 1024 * 1024
ExternalId = Annotated[str, PathParameter(max_length=EXTERNAL_ID_MAX * 4, description="the app's id of the user")]


async def admin_only(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: an admin API key, else an operator's token (401 without either, 403 for other roles)."""
    authorization = connection.headers.get("authorization") or ""
    scheme, _, supplied = authorization.partition(" ")
    supplied = (supplied.strip() if scheme.lower() == "bearer" else "") or connection.headers.get("x-api-key", "")
    keys: tuple[str, ...] = connection.app.state.admin_api_keys
    # Every key is compared, in constant time: the answer's timing says nothing about any key.
    if supplied and sum(hmac.compare_digest(supplied.encode(), key.encode()) for key in keys):
        return
    try:
        caller = await caller_of(connection.app.state.identify, authorization)
    except (InvalidToken, ProfileNotFound):
        await note_auth_failure(connection.app, connection.scope)
        raise
    get_profile: GetProfile = connection.app.state.container.get_profile()
    if (await get_profile.execute(caller)).role is not Role.OPERATOR:
        raise NotAnOperator("the provisioning API is for the app's backend (an API key) and operators")


class AdminProfilesController(Controller):
    path = "/api/1/admin/profiles"
    tags = ["provisioning"]
    security = [{"BearerToken": []}]
    guards = [admin_only]

    @put(
        "/{external_id:str}",
        operation_id="provisionProfile",
        responses={
            **error_responses(400, 401, 403, 409, 413, 415, 422, 503),
            201: ResponseSpec(Envelope[ProfileData], description="created"),
        },
        status_code=200,
    )
    async def provision(
        self,
        external_id: ExternalId,
        data: JSONBody[ProvisionRequest],
        provision_profile: NamedDependency[ProvisionProfile],
    ) -> Response[Envelope[ProfileData]]:
        """Create (201) or update (200) the profile the app's tokens call ``external_id``."""
        if (data.latitude is UNSET) != (data.longitude is UNSET):
            raise InvalidInput("send latitude and longitude together", field="latitude")
        fields = ProfileFields(
            Role(data.role),
            data.name,
            data.mobile,
            None if data.is_active_for_work is UNSET else data.is_active_for_work,
            None if data.latitude is UNSET else GeoPoint(data.latitude, data.longitude),  # type: ignore[arg-type]
        )
        done = await provision_profile.execute(external_id, fields)
        body = envelope("Profile created" if done.created else "Profile updated", views.profile(done.profile, []))
        return Response(body, status_code=201 if done.created else 200)

    @get("/{external_id:str}", operation_id="getProvisionedProfile", responses=error_responses(400, 401, 403, 404, 503))
    async def read(
        self, external_id: ExternalId, get_provisioned_profile: NamedDependency[GetProvisionedProfile]
    ) -> Envelope[ProfileData]:
        """The profile and its active devices."""
        profile, devices = await get_provisioned_profile.execute(external_id)
        return envelope("Profile", views.profile(profile, devices))

    @delete(
        "/{external_id:str}",
        operation_id="eraseProfile",
        responses=error_responses(400, 401, 403, 404, 503),
        status_code=200,
    )
    async def erase(
        self, external_id: ExternalId, erase_profile: NamedDependency[EraseProfile]
    ) -> Envelope[ErasedData]:
        """Erase the person: personal data and devices go, anonymised history stays; tokens and sockets stop."""
        profile = await erase_profile.execute(external_id)
        return envelope("Profile erased", ErasedData(profile.id or 0, True))

    @post(
        "/import",
        operation_id="importProfiles",
        responses=error_responses(400, 401, 403, 413, 415, 503),
        status_code=200,
        request_max_body_size=IMPORT_MAX_BYTES,
    )
    async def import_profiles(
        self, request: Request, import_profiles: NamedDependency[ImportProfiles]
    ) -> Envelope[ImportData]:
        """NDJSON (``application/x-ndjson``), one profile per line: ``external_id``, ``role``, ``name``, ``mobile``,
        optional ``is_active_for_work``, ``latitude``, ``longitude``, ``fcm_token``. Read as it arrives, upserted in
        batches; bad lines are reported by number and never stop the good ones. At most 16 MB per request."""
        if request.content_type[0] != "application/x-ndjson":
            raise RequestRejected(415, "unsupported_media_type", "send the profiles as application/x-ndjson")
        report = await import_profiles.execute(ndjson_lines(request.stream()))
        return envelope(
            "Profiles imported",
            ImportData(
                report.lines,
                report.created,
                report.updated,
                report.rejected,
                [ImportRejection(r["line"], r["field"], r["reason"]) for r in report.rejections],
            ),
        )


class AdminWorkOrdersController(Controller):
    path = "/api/1/admin/work-orders"
    tags = ["operations"]
    security = [{"BearerToken": []}]
    guards = [admin_only, canonical_numbers]

    @get(
        "/{work_id:int}/timeline", operation_id="workOrderTimeline", responses=error_responses(400, 401, 403, 404, 503)
    )
    async def timeline(
        self,
        work_id: Annotated[int, PathParameter(ge=1, le=2**63 - 1)],
        get_work_order_timeline: NamedDependency[GetWorkOrderTimeline],
    ) -> Envelope[TimelineData]:
        """The order's life in time order: created, each notification with every attempt per channel and device
        (when, outcome, FCM message id or error, duration, instance), acknowledgements, the answer, the end."""
        return envelope("Work order timeline", views.timeline(await get_work_order_timeline.execute(work_id)))


async def ndjson_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, Any]]:
    """(1-based line number, line) for each non-blank line of a body read as it arrives."""
    pending = b""
    number = 0
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            number += 1
            if line.strip():
                yield number, line
    if pending.strip():
        yield number + 1, pending
