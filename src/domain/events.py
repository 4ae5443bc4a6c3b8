"""Domain events: facts the application turns into notifications."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    work_id: int
    seeker_id: int
    provider_id: int | None  # None: a broadcast offer nobody took (only its seeker hears of the event)


@dataclass(frozen=True)
class WorkAssigned(Event):
    pass


@dataclass(frozen=True)
class WorkAnswered(Event):
    accepted: bool


@dataclass(frozen=True)
class WorkCancelled(Event):
    pass


@dataclass(frozen=True)
class WorkCompleted(Event):
    pass


@dataclass(frozen=True)
class WorkExpired(Event):
    tell_seeker: bool = True  # False: one of a broadcast's providers, told the offer is gone


@dataclass(frozen=True)
class WorkOffered(Event):
    """One provider among a broadcast's nearest is offered the job."""


@dataclass(frozen=True)
class WorkTaken(Event):
    """Another provider accepted the broadcast first: this provider's offer is gone."""
