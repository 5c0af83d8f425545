"""Keeps API keys and private download links out of messages and log records."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

__all__ = ["REDACTED_LINK", "install_log_filter", "redact", "redact_url", "register_secret"]

REDACTED_LINK = "<private link redacted>"

_lock = threading.Lock()
# Full secret string -> its replacement. Values are few (one key per client, one
# link per private job), so the registry stays small for a process's lifetime.
_secrets: dict[str, str] = {}

# httpx logs "HTTP Request: GET <full url>" at INFO; httpcore's trace loggers are
# children, and logger filters do not apply to records of child loggers.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


def redact_url(url: str) -> str:
    """Return scheme://host[:port]/<private link redacted>: where a link points, not the link."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED_LINK
    if not parts.scheme or not parts.netloc:
        return REDACTED_LINK
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}/{REDACTED_LINK}"


def register_secret(secret: str, *, kind: str = "link") -> None:
    """Remember a secret so redact() and the log filter replace it wherever it appears."""
    if len(secret) < 8:
        # Replacing very short strings would mangle ordinary text; real keys and
        # pre-signed links are far longer.
        return
    replacement = redact_url(secret) if kind == "link" else "<api key redacted>"
    with _lock:
        _secrets[secret] = replacement
        if kind == "link":
            path = urlsplit(secret).path
            if len(path) > 1:
                _secrets[path] = f"/{REDACTED_LINK}"


def redact(text: str) -> str:
    """Replace every registered secret in text (longest first, so a link beats its path)."""
    with _lock:
        items = sorted(_secrets.items(), key=lambda kv: len(kv[0]), reverse=True)
    for secret, replacement in items:
        if secret in text:
            text = text.replace(secret, replacement)
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message with secrets replaced; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logger's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_filter = _RedactingFilter()


def install_log_filter() -> None:
    """Attach the redacting filter to the httpx and httpcore loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
