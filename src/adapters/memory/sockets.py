"""The open sockets of each user in this process (the embedded default has one process)."""

from __future__ import annotations

from application.ports import SocketRegistry


class InProcessSocketRegistry(SocketRegistry):
    def __init__(self) -> None:
        self._by_user: dict[int, list[str]] = {}  # oldest first

    async def register(self, user_id: int, socket_id: str, cap: int) -> list[str]:
        sockets = self._by_user.setdefault(user_id, [])
        sockets.append(socket_id)
        evicted, sockets[:] = sockets[: max(0, len(sockets) - cap)], sockets[max(0, len(sockets) - cap) :]
        return evicted

    async def unregister(self, user_id: int, socket_id: str) -> None:
        sockets = self._by_user.get(user_id, [])
        if socket_id in sockets:
            sockets.remove(socket_id)
        if not sockets:
            self._by_user.pop(user_id, None)
