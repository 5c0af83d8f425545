"""What the demo prints: the ports it got (and which preferred ones were busy), the export line."""

from __future__ import annotations

import socket
from pathlib import Path

from demo import DEMO_EMULATOR_PORT, describe_stack, export_line
from supervisor import Stack, StackConfig, choose_port


def _stack(server_port: int, emulator_port: int, root: Path) -> Stack:
    ui = f"http://127.0.0.1:{server_port}"
    return Stack(
        api_url=f"{ui}/api",
        ui_url=ui,
        emulator_url=f"http://127.0.0.1:{emulator_port}/api/v1",
        emulator_api_key="emulator-key",
        prefect_home=str(root / "prefect-home"),
        videos=str(root / "videos"),
    )


def test_a_busy_preferred_port_is_named_with_the_one_chosen(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        chosen = choose_port(busy)
    assert chosen != busy
    config = StackConfig(root=tmp_path, server_port=busy, emulator_port=DEMO_EMULATOR_PORT)

    text = "\n".join(describe_stack(config, _stack(chosen, DEMO_EMULATOR_PORT, tmp_path)))

    assert f"(port {chosen}; port {busy} was in use)" in text
    assert f"(port {DEMO_EMULATOR_PORT})" in text  # the emulator got its preferred port
    assert f"export PREFECT_API_URL=http://127.0.0.1:{chosen}/api" in text


def test_the_running_stack_is_described_with_its_export_line(
    stack_config: StackConfig, demo_stack: Stack
) -> None:
    lines = describe_stack(stack_config, demo_stack)
    assert f"  Shell         {export_line(demo_stack)}" in lines
    assert export_line(demo_stack) == f"export PREFECT_API_URL={demo_stack.api_url}"
    assert any(demo_stack.emulator_url in line for line in lines)
