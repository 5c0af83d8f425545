"""`Emulator`: runs both origins in background threads for tests, demos and the CLI."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .config import EmulatorConfig, FaultConfig
from .server import API_PREFIX, LEDGER_PATH, REQUESTS_PATH, EmulatorHTTPServer
from .service import VeniceService


class Emulator:
    """A local Venice video API: `with Emulator(EmulatorConfig(...)) as emu: emu.base_url`."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._servers: list[EmulatorHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._service: VeniceService | None = None
        self._origin = ""
        self._link_origin = ""

    def start(self) -> Emulator:
        """Bind both ports and start serving; returns self."""
        if self._service is not None:
            raise RuntimeError("the emulator is already running")
        config = self.config
        # The service must know the link origin, which is known only once its port is bound.
        service = VeniceService(config, link_origin="")
        link_server = EmulatorHTTPServer((config.host, config.link_port), service, "link")
        self._link_origin = f"http://{config.host}:{link_server.server_address[1]}"
        service.link_origin = self._link_origin
        try:
            api_server = EmulatorHTTPServer((config.host, config.port), service, "api")
        except OSError:
            link_server.server_close()
            raise
        self._origin = f"http://{config.host}:{api_server.server_address[1]}"
        self._service = service
        self._servers = [api_server, link_server]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"venice-emulator-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop both servers and end open connections."""
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads, self._service = [], [], None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def service(self) -> VeniceService:
        """The running service (raises if the emulator is not started)."""
        if self._service is None:
            raise RuntimeError("the emulator is not running; use `with Emulator(...)` or start()")
        return self._service

    @property
    def origin(self) -> str:
        """Scheme, host and port of the API origin."""
        self.service  # noqa: B018 - raises when not running
        return self._origin

    @property
    def base_url(self) -> str:
        """The API base URL, like the real `https://api.venice.ai/api/v1`."""
        return self.origin + API_PREFIX

    @property
    def link_origin(self) -> str:
        """Scheme, host and port of the origin that serves private download links."""
        self.service  # noqa: B018 - raises when not running
        return self._link_origin

    @property
    def ledger_url(self) -> str:
        """Where the ledger is served (no auth)."""
        return self.origin + LEDGER_PATH

    @property
    def requests_url(self) -> str:
        """Where the request log is served (no auth)."""
        return self.origin + REQUESTS_PATH

    @property
    def api_key(self) -> str:
        """The API key the emulator accepts."""
        return self.config.api_key

    def ledger(self) -> dict[str, Any]:
        """Return calls, statuses and charges so far (the same as `GET /_emulator/ledger`)."""
        return self.service.ledger_snapshot()

    def requests(self) -> list[dict[str, Any]]:
        """Return every request answered so far, oldest first, with wall-clock times.

        The same list as `GET /_emulator/requests` serves under "requests": dicts with
        `endpoint`, `method`, `status` (code or "dropped"), `time` (`time.time()`) and
        `queue_id` (or None). Read peak rates with `peak_per_window`.
        """
        return self.service.requests_snapshot()

    def set_balance(self, usd: float) -> None:
        """Set the account balance in USD."""
        self.service.set_balance(usd)

    def set_charge_markup(self, markup: float | Mapping[str, float]) -> None:
        """Charge jobs queued from now on `markup` above their quote (0.1: 10% more).

        One fraction for every model, or a mapping of model id (or "*") to a fraction;
        see `EmulatorConfig.charge_markup`. Jobs already charged keep their charge.
        """
        self.service.set_charge_markup(markup)

    def configure_faults(self, faults: FaultConfig) -> None:
        """Replace the injected faults; their random sequences restart from the seed.

        The count behind `FaultConfig.queue_drop_after_create_first` restarts as well.
        """
        self.service.configure_faults(faults)

    def reset_ledger(self) -> None:
        """Forget all counts, charges, the usage history and the request log.

        Jobs, links and the balance stay; usage-history cursors issued before are refused.
        """
        self.service.reset_ledger()
