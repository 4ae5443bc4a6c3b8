"""What an idle socket holds: a lean queue and gate (entrypoints/socket_inbox.py) that behave as asyncio's Queue
and Event, and no request headers once its caller is known.

Each queue or gate scenario is a list of steps run once on asyncio's primitive and once on ours, each in a fresh
event loop (asyncio schedules deterministically); what every waiter ended with and what is left must be the same.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import uvicorn
from hypothesis import example, given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from entrypoints.http.sockets import AsgiSocket
from entrypoints.server import ClosingWSProtocol
from entrypoints.socket_inbox import Gate, Inbox, RarelyUsedQueue

queue_steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 99)),
        st.tuples(st.just("get")),
        st.tuples(st.just("cancel"), st.integers(0, 9)),
        st.tuples(st.just("step")),
    ),
    max_size=30,
)


def outcome(task: asyncio.Task) -> object:
    if not task.done():
        return "waiting"
    return "cancelled" if task.cancelled() else task.result()


async def play(steps: list[tuple], actions: dict[str, Callable[[tuple], None]], waiter: tuple[str, Callable]) -> list:
    """Run the steps in this loop: an action's step acts, the waiter's step starts a task waiting, ``cancel``
    cancels one of them (else, as ``step``, lets the loop run once); then let the loop settle. The waiting tasks."""
    waiter_step, wait = waiter
    waiters: list[asyncio.Task] = []
    for step in steps:
        if step[0] in actions:
            actions[step[0]](step)
        elif step[0] == waiter_step:
            waiters.append(asyncio.create_task(wait()))
        elif step[0] == "cancel" and waiters:
            waiters[step[1] % len(waiters)].cancel()
        else:
            await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    return waiters


def run_queue_scenario(queue_type: type, steps: list[tuple]) -> tuple:
    async def scenario() -> tuple:
        queue = queue_type()
        getters = await play(steps, {"put": lambda step: queue.put_nowait(step[1])}, ("get", queue.get))
        outcomes = [outcome(task) for task in getters]
        left = [queue.empty()]
        while not queue.empty():
            left.append(await queue.get())
        for task in getters:
            task.cancel()
        return outcomes, left

    return asyncio.run(scenario())


@settings(max_examples=300, deadline=None)
@given(queue_steps)
# A getter woken by a put and cancelled before it ran: the next getter must get the item instead.
@example([("get",), ("get",), ("step",), ("put", 7), ("cancel", 0), ("step",)])
def test_the_inbox_hands_out_items_as_asyncio_queue_does(steps):
    assert run_queue_scenario(Inbox, steps) == run_queue_scenario(asyncio.Queue, steps)


gate_steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["set", "clear", "wait", "step"])),
        st.tuples(st.just("cancel"), st.integers(0, 9)),
    ),
    max_size=30,
)


def run_gate_scenario(make_gate, steps: list[tuple]) -> tuple:
    async def scenario() -> tuple:
        gate = make_gate()
        actions = {"set": lambda step: gate.set(), "clear": lambda step: gate.clear()}
        waiters = await play(steps, actions, ("wait", gate.wait))
        outcomes = [outcome(task) for task in waiters]
        for task in waiters:
            task.cancel()
        return outcomes, gate.is_set()

    return asyncio.run(scenario())


def an_open_asyncio_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@settings(max_examples=300, deadline=None)
@given(gate_steps, st.booleans())
def test_the_gate_opens_and_closes_as_asyncio_event_does(steps, starts_open):
    ours = run_gate_scenario(lambda: Gate(open=starts_open), steps)
    theirs = run_gate_scenario(an_open_asyncio_event if starts_open else asyncio.Event, steps)
    assert ours == theirs


def test_an_idle_socket_s_inbox_and_gate_hold_less_than_one_deque():
    inbox, gate = Inbox(), Gate(open=True)
    one_deque = sys.getsizeof(asyncio.Queue()._getters)

    async def as_an_idle_socket() -> tuple[str, str, int]:
        inbox.put_nowait("connect")
        first = await inbox.get()
        reader = asyncio.create_task(inbox.get())  # the app's receive, waiting for the socket's life
        await asyncio.sleep(0)
        held = sys.getsizeof(inbox) + sys.getsizeof(inbox._getters) + sys.getsizeof(gate)
        inbox.put_nowait("message")
        return first, await reader, held

    first, second, held = asyncio.run(as_an_idle_socket())
    assert (first, second) == ("connect", "message")
    assert held + sys.getsizeof(RarelyUsedQueue()) < one_deque / 2
    assert inbox._items is None and inbox._getters is None and gate._waiters is None


def test_rarely_used_queue_is_first_in_first_out():
    events = RarelyUsedQueue()
    events.append("lost")
    events.append("later")
    assert bool(events) and events.popleft() == "lost" and events.popleft() == "later" and not events


async def test_the_socket_protocol_holds_the_lean_parts():
    async def app(scope, receive, send) -> None:
        return None

    config = uvicorn.Config(app, ws="wsproto")
    config.load()
    protocol = ClosingWSProtocol(config=config, server_state=ServerState(), app_state={})
    assert isinstance(protocol.queue, Inbox)
    assert isinstance(protocol.writable, Gate) and protocol.writable.is_set()


def test_a_socket_forgets_its_request_headers_and_token_once_its_caller_is_known():
    token = "eyJhbGciOiJIUzI1NiJ9.secret.signature"
    scope = {
        "type": "websocket",
        "path": "/ws/provider/",
        "headers": [(b"host", b"example.org"), (b"authorization", f"Bearer {token}".encode())],
        "query_string": f"token={token}".encode(),
    }
    socket = AsgiSocket(scope, receive=None, send=None)  # type: ignore[arg-type]
    assert socket.query("token") == token and socket.header(b"authorization") == f"Bearer {token}"
    socket.forget_credentials()
    assert socket.query("token") is None and socket.header(b"authorization") is None
    assert token not in repr(scope) and scope["path"] == "/ws/provider/"
