"""Rules every stored text obeys, whichever store keeps it.

PostgreSQL refuses a NUL character in text while SQLite stores it: checking here makes both stores
answer the same. Other control characters (except tab and line breaks in free text) have no place in
names, tokens or labels, and in logs or pushes they are a way to forge lines.
"""

from __future__ import annotations

import re

from domain.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(field: str, value: str, limit: int, *, required: bool = True, multiline: bool = False) -> None:
    """``InvalidInput`` naming the field if the value is empty (when required), too long or has control characters."""
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters", field=field)
    if (_CONTROL_EXCEPT_LINES if multiline else _CONTROL).search(value):
        allowed = " (tab and line breaks are allowed)" if multiline else ""
        raise InvalidInput(f"{field} must not contain NUL or other control characters{allowed}", field=field)
