"""Every socket's keepalive ping from one timer per event loop, instead of one timer per socket.

uvicorn schedules each WebSocket's next ping with its own ``loop.call_later``: a timer handle, uvloop's timer,
a context copy and a bound method per socket, ~0.5 KB (bench.socket_memory), replaced at every ping. The new
ones are young objects and the ones they replace old, so CPython 3.11's young-generation count (allocations
minus deallocations) does not move while the young generation grows: at 10,000 sockets (500 pings a second) a
young collection examined 18,000-30,000 objects, 16,000 of them these timers, and took 12-18 ms of CPU amid
requests (bench: gc callbacks with the young objects' types). Here a socket waiting for its ping is an entry
in a set, bucketed by the tick it is due in, and one repeating timer sends the pings that are due.

Written by hand: uvicorn has no setting for it, and a timer wheel is a few lines; its only cost is that a
ping may go out up to one tick (20 ms) later than uvicorn would send it.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from typing import Protocol


class PingsItself(Protocol):
    """What the wheel needs of a socket's protocol: to send its keepalive ping (uvicorn's method)."""

    def send_keepalive_ping(self) -> None: ...


class KeepaliveWheel:
    """The sockets of one event loop waiting for their next ping, by the tick each is due in.

    Ticks are short (``TICK``): uvicorn's timers spread the pings evenly over the interval, and so must this, or
    each tick's pings (and their pongs) arrive in one lump: with 1 s ticks, 500 pings at once every second at
    10,000 sockets, and requests queued behind them every second (bench)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self._loop = loop
        self._tick = tick
        self._buckets: dict[int, set[PingsItself]] = {}
        self._slots: list[int] = []  # a heap of the buckets' slots (a slot whose bucket emptied may linger)
        self._due: dict[PingsItself, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot = 0

    def schedule(self, socket: PingsItself, delay: float) -> None:
        self.cancel(socket)
        slot = math.ceil((self._loop.time() + delay) / self._tick)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heapq.heappush(self._slots, slot)
        bucket.add(socket)
        self._due[socket] = slot
        if self._timer is None or slot < self._timer_slot:
            self._wake_at(slot)

    def cancel(self, socket: PingsItself) -> None:
        slot = self._due.pop(socket, None)
        if slot is not None:
            bucket = self._buckets[slot]
            bucket.discard(socket)
            if not bucket:
                del self._buckets[slot]

    def __len__(self) -> int:
        return len(self._due)

    def _wake_at(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_slot = self._loop.call_at(slot * self._tick, self._ping_due), slot

    def _ping_due(self) -> None:
        self._timer = None
        now = math.floor(self._loop.time() / self._tick)
        while self._slots and self._slots[0] <= now:
            for socket in self._buckets.pop(heapq.heappop(self._slots), ()):
                del self._due[socket]
                socket.send_keepalive_ping()  # may schedule it again, in a later bucket
        while self._slots and self._slots[0] not in self._buckets:
            heapq.heappop(self._slots)  # emptied by cancels
        if self._slots:
            if self._timer is None or self._slots[0] < self._timer_slot:  # a ping above may have set a later one
                self._wake_at(self._slots[0])
        elif self._timer is None and _wheels.get(self._loop) is self:
            del _wheels[self._loop]  # nothing waits: a loop that ends leaves nothing behind


TICK = 0.02  # seconds: at 10,000 sockets and 20 s pings, 10 pings a tick; at 50,000, 50
_wheels: dict[asyncio.AbstractEventLoop, KeepaliveWheel] = {}


def schedule_ping(loop: asyncio.AbstractEventLoop, socket: PingsItself, interval: float, delay: float) -> None:
    """The socket's next ping on its loop's wheel (one per loop: a worker has one; tests may run several)."""
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = KeepaliveWheel(loop, tick=min(TICK, interval / 4))
    wheel.schedule(socket, delay)


def cancel_ping(loop: asyncio.AbstractEventLoop, socket: PingsItself) -> None:
    wheel = _wheels.get(loop)
    if wheel is not None:
        wheel.cancel(socket)
