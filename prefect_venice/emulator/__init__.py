"""A local Venice video API for tests, demos and benchmarks (standard library only).

```python
from prefect_venice.emulator import Emulator, EmulatorConfig, FaultConfig, peak_per_window

with Emulator(EmulatorConfig(api_key="emulator-key", time_scale=0.01, seed=1)) as emu:
    emu.base_url      # http://127.0.0.1:PORT/api/v1   (bearer auth with emu.api_key)
    emu.link_origin   # http://127.0.0.1:PORT2         (private download links; no auth)
    emu.ledger()      # the same JSON as GET {origin}/_emulator/ledger
    emu.requests()    # every request with its time, as GET {origin}/_emulator/requests
    peak_per_window(emu.requests(), "queue")  # most queue calls in any 60 s
```

Defaults worth knowing (all in `EmulatorConfig`): API key `emulator-key`; balance
100 USD; a prompt containing "forbidden" answers 422; request bodies above
25 MB answer 413; `/video/queue` allows 40 and `/video/retrieve` 120 requests
a minute per key; more than 20 failed requests within 30 s block the key for
30 s; a private link serves 5 GETs and lives 24 h. Every emulated period
(jobs, windows, lockout, link lifetime) is multiplied by `time_scale` (the
windows and the lockout not under `real_time_limits=True`); the times the
emulator reports are real. The models are in `catalog.CATALOG`;
`seedance-2-0-text-to-video-basic` answers 409 `needs_consent` unless
`consents.seedance` confirms all three attestations.

Billing: `GET /billing/balance` reports the balance (USD) and
`GET /billing/usage-history` lists one entry per charged `/video/queue` (amount
negative, in USD; `inferenceDetails.requestId` is the queue id; `sku` is
`<model id>-video-unit`), with cursor pages and CSV export as the spec describes.
`charge_markup` (or `Emulator.set_charge_markup`) charges jobs more or less than
their quote; `inference_api_key` adds a key that may not read billing (401).
"""

from .config import DEFAULT_API_KEY, EmulatorConfig, FaultConfig
from .ledger import peak_per_window
from .runner import Emulator

__all__ = ["DEFAULT_API_KEY", "Emulator", "EmulatorConfig", "FaultConfig", "peak_per_window"]
