"""Redaction of secrets in text, for the Prefect layer and users: links shown, never given away.

The implementation lives in the core's private `_redact` module, which the clients
register every key and link with; this module is its public face.
"""

from ._redact import REDACTED_LINK, redact, redact_url, register_secret

__all__ = ["REDACTED_LINK", "redact", "redact_url", "register_secret"]
