"""A hypothesis state machine over work orders and notifications.

Random actors assign, answer, cancel, expire and acknowledge while pushes fail in random ways, the
broker goes down and sockets come and go. After every step the invariants must hold; at the end,
with the outage over, every notification must be settled.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from application.ports import PushFailed, PushRetryLater, PushSent, PushTokenInvalid
from domain.errors import DomainError
from domain.notifications import DeliveryStatus, NotificationKind, PushState, SocketState
from domain.work_orders import TERMINAL_STATUSES, WorkStatus
from tests.unit.conftest import make_world

PUSH_OUTCOMES = {
    "sent": None,
    "invalid": lambda d: PushTokenInvalid("UNREGISTERED"),
    "retry": lambda d: PushRetryLater("UNAVAILABLE", timedelta(seconds=30)),
    "failed": lambda d: PushFailed("THIRD_PARTY_AUTH_ERROR"),
    "mixed": lambda d: PushSent(f"m-{d.id}") if (d.id or 0) % 2 else PushTokenInvalid("SENDER_ID_MISMATCH"),
}


def expected_status(n) -> DeliveryStatus:
    """The derivation, written a second way: acknowledged > some channel sent > some channel pending > failed."""
    if n.delivered_at:
        return DeliveryStatus.DELIVERED
    channels = {n.push_state.value, n.socket_state.value}
    if "sent" in channels:
        return DeliveryStatus.SENT
    if "pending" in channels:
        return DeliveryStatus.PENDING
    return DeliveryStatus.FAILED


class WorkcastMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = make_world(seed=1)
        self.terminal_seen: dict[int, WorkStatus] = {}
        self.answers: dict[int, int] = {}  # order id -> provider whose answer was recorded
        self.sockets: dict[int, object] = {}

    def run(self, coro):
        result = self.loop.run_until_complete(coro)
        self.loop.run_until_complete(self.world.settle())  # outcomes are written behind each request
        return result

    def teardown(self) -> None:
        self.loop.close()

    @initialize()
    def people(self) -> None:
        w = self.world
        self.seekers = [self.run(w.seeker(f"S{i}")) for i in range(2)]
        self.providers = [self.run(w.provider(f"P{i}")) for i in range(3)]
        for i, person in enumerate(self.seekers + self.providers):
            if i % 2 == 0:
                self.run(w.register_device.execute(person.id, f"token-{person.id}-a"))
            if i % 3 == 0:
                self.run(w.register_device.execute(person.id, f"token-{person.id}-b"))

    @property
    def everyone(self):
        return self.seekers + self.providers

    def orders(self):
        return list(self.world.store.tables.work_orders.values())

    # --- actions --------------------------------------------------------------------------------

    @rule(s=st.integers(0, 1), p=st.integers(0, 2))
    def assign(self, s, p):
        try:
            self.run(self.world.assign(self.seekers[s], self.providers[p]))
        except DomainError as error:
            assert error.code == "provider_unavailable"

    @precondition(lambda self: self.world.store.tables.work_orders)
    @rule(actor=st.integers(0, 4), pick=st.integers(0, 50), accepted=st.booleans())
    def respond(self, actor, pick, accepted):
        orders = self.orders()
        order = orders[pick % len(orders)]
        who = self.everyone[actor]
        try:
            result = self.run(self.world.respond.execute(who.id, order.id, accepted))
        except DomainError as error:
            # Someone else's order answers like a missing one: never not_your_order (an existence oracle).
            assert error.code in {"not_a_provider", "work_order_not_found", "already_answered"}
            assert error.code != "work_order_not_found" or who.id != order.provider_id
            return
        assert who.id == order.provider_id and order.status is WorkStatus.PENDING
        assert order.id not in self.answers
        self.answers[order.id] = who.id
        assert result.order.status is (WorkStatus.ACCEPTED if accepted else WorkStatus.REJECTED)
        # Answering is proof the offer arrived: it is acknowledged, never sent or replayed again.
        offers = [
            n
            for n in self.world.store.tables.notifications.values()
            if n.work_id == order.id and n.kind is NotificationKind.WORK_ASSIGNED
        ]
        assert offers and all(n.delivered_at is not None for n in offers)

    @precondition(lambda self: self.world.store.tables.work_orders)
    @rule(actor=st.integers(0, 4), pick=st.integers(0, 50))
    def cancel(self, actor, pick):
        orders = self.orders()
        order = orders[pick % len(orders)]
        try:
            self.run(self.world.cancel.execute(self.everyone[actor].id, order.id))
        except DomainError as error:
            assert error.code in {"work_order_not_found", "not_your_order", "invalid_transition"}
            return
        assert self.everyone[actor].id == order.seeker_id

    @rule(seconds=st.sampled_from([1, 30, 120, 700]))
    def time_passes(self, seconds):
        self.world.clock.advance(timedelta(seconds=seconds))

    @rule()
    def expire(self):
        self.run(self.world.expire.execute())

    @rule()
    def dispatch(self):
        self.run(self.world.dispatch.execute())

    @rule()
    def many_retry_rounds(self):
        policy = self.world.delivery_policy
        for _ in range(policy.max_attempts + 1):
            self.world.clock.advance(policy.max_retry_delay + policy.lease)
            self.run(self.world.dispatch.execute())

    @rule(outcome=st.sampled_from(sorted(PUSH_OUTCOMES)))
    def push_behaves(self, outcome):
        self.world.push.outcome = PUSH_OUTCOMES[outcome]

    @rule(down=st.booleans())
    def broker_outage(self, down):
        self.world.broker.down = down

    @rule(who=st.integers(0, 4))
    def connect_or_disconnect(self, who):
        person = self.everyone[who]
        if person.id in self.sockets:
            self.run(self.world.broker.unsubscribe(person.id, self.sockets.pop(person.id)))
        elif not self.world.broker.down:
            self.sockets[person.id] = self.run(self.world.connect(person))

    @rule(p=st.integers(0, 2), active=st.booleans())
    def availability(self, p, active):
        self.run(self.world.set_availability.execute(self.providers[p].id, active))

    @precondition(lambda self: self.world.store.tables.notifications)
    @rule(who=st.integers(0, 4), pick=st.integers(0, 50))
    def acknowledge(self, who, pick):
        notes = list(self.world.store.tables.notifications.values())
        n = notes[pick % len(notes)]
        try:
            self.run(self.world.acknowledge.execute(self.everyone[who].id, n.id))
        except DomainError as error:
            assert error.code == "notification_not_found" and n.recipient_id != self.everyone[who].id

    @rule(who=st.integers(0, 4))
    def replay_tells_the_current_truth(self, who):
        """A socket that connects now sees only offers it can still take, first, and every order's current status."""
        if self.world.broker.down:
            return
        person = self.everyone[who]
        socket = self.run(self.world.connect(person))
        self.run(self.world.broker.unsubscribe(person.id, socket))
        now = self.world.clock.now()
        orders = self.world.store.tables.work_orders
        kinds = [m["type"] for m in socket.frames]
        assert kinds == sorted(kinds, key=lambda k: k != "work_assigned"), "actionable offers come first"
        for message in socket.frames:
            order = orders[message["work_id"]]
            assert message["status"] == order.status.value
            if message["type"] == "work_assigned":
                assert order.status is WorkStatus.PENDING and order.expires_at > now
        assert socket.replay_complete == {"type": "replay_complete", "count": len(kinds), "truncated": False}

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def acknowledged_is_never_due_again(self):
        for n in self.world.store.tables.notifications.values():
            if n.delivered_at is not None:
                assert n.next_attempt_at is None

    @invariant()
    def terminal_states_never_change(self):
        for order in self.orders():
            if order.id in self.terminal_seen:
                assert order.status is self.terminal_seen[order.id]
            elif order.status in TERMINAL_STATUSES:
                self.terminal_seen[order.id] = order.status

    @invariant()
    def only_the_assigned_providers_answer_is_recorded(self):
        for order in self.orders():
            if order.responded_at is not None:
                assert self.answers.get(order.id) == order.provider_id
        for n in self.world.store.tables.notifications.values():
            if n.kind in (NotificationKind.WORK_ACCEPTED, NotificationKind.WORK_REJECTED):
                order = self.world.store.tables.work_orders[n.work_id]
                assert n.payload["provider_id"] == order.provider_id == self.answers[order.id]
                assert n.recipient_id == order.seeker_id

    @invariant()
    def every_notification_is_accounted_for(self):
        for n in self.world.store.tables.notifications.values():
            status = n.delivery_status
            assert status is expected_status(n)
            if status is DeliveryStatus.PENDING:
                assert n.next_attempt_at is not None, "pending without a scheduled attempt would be lost"
            if status is DeliveryStatus.FAILED:
                assert n.next_attempt_at is None
                assert n.push_error or n.socket_error or n.socket_state is SocketState.NOT_CONNECTED
                assert n.push_state is not PushState.FAILED or n.push_error
            assert n.attempts <= self.world.delivery_policy.max_attempts

    @invariant()
    def no_device_is_used_after_being_invalidated(self):
        dead = {d.token for d in self.world.store.tables.devices.values() if not d.is_active}
        for push in self.world.push.sent:
            if push.device.token in dead and push.device.invalidated_at is not None:
                raise AssertionError("pushed to a device known dead at the time")

    def check_everything_settles(self):
        """With the outage over, enough dispatch rounds leave nothing pending."""
        self.world.broker.down = False
        self.world.push.outcome = None
        for _ in range(self.world.delivery_policy.max_attempts + 2):
            self.world.clock.advance(self.world.delivery_policy.max_retry_delay + self.world.delivery_policy.lease)
            self.run(self.world.dispatch.execute())
        for n in self.world.store.tables.notifications.values():
            assert n.delivery_status is not DeliveryStatus.PENDING

    @rule()
    @precondition(lambda self: len(self.world.store.tables.notifications) > 3)
    def everything_settles_once_the_outage_ends(self):
        self.check_everything_settles()


WorkcastMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_work_orders_and_notifications = WorkcastMachine.TestCase
