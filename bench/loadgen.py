"""The load generator: runs in its own process, never in the server's. Speaks HTTP and WebSocket with aiohttp.

The parent (``bench.run``) sends it a plan; it reports figures back through a queue, and pauses at
``checkpoint`` steps so the parent can read the server's memory before and after the sockets open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp


def percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


@dataclass
class Sent:
    started: float
    latency: float
    status: int
    work_id: int | None


@dataclass
class Inbox:
    """What the provider sockets received: arrival time per work id."""

    arrived: dict[int, float] = field(default_factory=dict)
    answers: dict[int, float] = field(default_factory=dict)  # seeker side: work_accepted per work id
    pongs: int = 0


async def listen(ws: aiohttp.ClientWebSocketResponse, inbox: Inbox) -> None:
    async for frame in ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.perf_counter()
        message = json.loads(frame.data)
        kind = message.get("type")
        if kind == "work_assigned":
            inbox.arrived.setdefault(message["work_id"], now)
        elif kind in ("work_accepted", "work_rejected"):
            inbox.answers.setdefault(message["work_id"], now)
        elif kind == "pong":
            inbox.pongs += 1


async def open_sockets(sessions, ws_base: str, path: str, tokens: list[str], inbox: Inbox, progress) -> list:
    """Open one socket per token, 200 at a time; ``sessions`` (one or a list) take turns per batch: one per
    source address, since one address reaches one server port from at most ~28,000 ephemeral ports."""
    sessions = sessions if isinstance(sessions, list) else [sessions]
    sockets, tasks = [], []
    batch = 200
    for start in range(0, len(tokens), batch):
        session = sessions[(start // batch) % len(sessions)]
        opened = await asyncio.gather(
            *(
                session.ws_connect(f"{ws_base}{path}?token={t}", heartbeat=None, autoping=True, compress=0)
                for t in tokens[start : start + batch]
            )
        )
        sockets += opened
        tasks += [asyncio.create_task(listen(ws, inbox)) for ws in opened]
        progress(f"sockets open: {len(sockets)}/{len(tokens)}")
    # A ping through every socket: the server answers after the replay, so when all pongs are back
    # every socket is subscribed and live, and the phase measures delivery, not connection set-up.
    expected = inbox.pongs + len(sockets)
    for ws in sockets:
        await ws.send_str('{"type":"ping"}')
    deadline = time.perf_counter() + 300
    while inbox.pongs < expected and time.perf_counter() < deadline:  # noqa: ASYNC110 (filled by listeners)
        await asyncio.sleep(0.05)
    progress(f"sockets live: {inbox.pongs - expected + len(sockets)}/{len(sockets)}")
    return sockets


async def post_assign(session, url: str, seeker_token: str, provider_id: int) -> tuple[int, int | None]:
    body = {
        "provider_id": provider_id,
        "service_type": "worker",
        "message": "Need help with painting work",
        "distance": "2.5km",
        "latitude": 12.345,
        "longitude": 67.890,
    }
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {seeker_token}"}) as response:
        data = await response.json(content_type=None)
        work_id = data.get("data", {}).get("work_order_id") if response.status == 201 else None
        return response.status, work_id


async def post_reference(session, url: str) -> tuple[int, None]:
    async with session.post(url) as response:
        await response.read()
        return response.status, None


@contextlib.contextmanager
def collector_paused():
    """The generator's own garbage collector stays off while it measures.

    Holding 10,000 sockets, the generator's full collections took ~0.2 s, and every request in
    flight meanwhile looked that much slower: the server's figures must not include them.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def closed_loop(make_request, concurrency: int, duration: float) -> tuple[list[Sent], float]:
    records: list[Sent] = []
    deadline = 0.0  # set once the generator's own collection is done: it takes ~0.2 s holding 10,000 sockets

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, work_id = await make_request()
            except aiohttp.ClientError:
                status, work_id = 0, None
            records.append(Sent(started, time.perf_counter() - started, status, work_id))

    with collector_paused():
        began = time.perf_counter()
        deadline = began + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return records, time.perf_counter() - began


