"""Runs generate_video once in its own process, so a test can SIGKILL it at a chosen moment.

Usage: python reliability_flow_runner.py '{"request": {...}, "credentials_block": "NAME"}'
(the request as VideoRequest fields).

Prints one line, `RESULT {"state": ..., "message": ..., "error": ..., "result": ...}`, and
exits 0 when the run completed, 1 when it failed. Log records (Prefect's and httpx's, whose
INFO lines carry request URLs) go to stderr, which the test keeps for the secrets scan.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from prefect_venice.flows import VideoRequest, generate_video


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    request = VideoRequest.model_validate(spec["request"])
    state = generate_video(
        request=request, credentials_block=spec["credentials_block"], return_state=True
    )
    outcome: dict[str, Any] = {"state": state.type.value, "message": state.message}
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        outcome["error"] = type(value).__name__
        outcome["error_message"] = str(value)
    else:
        outcome["result"] = value.model_dump(mode="json")
    print("RESULT " + json.dumps(outcome), flush=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
