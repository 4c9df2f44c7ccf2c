"""Passwords never leave the process: URLs are shown, saved and tracked with their password masked."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(text: str) -> str:
    """``text`` with the password of a ``scheme://user:password@host/...`` URL replaced by ``***``;
    anything else (paths, URLs without a password, unparsable text) comes back unchanged."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
