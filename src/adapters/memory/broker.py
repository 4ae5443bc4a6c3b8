"""Real-time broker inside one process: the embedded default, and the local fan-out every broker needs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from application.local_sockets import LocalSockets
from application.ports import BrokerReconnected, RealtimeBroker, SocketSink


def encode_message(message: Mapping[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


class InProcessBroker(RealtimeBroker):
    """Publishes to the sockets held by this process. Enough for one app instance."""

    def __init__(self, send_timeout: float = 5.0) -> None:
        self.sockets = LocalSockets(send_timeout)

    async def publish(self, user_id: int, message: Mapping[str, Any]) -> int:
        return await self.sockets.send(user_id, encode_message(message))

    async def subscribe(self, user_id: int, sink: SocketSink) -> None:
        self.sockets.add(user_id, sink)

    async def unsubscribe(self, user_id: int, sink: SocketSink) -> None:
        self.sockets.remove(user_id, sink)

    async def is_healthy(self) -> bool:
        return True

    def on_reconnect(self, callback: BrokerReconnected) -> None:
        """In one process the subscription is never lost."""

    async def online(self, user_ids: Collection[int]) -> set[int]:
        return {user_id for user_id in user_ids if self.sockets.count(user_id)}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""
