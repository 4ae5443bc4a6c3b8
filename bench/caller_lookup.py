"""CPU per caller lookup: who a bearer token speaks for, when the token cache has no entry for it (a miss) and when
it has (a hit), on PostgreSQL (fsync on). A miss comes with each user's first request after a quiet half minute.

    .venv/bin/python -m bench.caller_lookup [--users 200] [--rounds 3]

It also runs the same misses on the transactional unit of work (BEGIN, SELECT, ROLLBACK from the pool), which is
what a lookup took before it had the one-statement one: the two figures side by side, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.run import infrastructure, seed_users


async def measure(env: dict[str, str], users: int, rounds: int) -> dict[str, float]:
    from entrypoints.container import build_container, close
    from entrypoints.settings import Settings

    _, seekers = await seed_users(env, 1, users)
    tokens = [seeker["token"] for seeker in seekers]
    container = build_container(Settings.from_env(env))
    try:
        identify = container.identify_caller()
        found: dict[str, float] = {}
        ways = {"miss_one_statement": container.single_write_unit_of_work, "miss_transaction": container.unit_of_work}
        for round_number in range(rounds + 1):  # interleaved, so that a change of the machine's speed touches both
            for name, factory in ways.items():
                identify._lookup_uow_factory = factory  # the bench swaps what the container chose
                identify._ids.clear()
                started = time.process_time()
                for token in tokens:
                    await identify.execute(token)
                per_lookup = (time.process_time() - started) / len(tokens) * 1000
                if round_number > 0:  # the first round opens the connections and prepares the statements
                    found[name] = min(found.get(name, per_lookup), per_lookup)
        started = time.process_time()
        for _ in range(rounds):
            for token in tokens:
                await identify.execute(token)
        found["hit"] = (time.process_time() - started) / (rounds * len(tokens)) * 1000
        return {f"{name}_cpu_ms": round(ms, 3) for name, ms in found.items()}
    finally:
        await close(container)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with infrastructure("postgres") as env:
        print(json.dumps(asyncio.run(measure(env, args.users, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
