"""The ``workcast`` command: serve, migrate, create-user, token, demo, dispatch."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from application.errors import SchemaNotMigrated
from entrypoints.settings import Settings, SettingsError

log = logging.getLogger("workcast")
TOKEN_COMMANDS = ("serve", "create-user", "token", "demo")  # the commands that verify or issue tokens


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        from entrypoints.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format if args.command in ("serve", "dispatch") else "text")
        if args.command in TOKEN_COMMANDS:
            if settings.embedded:
                settings = settings.with_jwt_secret()
            settings.require_token_keys()
        return args.run(settings, args)
    except SettingsError as error:
        print(f"workcast: configuration error: {error}", file=sys.stderr)
        return 2
    except SchemaNotMigrated:
        print("workcast: the database schema is missing or out of date: run `workcast migrate`", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workcast", description="Assign work to providers and make sure they hear.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP and WebSocket server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--ws",
        default="wsproto",
        choices=["wsproto", "websockets", "websockets-sansio"],
        help="uvicorn WebSocket implementation (wsproto holds an idle socket in the least memory)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (uvicorn's); more than one needs DATABASE_URL and REDIS_URL",
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_sync(_migrate))

    create = commands.add_parser("create-user", help="create a profile; prints {user_id, role, token} as JSON")
    create.add_argument("--role", required=True, choices=["seeker", "provider", "operator"])
    create.add_argument("--name", required=True)
    create.add_argument("--mobile", required=True)
    create.add_argument("--active", action="store_true", help="a provider who accepts work right away")
    create.set_defaults(run=_sync(_create_user))

    token = commands.add_parser("token", help="print a fresh token for a user")
    token.add_argument("user_id", type=int)
    token.set_defaults(run=_sync(_token))

    demo = commands.add_parser("demo", help="create a seeker and an active provider and print how to try them")
    demo.add_argument("--base-url", default="http://127.0.0.1:8000")
    demo.set_defaults(run=_sync(_demo))

    importer = commands.add_parser(
        "import", help="upsert profiles from an NDJSON or CSV (with a header) file; prints a JSON report"
    )
    importer.add_argument("file", help="NDJSON (one JSON object a line) or CSV: external_id,role,name,mobile,...")
    importer.add_argument("--format", choices=["ndjson", "csv"], help="default: from the file name (.csv is CSV)")
    importer.set_defaults(run=_sync(_import))

    fake = commands.add_parser(
        "fake-fcm", help="a local fake of FCM (v1 send API and OAuth token endpoint): try pushes offline"
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9099)
    fake.add_argument("--project", default="workcast-dev", help="the Firebase project id of the generated key")
    fake.add_argument(
        "--fail-token",
        action="append",
        default=[],
        metavar="PATTERN=ERROR",
        help="tokens or fids matching the glob PATTERN answer with the FCM error, e.g. 'dead-*=UNREGISTERED'"
        " (UNREGISTERED, INVALID_ARGUMENT, QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, SENDER_ID_MISMATCH,"
        " THIRD_PARTY_AUTH_ERROR); repeatable",
    )
    fake.add_argument(
        "--key-file", default="fake-fcm-service-account.json", help="where to write the throwaway service-account key"
    )
    fake.add_argument("--keep", type=int, default=1000, help="accepted messages kept for GET /received")
    fake.set_defaults(run=_fake_fcm)

    dispatch = commands.add_parser("dispatch", help="run the delivery retry loop as its own process")
    dispatch.add_argument("--once", action="store_true", help="one round, then exit")
    dispatch.set_defaults(run=_sync(_dispatch))
    return parser


def _sync(command: Callable[[Any, Settings, argparse.Namespace], Awaitable[int]]):
    """Run an async command with a container that is closed afterwards."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        async def with_container() -> int:
            from entrypoints.container import build_container, close

            container = build_container(settings)
            try:
                return await command(container, settings, args)
            finally:
                await close(container)

        return asyncio.run(with_container())

    return run


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from entrypoints.http.app import create_app
    from entrypoints.server import uvicorn_config, uvicorn_options

    if args.workers < 1:
        print("workcast serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers == 1:
        # uvicorn drains on SIGTERM, then raises the signal again with the handler that was there before:
        # this one, so a graceful stop exits 0 (not "killed by SIGTERM") and supervisors see a clean exit.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.Server(uvicorn_config(create_app(settings), settings, args.host, args.port, args.ws)).run()
        return 0
    if settings.embedded or not settings.redis_url:
        print(
            "workcast serve: --workers needs DATABASE_URL (PostgreSQL) and REDIS_URL: the embedded SQLite file and"
            " the in-process broker cannot be shared by several processes. Run one worker, or configure both.",
            file=sys.stderr,
        )
        return 2
    _share_metrics_between_workers()
    options = uvicorn_options(settings, args.host, args.port, args.ws, workers=args.workers)
    uvicorn.run("entrypoints.http.app:create_app", factory=True, workers=args.workers, **options)
    return 0


def _share_metrics_between_workers() -> None:
    """prometheus-client's multiprocess mode: each worker writes its values to files in one folder and
    /metrics (whichever worker answers) adds them up. PROMETHEUS_MULTIPROC_DIR if set (emptied), else a
    fresh temporary folder; set before the workers start so they all see it."""
    import tempfile
    from pathlib import Path

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="workcast-metrics-")


