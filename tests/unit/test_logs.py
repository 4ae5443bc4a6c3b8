"""Logs are structured and never carry a token."""

from __future__ import annotations

import io
import json
import logging

from entrypoints.logs import JsonFormatter, RedactSecrets


def emit(logger_name: str, message: str, *args, **extra) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate, logger.disabled = False, False  # a server started by another test may have tuned it
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return json.loads(stream.getvalue())


def test_tokens_in_websocket_urls_are_redacted():
    line = emit(
        "uvicorn.error",
        '%s - "WebSocket %s" [accepted]',
        "127.0.0.1:5000",
        "/ws/work/provider?token=eyJhbGciOi.eyJzdWIi.sig-nat_ure",
        color_message="coloured /ws/work/provider?token=eyJhbGciOi.eyJzdWIi.sig",
    )
    assert "eyJ" not in json.dumps(line)
    assert line["message"] == '127.0.0.1:5000 - "WebSocket /ws/work/provider?token=***" [accepted]'


def test_bearer_headers_are_redacted_and_extra_fields_kept():
    line = emit("workcast.test", "got Authorization: Bearer abc.def.ghi", user_id=7)
    assert line["message"] == "got Authorization: Bearer ***" and line["user_id"] == 7 and line["level"] == "WARNING"
