"""The composition root: the one place that knows which adapter serves which port.

Settings decide: DATABASE_URL (PostgreSQL, else the SQLite file), REDIS_URL (Redis pub/sub, else the
in-process broker) and PUSH_BACKEND (log, fcm or none). Handlers receive use cases, never adapters.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from dependency_injector import containers, providers
from sqlalchemy.engine import make_url

from adapters.fcm.sender import FcmConfigurationError, FcmPushSender, load_credentials
from adapters.limits.memory import InProcessRateLimiter
from adapters.limits.redis import RedisRateLimiter
from adapters.memory.broker import InProcessBroker
from adapters.memory.clock import SystemClock
from adapters.memory.push import DisabledPushSender, LoggingPushSender
from adapters.memory.sockets import InProcessSocketRegistry
from adapters.prometheus.metrics import PrometheusMetrics
from adapters.redis.broker import RedisBroker
from adapters.redis.sockets import RedisSocketRegistry
from adapters.sqlalchemy.engine import DatabaseSettings, create_engine, normalize_url, sqlite_path, sqlite_url
from adapters.sqlalchemy.held import HeldConnections
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from application.delivery import NotificationDelivery
from application.live_locations import LiveLocations
from application.policy import DeliveryPolicy, WorkPolicy
from application.ports import PushSender, RateLimiter, RealtimeBroker, SocketRegistry
from application.rate_limits import RequestLimits
from application.remembered_profiles import RememberedProfiles
from application.use_cases.acknowledge_notification import AcknowledgeNotification
from application.use_cases.assign_work import AssignWork
from application.use_cases.cancel_work import CancelWork
from application.use_cases.catch_up_sockets import CatchUpSockets
from application.use_cases.complete_work import CompleteWork
from application.use_cases.console_reads import FindOrders, GetOverview, GetUserRecord
from application.use_cases.create_profile import CreateProfile
from application.use_cases.dispatch_due_notifications import DispatchDueNotifications
from application.use_cases.expire_overdue_work import ExpireOverdueWork
from application.use_cases.find_unknown_users import FindUnknownUsers
from application.use_cases.get_delivery_stats import GetDeliveryStats
from application.use_cases.get_profile import GetProfile, ShowProfile
from application.use_cases.get_work_order import GetWorkOrder
from application.use_cases.get_work_order_timeline import GetWorkOrderTimeline
from application.use_cases.identify_caller import AutoProvision, IdentifyCaller
from application.use_cases.import_profiles import ImportProfiles
from application.use_cases.list_active_providers import ListActiveProviders
from application.use_cases.list_notifications import ListNotifications
from application.use_cases.list_work_orders import ListWorkOrders
from application.use_cases.measure_backlog import MeasureBacklog
from application.use_cases.notification_preferences import (
    ChangeNotificationPreferences,
    ShowNotificationPreferences,
)
from application.use_cases.offer_work import OfferWork
from application.use_cases.operate_accounts import DeactivateProvider, InvalidateDevice
from application.use_cases.provision_profile import EraseProfile, GetProvisionedProfile, ProvisionProfile
from application.use_cases.register_device import RegisterDevice
from application.use_cases.replay_undelivered import ReplayUndelivered
from application.use_cases.respond_to_work import RespondToWork
from application.use_cases.retry_notification_now import RetryNotificationNow
from application.use_cases.set_provider_availability import SetProviderAvailability
from application.use_cases.sweep_old_records import Retention, SweepOldRecords
from application.use_cases.unregister_device import UnregisterDevice
from entrypoints.auth import TokenService, pick_verifier
from entrypoints.dispatcher import Dispatcher
from entrypoints.settings import PushBackend, Settings, SettingsError


def database_settings(settings: Settings) -> DatabaseSettings:
    return DatabaseSettings(
        url=settings.database_url or sqlite_url(settings.data_dir),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


def database_location(settings: Settings) -> str:
    """Where the data lives, for people: the SQLite file's absolute path, or the PostgreSQL URL without password."""
    if settings.database_url is None:
        return f"SQLite file {sqlite_path(settings.data_dir)}"
    return f"PostgreSQL {make_url(normalize_url(settings.database_url)).render_as_string(hide_password=True)}"


def auto_provision(settings: Settings) -> AutoProvision:
    return AutoProvision(
        enabled=settings.auth_auto_provision,
        role_claim=settings.jwt_role_claim,
        name_claim=settings.jwt_name_claim,
        mobile_claim=settings.jwt_mobile_claim,
    )


def pick_broker(settings: Settings) -> RealtimeBroker:
    if settings.redis_url:
        return RedisBroker(settings.redis_url, prefix=settings.redis_key_prefix, cluster=settings.redis_cluster)
    return InProcessBroker()


