"""The prefect-venice console script, end to end against the emulator, and import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from prefect_venice.cli import main
from prefect_venice.emulator import Emulator


def generate(emulator: Emulator, output: Path, *extra: str) -> int:
    return main(
        [
            "generate",
            "--prompt",
            "A gondola at sunset",
            "--model",
            "wan-2.5-preview-text-to-video",
            "--duration",
            "5s",
            "--aspect-ratio",
            "16:9",
            "--base-url",
            emulator.base_url,
            "--output",
            str(output),
            "--min-poll-interval",
            "0.01",
            *extra,
        ]
    )


def test_generate_prints_the_saved_mp4_path_last(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert generate(emulator, tmp_path, "--max-usd", "5") == 0

    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.parent == tmp_path
    assert path.read_bytes()[4:8] == b"ftyp"
    job = next(iter(emulator.ledger()["jobs"].values()))
    assert job["media_deleted"] is True  # /video/complete after saving


def test_generate_refuses_a_quote_above_max_usd_without_queuing(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert generate(emulator, tmp_path, "--max-usd", "0.001") == 1

    assert "nothing was queued" in capsys.readouterr().err
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_generate_needs_the_api_key(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VENICE_API_KEY", raising=False)
    assert generate(emulator, tmp_path) == 2
    assert emulator.ledger()["calls"] == {}


def test_importing_the_core_does_not_import_prefect() -> None:
    code = (
        "import sys, prefect_venice, prefect_venice.client, prefect_venice.cli; "
        "print('prefect' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_an_interrupt_after_queueing_still_names_the_paid_job(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prefect_venice.client import VeniceClient

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.setattr(VeniceClient, "wait_for_video", interrupted)

    assert generate(emulator, tmp_path, "--quiet") == 130

    (queue_id,) = emulator.ledger()["jobs"]
    assert queue_id in capsys.readouterr().err
