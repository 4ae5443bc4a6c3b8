"""Logs are structured and never carry a token."""

from __future__ import annotations

import io
import json
import logging

from entrypoints.logs import JsonFormatter, RedactSecrets, configure_logging


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


def test_uvicorn_urls_are_redacted_for_every_handler_not_only_ours():
    # An operator's handler, or a test's capture, sees uvicorn's line after configure_logging: redacted too.
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    logger = logging.getLogger("uvicorn.error")
    logger.disabled = False
    try:
        configure_logging("INFO", "json")
        configure_logging("INFO", "json")  # configured twice: still one redacting filter on the logger
        assert sum(isinstance(f, RedactSecrets) for f in logger.filters) == 1
        logger.addHandler(capture)
        logger.warning('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/ws/work/provider/?token=eyJa.eyJb.sig")
    finally:
        logger.removeHandler(capture)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert stream.getvalue().strip() == '127.0.0.1:5000 - "WebSocket /ws/work/provider/?token=***" [accepted]'
