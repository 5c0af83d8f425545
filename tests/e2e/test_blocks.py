"""The credentials block as Prefect sees it: registered by `-m prefect_venice`, a clean form."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from supervisor import BIN_DIR, Stack, StackConfig, client_environment

from prefect_venice.blocks import VeniceCredentials


def test_block_register_with_the_package_name_registers_the_block(
    stack_config: StackConfig, demo_stack: Stack, tmp_path: Any
) -> None:
    done = subprocess.run(
        [str(BIN_DIR / "prefect"), "block", "register", "-m", "prefect_venice"],
        cwd=tmp_path,  # not the checkout: its prefect_venice/ folder lacks the mapped blocks
        env={**client_environment(stack_config, demo_stack.api_url), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Successfully registered 1 block" in done.stdout
    assert "Venice Credentials" in done.stdout


def test_the_package_lists_the_block_without_importing_prefect() -> None:
    code = (
        "import sys, prefect_venice\n"
        "assert 'VeniceCredentials' in dir(prefect_venice)\n"
        "assert 'prefect' not in sys.modules, 'dir() imported Prefect'\n"
    )
    subprocess.run([str(BIN_DIR / "python"), "-c", code], check=True, timeout=60, cwd="/")


def test_block_fields_have_human_titles() -> None:
    properties = VeniceCredentials.model_json_schema()["properties"]
    titles = {name: properties[name]["title"] for name in ("api_key", "base_url", "timeout")}
    assert titles == {"api_key": "API key", "base_url": "Base URL", "timeout": "Timeout (seconds)"}
    assert all(field.get("description") for field in properties.values())


def test_the_key_is_one_password_box_with_no_null_toggle() -> None:
    schema = VeniceCredentials.model_json_schema()
    key = schema["properties"]["api_key"]
    assert "anyOf" not in key  # `SecretStr | None` rendered as a "password | null" toggle
    assert (key["type"], key["format"], key["default"]) == ("string", "password", "")
    assert "api_key" not in schema.get("required", [])
    assert "api_key" in schema["secret_fields"]


def test_an_empty_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENICE_API_KEY", "from-environment")
    for block in (VeniceCredentials(), VeniceCredentials.model_validate({"api_key": None})):
        assert block.api_key.get_secret_value() == ""
        assert block.resolve_api_key().get_secret_value() == "from-environment"


def test_an_empty_key_survives_a_save_and_load(prefect_api: Stack) -> None:
    VeniceCredentials(base_url="http://127.0.0.1:9/api/v1").save("no-key", overwrite=True)
    loaded = VeniceCredentials.load("no-key")
    assert isinstance(loaded, VeniceCredentials)
    assert loaded.api_key.get_secret_value() == ""
    assert loaded.base_url == "http://127.0.0.1:9/api/v1"
