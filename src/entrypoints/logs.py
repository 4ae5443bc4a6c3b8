"""Structured logs: one JSON object per line (or plain text for a terminal), with the ``extra`` fields."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message: noise in JSON, and unredacted
}
# Browsers put the JWT in the WebSocket URL (?token=...), and uvicorn logs URLs.
_SECRET_IN_URL = re.compile(r"(?i)\b(token|access_token|jwt)=[^\s&\"']+")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")


# The request a log line belongs to: set for each HTTP request, inherited by the tasks it starts
# (deliveries finishing in the background), so every line the request causes carries its id.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = request_id.get()
            if current is not None:
                record.request_id = current
        return True


class OncePer:
    """Says a recurring problem once per interval, not once per request or round: a flood hides every other line."""

    def __init__(self, seconds: float = 60.0) -> None:
        self._seconds = seconds
        self._last: dict[str, float] = {}

    def due(self, key: str) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._seconds:
            return False
        self._last[key] = now
        return True


class RedactSecrets(logging.Filter):
    """Removes tokens from log lines before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub("Bearer ***", _SECRET_IN_URL.sub(r"\1=***", message))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}" + (f" [{extra}]" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_OUR_HANDLER = "workcast"
# Loggers whose lines carry request URLs: redacted on the logger itself, so that every handler on the way
# (an operator's own, a test's capture) gets the redacted line, not only ours.
_LOGS_URLS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_LOGS_PARAMETERS = ("aiosqlite", "psycopg", "sqlalchemy", "httpx", "httpcore", "hpack", "urllib3", "aiohttp", "redis")


def _writes_to_stderr(handler: logging.Handler) -> bool:
    """Python's lastResort-style handlers (basicConfig's) would print every line a second time."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stderr, sys.stdout)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    handler.addFilter(WithRequestId())
    handler.set_name(_OUR_HANDLER)
    root = logging.getLogger()
    # Replace our own handler (configured again: no duplicate lines); leave others', e.g. a test's capture.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _OUR_HANDLER and not _writes_to_stderr(h)]
    root.addHandler(handler)
    root.setLevel(level)
    # Access logs of every request drown the useful lines; uvicorn's errors still come through.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for logs_urls in map(logging.getLogger, _LOGS_URLS):
        if not any(isinstance(f, RedactSecrets) for f in logs_urls.filters):
            logs_urls.addFilter(RedactSecrets())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Drivers' and HTTP clients' debug lines print statement parameters and request bodies: FCM tokens,
    # bearer tokens. LOG_LEVEL=DEBUG is for workcast's own lines; these never go below INFO.
    for chatty in _LOGS_PARAMETERS:
        logging.getLogger(chatty).setLevel(max(logging.INFO, logging.getLevelName(level)))
