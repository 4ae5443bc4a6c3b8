"""One timer per loop sends every socket's keepalive ping: each when due (never early), once, until cancelled."""

from __future__ import annotations

import asyncio

import pytest

from entrypoints import keepalive
from entrypoints.keepalive import KeepaliveWheel, cancel_ping, schedule_ping
from tests.fixtures.waiting import eventually

TICK = 0.01


class FakeSocket:
    def __init__(self, wheel: KeepaliveWheel | None = None, again: float | None = None) -> None:
        self.pinged_at: list[float] = []
        self._wheel, self._again = wheel, again

    def send_keepalive_ping(self) -> None:
        self.pinged_at.append(asyncio.get_running_loop().time())
        if self._wheel is not None and self._again is not None:  # as uvicorn chains the next ping
            self._wheel.schedule(self, self._again)


async def until(condition) -> None:
    await eventually(condition, within=10.0, every=TICK)


async def test_each_socket_is_pinged_once_when_due_and_a_cancelled_one_never():
    loop = asyncio.get_running_loop()
    wheel = KeepaliveWheel(loop, TICK)
    late, soon, cancelled = FakeSocket(), FakeSocket(), FakeSocket()
    start = loop.time()
    wheel.schedule(late, 0.3)
    wheel.schedule(soon, 0.05)  # earlier than the timer already set: the wheel wakes earlier
    wheel.schedule(cancelled, 0.05)
    wheel.cancel(cancelled)
    await until(lambda: late.pinged_at and soon.pinged_at)
    assert soon.pinged_at[0] >= start + 0.05 - TICK and late.pinged_at[0] >= start + 0.3 - TICK
    assert soon.pinged_at[0] < late.pinged_at[0]
    await asyncio.sleep(0.1)
    assert (len(late.pinged_at), len(soon.pinged_at), cancelled.pinged_at) == (1, 1, [])
    assert len(wheel) == 0


async def test_a_socket_that_schedules_itself_again_keeps_being_pinged():
    wheel = KeepaliveWheel(asyncio.get_running_loop(), TICK)
    chained = FakeSocket(wheel, again=0.03)
    wheel.schedule(chained, 0.03)
    await until(lambda: len(chained.pinged_at) >= 5)
    assert all(b - a >= 0.03 - TICK for a, b in zip(chained.pinged_at, chained.pinged_at[1:], strict=False))
    wheel.cancel(chained)


async def test_a_loops_wheel_goes_once_nothing_waits_on_it():
    loop = asyncio.get_running_loop()
    socket = FakeSocket()
    schedule_ping(loop, socket, interval=0.04, delay=0.02)
    assert loop in keepalive._wheels
    await until(lambda: socket.pinged_at and loop not in keepalive._wheels)
    schedule_ping(loop, socket, interval=0.04, delay=0.02)
    cancel_ping(loop, socket)
    await until(lambda: loop not in keepalive._wheels)
    assert len(socket.pinged_at) == 1


class ManualTimer:
    def __init__(self, when: float, callback) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualLoop:
    """The two things the wheel asks of a loop, with a clock the test moves by hand."""

    def __init__(self) -> None:
        self.now, self.timers = 0.0, []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback) -> ManualTimer:
        self.timers.append(ManualTimer(when, callback))
        return self.timers[-1]

    def run_next(self) -> float:
        timer = min((t for t in self.timers if not t.cancelled), key=lambda t: t.when)
        self.timers.remove(timer)
        self.now = timer.when
        timer.callback()
        return self.now


def test_a_ping_that_schedules_the_next_one_does_not_delay_the_others():
    """A socket pinged in a tick is due again an interval later; the wheel still wakes for whoever is due sooner."""
    loop = ManualLoop()
    wheel = KeepaliveWheel(loop, tick=0.1)  # type: ignore[arg-type]
    first, second = FakeSocket(wheel, again=1.0), FakeSocket()
    first.pinged_at = second.pinged_at = None  # type: ignore[assignment]
    pinged = []
    first.send_keepalive_ping = lambda: (pinged.append(("first", loop.now)), wheel.schedule(first, 1.0))  # type: ignore[method-assign]
    second.send_keepalive_ping = lambda: pinged.append(("second", loop.now))  # type: ignore[method-assign]
    wheel.schedule(first, 1.0)
    wheel.schedule(second, 1.5)
    assert loop.run_next() == pytest.approx(1.0)
    assert loop.run_next() == pytest.approx(1.5)  # not 2.0, when the first is due again
    assert loop.run_next() == pytest.approx(2.0)
    assert [who for who, _ in pinged] == ["first", "second", "first"]
