"""The scale-out recipe on loopback: PostgreSQL, a Prefect server, three workers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The recipe's script lives in deployments/, a folder of scripts rather than a package.
DEPLOYMENTS_DIR = Path(__file__).resolve().parents[2] / "deployments"
if str(DEPLOYMENTS_DIR) not in sys.path:
    sys.path.append(str(DEPLOYMENTS_DIR))

from scale_out import postgres_bin  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the scale-out tests, with the reason, where PostgreSQL is not installed."""
    if postgres_bin() is not None:
        return
    reason = (
        "PostgreSQL's server programs are missing (Debian: apt-get install postgresql; "
        ".ci/run installs them)"
    )
    for item in items:
        if "scale_out" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
