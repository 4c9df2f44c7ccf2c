"""Passwords never leave the process: URLs are shown, saved and tracked with their password masked."""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@host... — the password runs to the last '@' before the host, as SQLAlchemy reads it,
# so an unescaped '#', '/' or '?' in it is still masked
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@.*)$", re.DOTALL)
_QUERY_SECRET = re.compile(r"(?P<key>[?&](?:password|passwd|pwd)=)(?P<value>[^&]*)", re.IGNORECASE)


def secrets_of(url: str) -> list[str]:
    """The password(s) written in ``url``: in its user-info part and as ``password=`` query values."""
    found = []
    match = _USERINFO.match(url)
    if match and match["password"]:
        found.append(match["password"])
    found += [m["value"] for m in _QUERY_SECRET.finditer(url) if m["value"]]
    return found


def is_masked(url: str) -> bool:
    """Whether ``url`` carries a password already masked by :func:`redact_url` (it cannot be used to connect)."""
    return MASK in secrets_of(url)


def redact_url(text: str) -> str:
    """``text`` with the password of a ``scheme://user:password@host/...`` URL (and ``password=`` query values)
    replaced by ``***``; anything else (paths, URLs without a password) comes back unchanged."""
    if "://" not in text:
        return text
    match = _USERINFO.match(text)
    if match and match["password"]:
        text = f"{match['head']}{MASK}{match['tail']}"
    return _QUERY_SECRET.sub(lambda m: m["key"] + (MASK if m["value"] else ""), text)


def redact_in(message: str, url: str) -> str:
    """``message`` (an error text that may quote ``url`` or parts of it) with ``url``'s passwords masked."""
    for secret in secrets_of(url):
        message = message.replace(secret, MASK)
    return message