async def open_loop(make_request, rate: float, duration: float) -> tuple[list[Sent], float, int]:
    """Requests at fixed times, whether or not earlier ones finished; latency counts from the planned time."""
    records: list[Sent] = []
    count = int(rate * duration)
    late = 0

    async def one(planned: float) -> None:
        try:
            status, work_id = await make_request()
        except aiohttp.ClientError:
            status, work_id = 0, None
        records.append(Sent(planned, time.perf_counter() - planned, status, work_id))

    tasks = []
    with collector_paused():
        began = time.perf_counter()
        for i in range(count):
            planned = began + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.005:
                late += 1
            tasks.append(asyncio.create_task(one(planned)))
        await asyncio.gather(*tasks)
    return records, time.perf_counter() - began, late


class OpenedConnections:
    """When the generator's HTTP session opened a connection (aiohttp's trace hook): a phase whose pool was closed
    while idle (aiohttp's 15 s limit, or the server's keep-alive timeout) opens new ones as its first requests go."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_connection_create_end.append(self._opened)

    async def _opened(self, session, context, params) -> None:
        self.at.append(time.perf_counter())

    def during(self, records: list[Sent]) -> dict[str, int]:
        if not records:
            return {}
        began, ended = min(r.started for r in records), max(r.started + r.latency for r in records)
        return {
            "phase": sum(began <= at <= ended for at in self.at),
            "first_second": sum(began <= at <= began + 1 for at in self.at),
        }


async def open_http_pool(session, base: str, connections: int) -> None:
    """Open the session's HTTP connections before an open-loop phase, as a load balancer keeps its pool to a backend.

    aiohttp closes a connection idle for 15 s, and opening 5,000 sockets takes longer: the phase then began with an
    empty pool, each of its first requests opened a connection (24-26 in the first 0.2 s, on both sides' CPU), and
    43-59 orders at its start took up to 160 ms (with the pool open: none). New connections during the phase are
    still counted (``http_connections_opened``).
    """

    async def one() -> None:
        async with session.get(f"{base}/health") as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(connections)))


def slow_stretches(records: list[Sent], inbox: Inbox, over: float = 0.025, gap: float = 0.2) -> list[dict]:
    """When in the phase the orders slower than ``over`` end to end were sent: stretches of them, the largest
    first. A few long stretches point at one event (a collection, a checkpoint); many short ones at load."""
    if not records:
        return []
    began = min(r.started for r in records)
    slow = sorted(
        (r.started, inbox.arrived.get(r.work_id, r.started + 5.0) - r.started)
        for r in records
        if r.work_id is None or inbox.arrived.get(r.work_id, float("inf")) - r.started > over
    )
    stretches: list[dict] = []
    for started, latency in slow:
        at = started - began
        if stretches and at - stretches[-1]["to_s"] <= gap:
            last = stretches[-1]
            last.update(to_s=at, requests=last["requests"] + 1, max_ms=max(last["max_ms"], latency * 1000))
        else:
            stretches.append({"from_s": at, "to_s": at, "requests": 1, "max_ms": latency * 1000})
    largest = sorted(stretches, key=lambda stretch: -stretch["requests"])[:5]
    return [{name: round(value, 2) for name, value in stretch.items()} for stretch in largest]


def summarize(records: list[Sent], elapsed: float, inbox: Inbox | None, expected_status: int) -> dict[str, Any]:
    ok = [r for r in records if r.status == expected_status]
    result: dict[str, Any] = {
        "requests": len(records),
        "ok": len(ok),
        "errors": len(records) - len(ok),
        "requests_per_second": round(len(ok) / elapsed, 1) if elapsed else 0,
        "http_latency_ms": percentiles([r.latency for r in ok]),
    }
    if inbox is not None:
        arrived = [inbox.arrived[r.work_id] - r.started for r in ok if r.work_id in inbox.arrived]
        late = [r for r in ok if r.work_id not in inbox.arrived or inbox.arrived[r.work_id] - r.started > 5]
        result["end_to_end_ms"] = percentiles(arrived)
        result["not_arrived_within_5s"] = len(late)
        result["slow_stretches"] = slow_stretches(ok, inbox)
    return result


async def wait_for_arrivals(inbox: Inbox, records: list[Sent], within: float = 5.0) -> None:
    wanted = {r.work_id for r in records if r.work_id is not None}
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline and not wanted <= inbox.arrived.keys():  # noqa: ASYNC110 (filled by other tasks)
        await asyncio.sleep(0.05)


async def interleaved_ratio(turns: dict[str, Any], concurrency: int, rounds: int, seconds: float) -> dict[str, Any]:
    """Closed-loop turns of a few seconds for each request kind, the order rotating every round; the ratios are of
    the medians. This machine's speed drifts by up to 3x within minutes, so phases run minutes apart compare the
    hours as much as the endpoints; turns seconds apart see the same machine."""
    names = list(turns)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            records, elapsed = await closed_loop(turns[name], concurrency, seconds)
            ok = sum(1 for r in records if 200 <= r.status < 300)
            rates[name].append(round(ok / elapsed, 1))
    medians = {name: round(statistics.median(values), 1) for name, values in rates.items()}
    return {
        "rounds": rounds,
        "seconds": seconds,
        "req_per_s": rates,
        "median_req_per_s": medians,
        "ratios_of_medians": {
            f"assign_vs_{name}": round(medians["assign"] / medians[name], 2) for name in names if name != "assign"
        },
    }


async def run_plan(plan: dict[str, Any], report, checkpoint) -> None:
    base, ws_base = plan["base_url"], plan["ws_url"]
    providers: list[dict] = plan["providers"]
    seekers: list[dict] = plan["seekers"]
    rng = random.Random(7)

    def progress(text: str) -> None:
        report({"progress": text})

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    opened = OpenedConnections()
    # The idle sockets come from these source addresses (127.0.0.2-9 for more than ~25,000 sockets).
    socket_sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=(address, 0)), timeout=aiohttp.ClientTimeout(total=60)
        )
        for address in plan.get("source_addresses", ())
    ]
    async with (
        contextlib.AsyncExitStack() as stack,
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30), trace_configs=[opened.trace]
        ) as session,
    ):
        for extra in socket_sessions:
            await stack.enter_async_context(extra)
        idle_sessions = socket_sessions or session
        for _ in range(20):  # warm-up: first requests pay for imports and pool connections
            await post_reference(session, f"{base}/bench/insert")
        if plan.get("memory_only"):  # --ws-compare: server memory around the sockets, nothing else
            checkpoint("before_sockets")
            tokens = [p["token"] for p in providers[: plan["idle_sockets"]]]
            sockets = await open_sockets(idle_sessions, ws_base, "/ws/work/provider/", tokens, Inbox(), progress)
            checkpoint("sockets_open")
            for ws in sockets:
                await ws.close()
            return

        for phase, path, how in (
            ("reference_insert", "/bench/insert", "Core"),
            ("reference_insert_orm", "/bench/insert-orm", "ORM"),
        ):
            progress(f"reference endpoint (one INSERT, SQLAlchemy {how}), closed loop")
            records, elapsed = await closed_loop(
                lambda path=path: post_reference(session, f"{base}{path}"), plan["concurrency"], plan["duration"]
            )
            report({"phase": phase, "result": summarize(records, elapsed, None, 200)})

        checkpoint("before_sockets")
        inbox = Inbox()
        connected = providers[: plan["idle_sockets"]]
        sockets = await open_sockets(
            idle_sessions, ws_base, "/ws/work/provider/", [p["token"] for p in connected], inbox, progress
        )
        seeker_inbox = Inbox()
        rtt_seekers = seekers[:5]
        sockets += await open_sockets(
            session, ws_base, "/ws/work/seeker/", [s["token"] for s in rtt_seekers], seeker_inbox, progress
        )
        checkpoint("sockets_open")

        def assign():
            return post_assign(
                session,
                f"{base}/api/1/profiles/assign-work/",
                rng.choice(seekers)["token"],
                rng.choice(connected)["id"],
            )

        if plan.get("closed_loop", True):
            progress(f"assign-work closed loop, {plan['concurrency']} concurrent, {plan['duration']} s")
            records, elapsed = await closed_loop(assign, plan["concurrency"], plan["duration"])
            await wait_for_arrivals(inbox, records)
            report({"phase": "assign_closed_loop", "result": summarize(records, elapsed, inbox, 201)})

        if plan.get("ratio_rounds"):
            rounds, seconds = plan["ratio_rounds"], plan["ratio_seconds"]
            progress(f"assign-work and the yardsticks interleaved: {rounds} rounds of {seconds} s turns each")
            turns = {
                "assign": assign,
                "core": lambda: post_reference(session, f"{base}/bench/insert"),
                "orm": lambda: post_reference(session, f"{base}/bench/insert-orm"),
            }
            result = await interleaved_ratio(turns, plan["concurrency"], rounds, seconds)
            report({"phase": "interleaved_ratio", "result": result})

        for phase, target in (("assign_open_loop", plan["latency_sockets"]), ("capacity", plan["capacity_sockets"])):
            if target > len(connected):
                more = providers[len(connected) : target]
                sockets[len(connected) : len(connected)] = await open_sockets(
                    idle_sessions, ws_base, "/ws/work/provider/", [p["token"] for p in more], inbox, progress
                )
                connected = connected + more
                checkpoint(f"sockets_open_{len(connected) + len(rtt_seekers)}")
            elif phase == "capacity":
                continue
            progress(
                f"{phase}: assign-work open loop at {plan['rate']}/s for {plan['duration']} s, {len(connected)} sockets"
            )
            await open_http_pool(session, base, plan["concurrency"])
            records, elapsed, late = await open_loop(assign, plan["rate"], plan["duration"])
            await wait_for_arrivals(inbox, records)
            result = summarize(records, elapsed, inbox, 201)
            result.update(rate_target=plan["rate"], generator_late_sends=late, idle_sockets=len(connected))
            result["http_connections_opened"] = opened.during(records)
            report({"phase": phase, "result": result})

        progress("accept round trip")
        report(
            {
                "phase": "accept_round_trip",
                "result": await accept_round_trips(
                    session, base, rtt_seekers, connected, sockets, inbox, seeker_inbox, plan["round_trips"]
                ),
            }
        )
        for ws in sockets:
            await ws.close()


async def accept_round_trips(session, base, rtt_seekers, connected, sockets, inbox, seeker_inbox, rounds: int) -> dict:
    """Provider answers over its socket; time until the seeker's socket has the answer."""
    by_provider = {p["id"]: sockets[i] for i, p in enumerate(connected)}
    samples = []
    for i in range(rounds):
        seeker, provider = rtt_seekers[i % len(rtt_seekers)], connected[i % len(connected)]
        status, work_id = await post_assign(
            session, f"{base}/api/1/profiles/assign-work/", seeker["token"], provider["id"]
        )
        if status != 201:
            continue
        for _ in range(200):
            if work_id in inbox.arrived:
                break
            await asyncio.sleep(0.005)
        answered = time.perf_counter()
        await by_provider[provider["id"]].send_str(
            json.dumps({"type": "work_response", "work_id": work_id, "accepted": True})
        )
        for _ in range(1000):
            if work_id in seeker_inbox.answers:
                samples.append(seeker_inbox.answers[work_id] - answered)
                break
            await asyncio.sleep(0.001)
    return {"rounds": rounds, "answered": len(samples), "round_trip_ms": percentiles(samples)}


def child_main(plan: dict[str, Any], results, commands) -> None:
    """Entry point of the load-generator process."""

    def report(item: dict) -> None:
        results.put(item)

    def checkpoint(name: str) -> None:
        results.put({"checkpoint": name})
        commands.get()  # wait until the parent has taken its measurement

    try:
        asyncio.run(run_plan(plan, report, checkpoint))
    except Exception as error:  # report it rather than dying silently
        results.put({"error": repr(error)})
    results.put({"done": True})
