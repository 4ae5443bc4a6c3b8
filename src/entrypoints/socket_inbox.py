"""Lean stand-ins for the asyncio primitives uvicorn gives every WebSocket, which an idle socket keeps for life.

uvicorn's wsproto protocol holds an ``asyncio.Queue`` of ASGI events and an ``asyncio.Event`` for flow
control. Each allocates its deques up front: the queue three (items, getters, putters) and an event of its
own for ``join()``, the event one; 760 bytes a deque, ~4 KB a socket in all (tracemalloc, bench.socket_memory),
a fifth of an idle socket's memory. An idle socket's queue is empty, nobody waits on the gate, and only one
reader (the ASGI app's ``receive``) ever takes from the queue. Here nothing is allocated until there is an item
or a waiter, and it is let go when there is none again: ~0.2 KB a socket with wsproto's queue below.

Written by hand: asyncio has no lazy variants, and these do only what uvicorn calls (``put_nowait``, ``get``,
``empty``; ``set``, ``clear``, ``wait``, ``is_set``), with asyncio's semantics, tested against them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Inbox(Generic[Item]):
    """A FIFO queue without a bound, for uvicorn's ``protocol.queue``: ``put_nowait``, ``get`` and ``empty``."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: deque[Item] | None = None
        # A list: an idle socket's reader waits here for its whole life, and one waiter is all there ever is.
        self._getters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Item) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._wake_next_getter()

    async def get(self) -> Item:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter  # put_nowait wakes it and takes it off the list
            except BaseException:
                getter.cancel()
                self._forget(getter)
                if self._items and not getter.cancelled():
                    # Woken and cancelled at once: pass the item's wake-up on, as asyncio.Queue does.
                    self._wake_next_getter()
                raise
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def _wake_next_getter(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not self._getters:
            self._getters = None

    def _forget(self, getter: asyncio.Future[None]) -> None:
        if self._getters is not None:
            with contextlib.suppress(ValueError):  # a getter woken by put_nowait has left already
                self._getters.remove(getter)
            if not self._getters:
                self._getters = None


class RarelyUsedQueue(list):  # type: ignore[type-arg]
    """A deque's ``append``/``popleft`` on a list: 56 bytes empty where a deque takes 760, for a queue that stays
    empty for a socket's life and holds one item when it does not (wsproto's ``Connection._events``, which only
    ever queues the abnormal closure of a lost connection)."""

    __slots__ = ()

    def popleft(self) -> object:
        return self.pop(0)


class Gate:
    """A flag tasks can wait for, for uvicorn's ``protocol.writable``: ``set``, ``clear``, ``wait``, ``is_set``."""

    __slots__ = ("_open", "_waiters")

    def __init__(self, open: bool = False) -> None:
        self._open = open
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        if self._open:
            return
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
