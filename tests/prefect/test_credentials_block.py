"""VeniceCredentials: where the key comes from, and what the saved block exposes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.settings import get_current_settings
from pydantic import SecretStr

import prefect_venice
from prefect_venice.blocks import VeniceCredentials
from prefect_venice.client import DEFAULT_BASE_URL, VeniceClient
from prefect_venice.emulator import Emulator
from prefect_venice.errors import AuthenticationError


def test_importable_from_the_package_root() -> None:
    assert prefect_venice.VeniceCredentials is VeniceCredentials


def test_defaults_to_the_real_api() -> None:
    assert VeniceCredentials().base_url == DEFAULT_BASE_URL == "https://api.venice.ai/api/v1"


def test_stored_key_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENICE_API_KEY", "from-environment")
    block = VeniceCredentials(api_key=SecretStr("from-block"))
    assert block.resolve_api_key().get_secret_value() == "from-block"


def test_falls_back_to_venice_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENICE_API_KEY", "from-environment")
    assert VeniceCredentials().resolve_api_key().get_secret_value() == "from-environment"


def test_no_key_anywhere_is_a_clear_error() -> None:
    with pytest.raises(AuthenticationError, match="VENICE_API_KEY") as caught:
        VeniceCredentials().get_client()
    assert caught.value.retryable is False


def test_get_client_talks_to_the_configured_api(emulator: Emulator) -> None:
    block = VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url)
    with block.get_client() as client:
        assert isinstance(client, VeniceClient)
        assert client.list_video_models()


async def test_get_async_client_talks_to_the_configured_api(emulator: Emulator) -> None:
    block = VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url)
    async with block.get_async_client() as client:
        assert await client.list_video_models()


def test_saved_key_round_trips_but_never_shows(emulator: Emulator) -> None:
    name = f"round-trip-{uuid.uuid4().hex[:8]}"
    VeniceCredentials(api_key="a-very-secret-key", base_url=emulator.base_url).save(name)

    loaded = VeniceCredentials.load(name)

    assert isinstance(loaded, VeniceCredentials)
    assert loaded.api_key is not None
    assert loaded.api_key.get_secret_value() == "a-very-secret-key"
    assert "a-very-secret-key" not in repr(loaded)
    assert "a-very-secret-key" not in str(loaded.model_dump())


def test_prefect_cli_registers_the_block_type(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_venice.blocks"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Venice Credentials" in completed.stdout


def test_prefect_collection_entry_point_registers_the_block() -> None:
    # A fresh interpreter: what Prefect's server does when it loads collections.
    script = (
        "from prefect.plugins import load_prefect_collections\n"
        "from prefect.blocks.core import Block\n"
        "from prefect.utilities.dispatch import get_registry_for_type\n"
        "load_prefect_collections()\n"
        "print(sorted(k for k in get_registry_for_type(Block) if 'venice' in k))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=os.path.dirname(sys.executable),
    )
    assert completed.returncode == 0, completed.stderr
    assert "'venice-credentials'" in completed.stdout
