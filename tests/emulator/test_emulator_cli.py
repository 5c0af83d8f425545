"""`prefect-venice emulator` / `python -m prefect_venice.emulator`: options, start and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from prefect_venice.emulator import FaultConfig
from prefect_venice.emulator.cli import build_parser, config_from_args, main


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--link-port", "--api-key", "--time-scale", "--fail-rate-500"):
        assert option in out


def test_options_become_a_config() -> None:
    args = build_parser().parse_args(
        [
            "--port=0",
            "--seed=3",
            "--time-scale=0.5",
            "--balance=7",
            "--fail-rate-500",
            "queue=0.25",
            "--fail-rate-503",
            "*=0.1",
            "--drop-rate",
            "link_get=1",
            "--latency",
            "retrieve=0.2",
            "--video-bytes=1000",
            "--no-rate-limits",
        ]
    )
    config = config_from_args(args)
    assert config.port == 0 and config.seed == 3 and config.time_scale == 0.5
    assert config.balance_usd == 7 and config.video_bytes == 1000
    assert not config.rate_limits_enabled
    assert config.faults == FaultConfig(
        rate_500={"queue": 0.25},
        rate_503={"*": 0.1},
        drop_rate={"link_get": 1.0},
        latency={"retrieve": 0.2},
    )
    assert FaultConfig.lookup(config.faults.rate_503, "complete") == 0.1


def test_queue_drop_after_create_first_becomes_a_fault() -> None:
    args = build_parser().parse_args(["--queue-drop-after-create-first", "2"])
    assert config_from_args(args).faults == FaultConfig(queue_drop_after_create_first=2)


def test_queue_drop_after_create_first_refuses_a_negative_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--queue-drop-after-create-first", "-1"])
    assert "below 0" in capsys.readouterr().err


def test_real_time_limits_option_becomes_a_config() -> None:
    assert config_from_args(build_parser().parse_args(["--real-time-limits"])).real_time_limits
    assert not config_from_args(build_parser().parse_args([])).real_time_limits


def test_unknown_endpoint_is_refused() -> None:
    args = build_parser().parse_args(["--fail-rate-500", "nowhere=1"])
    with pytest.raises(SystemExit, match="ENDPOINT"):
        config_from_args(args)


def test_module_runs_prints_origins_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect_venice.emulator", "--port", "0", "--time-scale", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        base_url = lines[0].split()[-1]
        assert base_url.endswith("/api/v1")
        assert lines[1].split()[-1].startswith("http://127.0.0.1:")
        ledger_url = lines[2].split()[-1]
        assert httpx.get(f"{base_url}/models").status_code == 200
        assert httpx.get(ledger_url).json()["calls"] == {"models": 1}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
