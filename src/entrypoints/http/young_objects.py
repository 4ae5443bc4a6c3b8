"""The young generation of CPython's collector, kept small through connect bursts.

CPython 3.11 collects the young generation once allocations minus deallocations pass the threshold (2,000),
and freeing an *older* object counts as a deallocation. A burst of connects allocates each socket's
long-lived objects while freeing older ones (the handshake's parser state), so the count stays low while the
young generation grows: 70,586 young objects after 10,000 connects, and the first young collection after
the burst took 48 ms of CPU, in the middle of the requests that followed (bench/: gc callbacks with
``len(gc.get_objects(0))``). Every ``EVERY`` admitted sockets the two young generations are collected: each
collection examines what those sockets left, a few milliseconds, spread over the burst, and the survivors go
on to the old generation. Collecting only the youngest moved the cost one step on: its survivors piled up in
the middle generation, whose next collection examined the whole burst (46 ms of CPU, bench). Nothing is frozen
or skipped: every object is examined as often as it would have been.
"""

from __future__ import annotations

import gc

EVERY = 200  # sockets admitted between collections of the young generations (~15 young objects each)

_admitted = 0


def socket_admitted() -> None:
    global _admitted
    _admitted += 1
    if _admitted >= EVERY:
        _admitted = 0
        gc.collect(1)