def pick_rate_limiter(settings: Settings) -> RateLimiter:
    """Through Redis when there is one (a limit holds across instances), else in this process."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, prefix=settings.redis_key_prefix, cluster=settings.redis_cluster)
    return InProcessRateLimiter()


def pick_socket_registry(settings: Settings) -> SocketRegistry:
    if settings.redis_url:
        return RedisSocketRegistry(settings.redis_url, prefix=settings.redis_key_prefix, cluster=settings.redis_cluster)
    return InProcessSocketRegistry()


def pick_push_sender(settings: Settings) -> PushSender:
    if settings.push_backend is PushBackend.LOG:
        return LoggingPushSender()
    if settings.push_backend is PushBackend.NONE:
        return DisabledPushSender()
    if settings.firebase_credentials_path is None:
        raise SettingsError(
            "PUSH_BACKEND=fcm needs FIREBASE_CREDENTIALS_PATH (or GOOGLE_APPLICATION_CREDENTIALS): "
            "the service-account JSON of your Firebase project"
        )
    try:
        certificate = load_credentials(settings.firebase_credentials_path, settings.firebase_credentials_setting)
    except FcmConfigurationError as error:
        raise SettingsError(str(error)) from None
    return FcmPushSender(
        certificate,
        settings.fcm_base_url,
        http_timeout=settings.delivery_push_timeout.total_seconds(),
        transport=settings.fcm_transport,
    )


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=settings.delivery_max_attempts,
        first_retry_delay=settings.delivery_first_retry,
        max_retry_delay=settings.delivery_max_retry,
        lease=settings.delivery_lease,
        request_budget=settings.delivery_request_budget,
        push_timeout=settings.delivery_push_timeout,
        replay_window=settings.replay_window,
        push_fallback=settings.push_fallback,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    # Creating these opens nothing yet (connections are made on first use); close() releases them.
    engine = providers.Singleton(create_engine, providers.Callable(database_settings, settings))
    broker = providers.Singleton(pick_broker, settings)
    push_sender = providers.Singleton(pick_push_sender, settings)
    clock = providers.Singleton(SystemClock)
    tokens = providers.Singleton(TokenService, settings)
    token_verifier = providers.Singleton(pick_verifier, settings)

    unit_of_work = providers.Factory(SqlAlchemyUnitOfWork, engine)
    # Up to half the pool may stay in autocommit for one-statement writes (assign-work; held.py). Never all of
    # it: a held connection idles outside the pool, and transactional units of work need one left there.
    held_connections = providers.Singleton(
        HeldConnections, engine, providers.Callable(lambda s: s.db_pool_size // 2, settings)
    )
    single_write_unit_of_work = providers.Factory(
        SqlAlchemyUnitOfWork, engine, single_write=True, held=held_connections
    )
    delivery_policy = providers.Singleton(delivery_policy, settings)
    work_policy = providers.Singleton(
        WorkPolicy,
        time_to_answer=settings.provided.time_to_answer,
        max_pending_per_seeker=settings.provided.max_pending_orders,
    )
    metrics = providers.Singleton(PrometheusMetrics)
    retention = providers.Singleton(
        Retention,
        attempts=settings.provided.audit_retention,
        notifications=settings.provided.notification_retention,
        work_orders=settings.provided.work_order_retention,
    )
    rate_limiter = providers.Singleton(pick_rate_limiter, settings)
    socket_registry = providers.Singleton(pick_socket_registry, settings)
    request_limits = providers.Singleton(RequestLimits, rate_limiter, settings.provided.rate_limits, metrics)
    delivery = providers.Singleton(
        NotificationDelivery,
        unit_of_work.provider,
        push_sender,
        broker,
        clock,
        delivery_policy,
        metrics,
        settings.provided.instance_name,
    )

    create_profile = providers.Singleton(CreateProfile, unit_of_work.provider)
    get_profile = providers.Singleton(GetProfile, unit_of_work.provider)
    register_device = providers.Singleton(RegisterDevice, unit_of_work.provider, clock)
    set_provider_availability = providers.Singleton(SetProviderAvailability, unit_of_work.provider, clock)
    list_active_providers = providers.Singleton(ListActiveProviders, unit_of_work.provider, broker)
    # Profiles this process read lately, shared: a socket's connect read spares the first order to its user a read.
    remembered_profiles = providers.Singleton(RememberedProfiles, settings.provided.remembered_profiles)
    assign_work = providers.Singleton(
        AssignWork,
        unit_of_work.provider,
        delivery,
        clock,
        work_policy,
        delivery_policy,
        single_write_uow_factory=single_write_unit_of_work.provider,
        remembered=remembered_profiles,
    )
    live_locations = providers.Singleton(
        LiveLocations,
        unit_of_work.provider,
        clock,
        providers.Factory(lambda s: timedelta(seconds=s.location_flush_interval), settings),
        providers.Callable(lambda m: m.locations_flushed, metrics),
    )
    offer_work = providers.Singleton(
        OfferWork, unit_of_work.provider, delivery, broker, clock, work_policy, delivery_policy
    )
    respond_to_work = providers.Singleton(RespondToWork, unit_of_work.provider, delivery, clock, delivery_policy)
    cancel_work = providers.Singleton(CancelWork, unit_of_work.provider, delivery, clock, delivery_policy)
    expire_overdue_work = providers.Singleton(ExpireOverdueWork, unit_of_work.provider, delivery, clock, work_policy)
    list_work_orders = providers.Singleton(ListWorkOrders, unit_of_work.provider)
    list_notifications = providers.Singleton(ListNotifications, unit_of_work.provider)
    acknowledge_notification = providers.Singleton(AcknowledgeNotification, unit_of_work.provider, clock, metrics)
    dispatch_due_notifications = providers.Singleton(
        DispatchDueNotifications, unit_of_work.provider, delivery, clock, delivery_policy
    )
    get_delivery_stats = providers.Singleton(GetDeliveryStats, unit_of_work.provider, clock)
    dispatcher = providers.Singleton(
        Dispatcher,
        dispatch_due_notifications,
        expire_overdue_work,
        settings.provided.dispatch_interval,
        delivery_policy.provided.claim_batch,
        providers.Factory(SweepOldRecords, unit_of_work.provider, clock, retention),
        providers.Factory(MeasureBacklog, unit_of_work.provider, clock),
        metrics,
    )
    find_unknown_users = providers.Singleton(FindUnknownUsers, unit_of_work.provider, clock)
    identify_caller = providers.Singleton(
        IdentifyCaller,
        token_verifier,
        unit_of_work.provider,
        clock,
        providers.Callable(auto_provision, settings),
        lookup_uow_factory=single_write_unit_of_work.provider,
    )
    provision_profile = providers.Singleton(ProvisionProfile, unit_of_work.provider, clock)
    get_provisioned_profile = providers.Singleton(GetProvisionedProfile, unit_of_work.provider)
    erase_profile = providers.Singleton(EraseProfile, unit_of_work.provider, clock)
    import_profiles = providers.Singleton(ImportProfiles, unit_of_work.provider, clock)
    show_profile = providers.Singleton(ShowProfile, unit_of_work.provider)
    show_notification_preferences = providers.Singleton(ShowNotificationPreferences, unit_of_work.provider)
    change_notification_preferences = providers.Singleton(ChangeNotificationPreferences, unit_of_work.provider)
    unregister_device = providers.Singleton(UnregisterDevice, unit_of_work.provider)
    get_work_order = providers.Singleton(GetWorkOrder, unit_of_work.provider)
    complete_work = providers.Singleton(CompleteWork, unit_of_work.provider, delivery, clock, delivery_policy)
    catch_up_sockets = providers.Singleton(CatchUpSockets, unit_of_work.provider, clock)
    replay_undelivered = providers.Singleton(
        ReplayUndelivered,
        unit_of_work.provider,
        clock,
        delivery_policy,
        settings.provided.instance_name,
        remembered=remembered_profiles,
    )
    get_work_order_timeline = providers.Singleton(GetWorkOrderTimeline, unit_of_work.provider)
    sweep_old_records = providers.Singleton(SweepOldRecords, unit_of_work.provider, clock, retention)
    retry_notification_now = providers.Singleton(
        RetryNotificationNow, unit_of_work.provider, delivery, clock, delivery_policy
    )
    invalidate_device = providers.Singleton(InvalidateDevice, unit_of_work.provider, clock)
    deactivate_provider = providers.Singleton(DeactivateProvider, unit_of_work.provider, clock)
    get_overview = providers.Singleton(GetOverview, unit_of_work.provider, clock)
    find_orders = providers.Singleton(FindOrders, unit_of_work.provider)
    get_user_record = providers.Singleton(GetUserRecord, unit_of_work.provider)


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


async def close(container: Container) -> None:
    """Release what the container opened: background deliveries first, then the database pool."""
    await container.delivery().drain(within=container.settings().shutdown_grace)
    push = container.push_sender()
    if isinstance(push, FcmPushSender):
        await push.aclose()
    await container.broker().close()
    await container.rate_limiter().close()
    registry = container.socket_registry()
    if isinstance(registry, RedisSocketRegistry):
        await registry.close()
    with contextlib.suppress(ValueError):  # no key: a command that never verified a token (migrate)
        await container.token_verifier().close()
    await container.held_connections().close()
    await container.engine().dispose()
