"""The AsyncAPI document: served, complete, and saying what README's WebSocket section says."""

from __future__ import annotations

import re
from pathlib import Path

from entrypoints.http.socket_protocol import APP_MESSAGE, NOTIFICATIONS, REPLIES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_table(after: str) -> dict[str, set[str]]:
    """type -> fields, from the first table after the line that starts with ``after``."""
    section = README[README.index("## WebSocket protocol") :]
    section = section[section.index(after) :]
    rows = {}
    for line in section.splitlines()[1:]:
        if line.startswith("| type") or line.startswith("| ---"):
            continue
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[-1]))
    return rows


def struct_fields(cls) -> set[str]:
    return set(cls.__struct_fields__)


async def test_the_document_is_served_and_names_every_message_and_schema(http):
    document = (await http.get("/schema/asyncapi.json")).json()
    assert document["asyncapi"] == "3.0.0"
    assert {c["address"] for c in document["channels"].values()} == {"/ws/work/provider/", "/ws/work/seeker/"}
    schemas, messages = document["components"]["schemas"], document["components"]["messages"]
    for message in messages.values():
        assert message["payload"]["$ref"].rsplit("/", 1)[1] in schemas
    tags = {m["name"] for m in messages.values()}
    every = {c.__struct_config__.tag for c in (*NOTIFICATIONS, *REPLIES, *APP_MESSAGE.__args__)}
    assert tags == every
    provider = document["channels"]["provider"]["messages"]
    assert "WorkAssigned" in provider and "WorkResponse" in provider
    assert "WorkAssigned" not in document["channels"]["seeker"]["messages"]


def test_readme_and_the_protocol_types_agree():
    common = {"type", "notification_id", "work_id", "service_type", "status"}
    to_app = readme_table("Server to app")
    from_app = readme_table("App to server")
    for cls in NOTIFICATIONS:
        tag = cls.__struct_config__.tag
        assert to_app[tag] == struct_fields(cls) - common, tag
    for cls in REPLIES:
        tag = cls.__struct_config__.tag
        assert to_app[tag] == struct_fields(cls) - {"type"}, tag
    assert set(to_app) == {c.__struct_config__.tag for c in (*NOTIFICATIONS, *REPLIES)}
    for cls in APP_MESSAGE.__args__:
        assert from_app[cls.__struct_config__.tag] == struct_fields(cls) - {"type"}
