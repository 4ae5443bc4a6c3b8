"""What an idle authenticated provider socket costs in memory, and which code holds it.

    .venv/bin/python -m bench.socket_memory [--sockets 2000] [--backend postgres|embedded]

Starts the bench server (``workcast serve``'s uvicorn options: wsproto, no per-message deflate), turns on
``tracemalloc`` in it, opens the sockets from a load-generator process and reports, per socket: the server's
RSS growth and the Python allocations that grew, by the package (or workcast layer) that made them.
The breakdown is what the memory target (issue 17: <= 16 KB per idle socket) has to be found in.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx

from bench.run import bench_server, infrastructure, load_generator, log, seed_users


def measure(backend: str, sockets: int) -> dict:
    with infrastructure(backend) as env:
        providers, seekers = asyncio.run(seed_users(env, sockets, 1))
        plan = {"providers": providers, "seekers": seekers, "idle_sockets": sockets, "memory_only": True}
        with bench_server(env, "wsproto") as (port, pid):
            base = f"http://127.0.0.1:{port}"
            found: dict = {"backend": backend, "sockets": sockets}
            for item in load_generator(port, pid, plan, timeout=900):
                if item.get("checkpoint") == "before_sockets":
                    httpx.post(f"{base}/bench/tracemalloc/start", timeout=60).raise_for_status()
                    found["rss_kb_before"] = item["rss_kb"]
                elif item.get("checkpoint") == "sockets_open":
                    found["rss_kb_per_socket"] = round((item["rss_kb"] - found["rss_kb_before"]) / sockets, 1)
                    grown = httpx.get(f"{base}/bench/tracemalloc/grown", timeout=120).json()
                    found["traced_kb_per_socket"] = {
                        part: round(size / 1024 / sockets, 2)
                        for part, size in grown["parts"].items()
                        if size >= sockets * 50  # 50 bytes a socket and more
                    }
                    found["traced_kb_per_socket_total"] = round(sum(grown["parts"].values()) / 1024 / sockets, 2)
                    found["top_lines_bytes_per_socket"] = {
                        line: round(size / sockets) for line, size in grown["lines"].items()
                    }
            return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--backend", choices=["postgres", "embedded"], default="postgres")
    args = parser.parse_args()
    found = measure(args.backend, args.sockets)
    log(f"RSS {found['rss_kb_per_socket']} KB per socket (tracing on), traced {found['traced_kb_per_socket_total']} KB")
    for part, kb in found["traced_kb_per_socket"].items():
        print(f"{part:<40} {kb:>8.2f} KB per socket")
    print("the lines that hold most, bytes per socket:")
    for line, size in found["top_lines_bytes_per_socket"].items():
        print(f"  {line:<70} {size:>6}")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
