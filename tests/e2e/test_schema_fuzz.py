"""Schema-driven fuzzing: whatever the OpenAPI document allows a client to send must not produce a 5xx.

schemathesis generates the requests from /schema/openapi.json (its pytest plugin does not work with
pytest 9 yet, so the operations are driven through hypothesis directly).
"""

from __future__ import annotations

import itertools
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from entrypoints.container import close
from tests.e2e.conftest import Admin

ERROR_KEYS = {"status", "message", "code", "field", "data"}  # the ErrorBody schema of the document


@pytest.fixture
async def callers(server):
    """A seeker and an active provider; cases alternate between them so both roles' paths are exercised."""
    admin = Admin(server.settings)
    try:
        yield [await admin.seeker("Fuzz Seeker"), await admin.provider("Fuzz Provider")]
    finally:
        await close(admin.container)


def fuzz(server, callers, max_examples: int) -> tuple[list[str], Counter]:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/schema/openapi.json")
    document = httpx.get(f"{server.base_url}/schema/openapi.json").json()
    who = itertools.cycle(callers)
    problems: list[str] = []
    statuses: Counter = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:

        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=server.base_url, headers=next(who).headers, timeout=10)
            statuses[response.status_code] += 1
            documented = document["paths"][case.path][case.method.lower()]["responses"]
            if str(response.status_code) not in documented:
                problems.append(f"{case.method} {case.path}: {response.status_code} is not in the document")
            if response.status_code >= 500:
                problems.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r}: {response.text}")
            elif response.status_code >= 400:
                body = response.json()
                if set(body) != ERROR_KEYS or body["status"] != "error" or not body["code"] or body["data"] is not None:
                    problems.append(f"{case.method} {case.formatted_path}: not the error envelope: {body}")

        check()
    return problems, statuses


async def test_no_request_the_schema_allows_causes_a_server_error(server, callers):
    import asyncio

    problems, statuses = await asyncio.to_thread(fuzz, server, callers, 40)
    assert problems == []
    assert sum(statuses.values()) > 100 and any(200 <= s < 300 for s in statuses), statuses
