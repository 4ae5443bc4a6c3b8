"""The live sockets held by this process, by user: the last hop of every real-time broker."""

from __future__ import annotations

import asyncio
import logging

from application.ports import SocketSink

log = logging.getLogger(__name__)


class LocalSockets:
    """The live sockets of this process, by user. Sends one encoded text to all of a user's sockets."""

    def __init__(self, send_timeout: float = 5.0) -> None:
        self._by_user: dict[int, list[SocketSink]] = {}
        self._send_timeout = send_timeout
        self._background: set[asyncio.Future] = set()

    def add(self, user_id: int, sink: SocketSink) -> bool:
        """Returns True when this is the user's first socket here."""
        sinks = self._by_user.setdefault(user_id, [])
        sinks.append(sink)
        return len(sinks) == 1

    def remove(self, user_id: int, sink: SocketSink) -> bool:
        """Returns True when the user has no socket left here."""
        sinks = self._by_user.get(user_id, [])
        if sink in sinks:
            sinks.remove(sink)
        if not sinks:
            self._by_user.pop(user_id, None)
            return True
        return False

    def users(self) -> list[int]:
        return list(self._by_user)

    def count(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, ()))

    async def send(self, user_id: int, text: str) -> int:
        """Write the text to every socket of the user; returns how many writes succeeded so far.

        Returns as soon as one socket took it (the message reached the user): a frozen app beside a
        healthy one must not hold the answer up, or the healthy delivery would be recorded as failed.
        The slower writes go on in the background; each is bounded by the sink's own send timeout.
        """
        sinks = list(self._by_user.get(user_id, ()))
        if not sinks:
            return 0
        if len(sinks) == 1:
            return int(await self._send_one(sinks[0], text))
        pending = {asyncio.ensure_future(self._send_one(s, text)) for s in sinks}
        for task in pending:  # held from the start: the writes outlive this call (or its cancellation)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        succeeded = 0
        while pending and not succeeded:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            succeeded += sum(task.result() for task in done)
        return succeeded

    async def _send_one(self, sink: SocketSink, text: str) -> bool:
        try:
            async with asyncio.timeout(self._send_timeout):  # wait_for would cost a task per write (3.11)
                await sink(text)
        except Exception as error:  # a dead or stuck socket must not stop the others
            log.info("socket write failed", extra={"error": repr(error)})
            return False
        return True