async def _ensure_schema(settings: Settings) -> None:
    if settings.auto_migrate:
        await _migrate_now(settings)


async def _migrate_now(settings: Settings) -> None:
    from adapters.sqlalchemy.migrate import upgrade_async
    from entrypoints.container import database_settings

    await upgrade_async(database_settings(settings).url)


async def _migrate(container, settings: Settings, args: argparse.Namespace) -> int:
    from adapters.sqlalchemy.migrate import MigrationBlocked

    try:
        await _migrate_now(settings)
    except MigrationBlocked as blocked:
        print(f"workcast: {blocked}", file=sys.stderr)
        return 2
    print("database schema is up to date", file=sys.stderr)
    return 0


async def _create_user(container, settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import DomainError
    from domain.profiles import Role

    await _ensure_schema(settings)
    try:
        profile = await container.create_profile().execute(Role(args.role), args.name, args.mobile, args.active)
    except DomainError as error:
        print(f"workcast: {error.field or 'error'}: {error.message}", file=sys.stderr)
        return 2
    tokens = container.tokens()
    token = tokens.issue(profile.external_id) if tokens.can_issue else None
    _say_which_database(settings)
    if token is None:
        print(
            "workcast: no signing key here (JWT_JWKS_URL): the auth server issues this user's tokens", file=sys.stderr
        )
    print(json.dumps({"user_id": profile.id, "role": profile.role.value, "token": token}))
    return 0


async def _token(container, settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import ProfileNotFound

    await _ensure_schema(settings)
    try:
        profile = await container.get_profile().execute(args.user_id)
        print(container.tokens().issue(profile.external_id))
    except ProfileNotFound:
        print(f"workcast: no user {args.user_id}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"workcast: {error}", file=sys.stderr)
        return 2
    return 0


async def _demo(container, settings: Settings, args: argparse.Namespace) -> int:
    from domain.geo import GeoPoint
    from domain.profiles import Role

    await _ensure_schema(settings)
    seeker = await container.create_profile().execute(Role.SEEKER, "Demo Seeker", "9000000001")
    provider = await container.create_profile().execute(Role.PROVIDER, "John Doe", "9876543210", True)
    await container.set_provider_availability().execute(provider.id, True, GeoPoint(12.345, 67.89))
    _say_which_database(settings)
    tokens = container.tokens()
    seeker_token, provider_token = tokens.issue(seeker.id), tokens.issue(provider.id)
    base, ws_base = args.base_url.rstrip("/"), args.base_url.rstrip("/").replace("http", "ws", 1)
    body = {
        "provider_id": provider.id,
        "service_type": "worker",
        "message": "Need help with painting work",
        "distance": "2.5km",
        "latitude": 12.345,
        "longitude": 67.890,
    }
    print(f"""Demo users (tokens valid for {settings.token_ttl}):
  seeker   id={seeker.id}  SEEKER_JWT_TOKEN={seeker_token}
  provider id={provider.id}  PROVIDER_JWT_TOKEN={provider_token}

Start the server in another terminal:  .venv/bin/workcast serve

1. Provider listens for work (WebSocket):
  .venv/bin/python -m websockets "{ws_base}/ws/work/provider/?token={provider_token}"
   (then type: {{"type": "work_response", "work_id": 1, "accepted": true}})

2. Seeker listens for answers (WebSocket):
  .venv/bin/python -m websockets "{ws_base}/ws/work/seeker/?token={seeker_token}"

3. Provider registers a device:
  curl -X POST {base}/api/1/profiles/fcm-token/ -H "Authorization: Bearer {provider_token}" \\
    -H "Content-Type: application/json" -d '{{"fcm_token": "your_device_fcm_token_here"}}'

4. Seeker assigns work:
  curl -X POST {base}/api/1/profiles/assign-work/ -H "Authorization: Bearer {seeker_token}" \\
    -H "Content-Type: application/json" -d '{json.dumps(body)}'

5. Lists:
  curl {base}/api/1/profiles/work-orders/ -H "Authorization: Bearer {seeker_token}"
  curl "{base}/api/1/profiles/active-providers/?latitude=12.3&longitude=67.9&radius_km=10" \\
    -H "Authorization: Bearer {seeker_token}"
  curl -X PATCH {base}/api/1/profiles/provider-status/ -H "Authorization: Bearer {provider_token}" \\
    -H "Content-Type: application/json" -d '{{"is_active_for_work": true}}'
""")
    return 0


async def _import(container, settings: Settings, args: argparse.Namespace) -> int:
    import csv
    import time
    from pathlib import Path

    await _ensure_schema(settings)
    path = Path(args.file)
    if not path.is_file():  # noqa: ASYNC240 (a one-shot command: nothing else runs on this loop)
        print(f"workcast: no file {path}", file=sys.stderr)
        return 2
    as_csv = args.format == "csv" or (args.format is None and path.suffix.lower() == ".csv")

    async def records():
        with path.open("r", encoding="utf-8", errors="replace", newline="") as source:  # noqa: ASYNC230
            if as_csv:
                for number, row in enumerate(csv.DictReader(source), start=2):  # line 1 is the header
                    yield number, row
            else:
                for number, line in enumerate(source, start=1):
                    if line.strip():
                        yield number, line

    started = time.monotonic()
    on_terminal = sys.stderr.isatty()

    def progress(report) -> None:
        if on_terminal:
            rate = report.lines / max(time.monotonic() - started, 1e-6)
            print(
                f"\r{report.lines:,} lines  created {report.created:,}  updated {report.updated:,}"
                f"  rejected {report.rejected:,}  ({rate:,.0f}/s)",
                end="",
                file=sys.stderr,
                flush=True,
            )

    report = await container.import_profiles().execute(records(), on_batch=progress)
    if on_terminal:
        print(file=sys.stderr)
    _say_which_database(settings)
    seconds = round(time.monotonic() - started, 2)
    print(json.dumps({**vars(report), "seconds": seconds}))
    return 0 if not report.rejected else 1


def _fake_fcm(settings: Settings, args: argparse.Namespace) -> int:
    from collections import deque
    from pathlib import Path

    import uvicorn

    from entrypoints.fake_fcm import FakeFcm

    base = f"http://{args.host}:{args.port}"
    fake = FakeFcm(base_url=base, token_uri=f"{base}/token", project_id=args.project, sent=deque(maxlen=args.keep))
    fake.keep_messages = args.keep > 0
    for rule in args.fail_token:
        pattern, _, error = rule.rpartition("=")
        try:
            fake.fail_matching(pattern, error)
        except ValueError as problem:
            print(f"workcast: --fail-token {rule!r}: {problem}", file=sys.stderr)
            return 2
    key = Path(args.key_file).absolute()
    key.parent.mkdir(parents=True, exist_ok=True)
    fake.write_service_account(key)
    print(
        f"""Fake FCM at {base} (project {args.project}). Point workcast at it:
  PUSH_BACKEND=fcm FIREBASE_CREDENTIALS_PATH={key} FCM_BASE_URL={base} .venv/bin/workcast serve
What it accepted: curl {base}/received""",
        file=sys.stderr,
    )
    uvicorn.run(fake, host=args.host, port=args.port, log_config=None, lifespan="off", backlog=4096)
    return 0


def _say_which_database(settings: Settings) -> None:
    """On stderr, so stdout stays one JSON object: a relative data directory elsewhere is another database."""
    from entrypoints.container import database_location

    print(f"workcast: wrote to {database_location(settings)}", file=sys.stderr)


async def _dispatch(container, settings: Settings, args: argparse.Namespace) -> int:

    await _ensure_schema(settings)
    await container.broker().start()
    dispatcher = container.dispatcher()
    if args.once:
        expired, attempted = await dispatcher.run_once()
        print(json.dumps({"expired_orders": expired, "attempted_notifications": attempted}))
        return 0
    log.info("dispatcher running", extra={"interval_seconds": settings.dispatch_interval})
    await dispatcher.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
