"""Typed domain errors. Each carries a stable, machine-readable ``code``; the API maps codes to statuses."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every business-rule violation."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """A value does not satisfy the rules of the domain (too long, empty, out of range...)."""

    code = "invalid_input"


class InvalidLocation(InvalidInput):
    code = "invalid_location"


class NotFound(DomainError):
    code = "not_found"


class ProfileNotFound(NotFound):
    code = "profile_not_found"


class UnknownExternalId(NotFound):
    """No live profile has this external id (provisioning API)."""

    code = "profile_not_found"


class UnknownProvider(InvalidInput):
    """The seeker named a provider that does not exist (a client error on the request body)."""

    code = "unknown_provider"


class WorkOrderNotFound(NotFound):
    code = "work_order_not_found"


class NotificationNotFound(NotFound):
    code = "notification_not_found"


class NotASeeker(DomainError):
    code = "not_a_seeker"


class NotAProvider(DomainError):
    code = "not_a_provider"


class NotAnOperator(DomainError):
    code = "not_an_operator"


class NotYourOrder(DomainError):
    code = "not_your_order"


class ProviderUnavailable(DomainError):
    code = "provider_unavailable"


class RoleLocked(DomainError):
    """The role of a profile with open work orders cannot change."""

    code = "role_locked"


class TooManyPendingOrders(DomainError):
    """A seeker already has as many unanswered orders as allowed: wait for answers, or cancel some."""

    code = "too_many_pending_orders"


class AlreadyAnswered(DomainError):
    """The provider answered an order that is no longer pending (answered, cancelled or expired)."""

    code = "already_answered"


class AlreadyTaken(AlreadyAnswered):
    """Another provider accepted this broadcast offer first."""

    code = "already_taken"


class NoProvidersNearby(DomainError):
    """A broadcast found no active provider within its radius."""

    code = "no_providers_nearby"


class InvalidTransition(DomainError):
    """A status change the work-order state machine does not allow (other than answering twice)."""

    code = "invalid_transition"
