"""The young generations are collected every EVERY admitted sockets, however the allocation count stands."""

from __future__ import annotations

import gc

from entrypoints.http import young_objects


def test_the_young_generations_are_collected_every_few_hundred_admitted_sockets(monkeypatch):
    monkeypatch.setattr(young_objects, "_admitted", 0)
    young = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            young.append(info["generation"])

    gc.disable()  # only the collections asked for
    gc.callbacks.append(note)
    try:
        for _ in range(young_objects.EVERY - 1):
            young_objects.socket_admitted()
        assert young == []
        young_objects.socket_admitted()
        assert young == [1]
        for _ in range(young_objects.EVERY):
            young_objects.socket_admitted()
        assert young == [1, 1]
    finally:
        gc.callbacks.remove(note)
        gc.enable()
