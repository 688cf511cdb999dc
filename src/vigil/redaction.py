"""Secrets in settings: masked whenever settings are printed, logged, tracked or written.

The API key is a ``SecretStr``; connection URLs stay strings (every client takes them as is)
but lose their password when the settings are serialised, unless the serialisation context
asks for the secrets (``{"reveal_secrets": True}``), which only hand-overs to a child process do.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pydantic import SerializationInfo

MASK = "**********"


def revealed(info: SerializationInfo) -> bool:
    """Whether this serialisation was asked to keep the secrets."""
    context = info.context
    return bool(isinstance(context, dict) and context.get("reveal_secrets"))


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by :data:`MASK`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can read: show nothing of it
        return MASK
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
