"""Names that reach SQL or a path: game types, regions, metrics, fleets."""

from __future__ import annotations

import re

NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
_NAME_RE = re.compile(NAME_PATTERN)


class InvalidName(ValueError):
    """A name that is not lowercase letters, digits, '_' or '-'."""


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid name, else raise with the fix in the message."""
    if not is_valid_name(value):
        raise InvalidName(
            f"invalid {kind} {value!r}: use 1-64 lowercase letters, digits, '_' or '-'"
        )
    return value  # type: ignore[return-value]
