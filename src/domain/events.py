"""Domain events: facts the application turns into notifications."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    work_id: int
    seeker_id: int
    provider_id: int


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
    pass
