"""One Venice client per process, credentials and pacing, shared by every task that runs there.

Building a VeniceClient builds two httpx clients (each loads the CA bundle: tens of
milliseconds of CPU and over a megabyte) and starts with an empty model catalogue.
A batch of a thousand videos would do that thousands of times; sharing one client
per process keeps one connection pool and one catalogue fetch per run. httpx's sync
Client is safe to share between threads. Entries are renewed every
CLIENT_LIFETIME_SECONDS so a long-lived worker sees catalogue changes.
"""

from __future__ import annotations

import hashlib
import threading
import time

from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.client import VeniceClient
from prefect_venice.models import VideoModel
from prefect_venice.tasks.pacing import paced_retry_policy

__all__ = ["CLIENT_LIFETIME_SECONDS", "shared_client", "video_models"]

CLIENT_LIFETIME_SECONDS = 600.0

_lock = threading.Lock()
_clients: dict[tuple[str, str, float, str | None, int], VeniceClient] = {}


def shared_client(credentials: VeniceCredentials, pace_with: str | None = None) -> VeniceClient:
    """Return this process's client for `credentials`; don't close it (others use it).

    `pace_with` names the global rate limit whose slots the client's own retries
    take (see tasks.pacing.paced_retry_policy); clients differ per limit.
    """
    key = credentials.resolve_api_key().get_secret_value()
    fingerprint = hashlib.sha256(key.encode("utf-8")).hexdigest()
    generation = int(time.monotonic() // CLIENT_LIFETIME_SECONDS)
    cache_key = (fingerprint, credentials.base_url, credentials.timeout, pace_with, generation)
    with _lock:
        client = _clients.get(cache_key)
        if client is None:
            stale = [k for k in _clients if k[4] != generation]
            for old in stale:
                # In-flight calls keep their own reference; the pools close when unused.
                del _clients[old]
            client = credentials.get_client(retry=paced_retry_policy(pace_with))
            _clients[cache_key] = client
        return client


def video_models(credentials: VeniceCredentials) -> list[VideoModel]:
    """Return the model catalogue for `credentials`, fetched once per process and lifetime.

    Always through the unpaced shared client, so the clients kept per rate limit do
    not each fetch it again.
    """
    return shared_client(credentials).list_video_models()
