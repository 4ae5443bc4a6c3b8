"""The ``workcast`` console script. Its commands arrive with the entrypoint issue."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("workcast: the command line (serve, migrate, create-user, token, demo) is not built yet", file=sys.stderr)
    return 2
