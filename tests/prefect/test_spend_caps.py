"""Spend caps on the credentials block: reserved on the Prefect server, so no run can pass them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import venice_events
from prefect.settings import PREFECT_API_URL

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.emulator import Emulator
from prefect_venice.errors import SpendLimitError
from prefect_venice.flows import VideoRequest, generate_video, generate_videos
from prefect_venice.tasks import spend

CLI = str(Path(sys.executable).parent / "prefect-venice")
RUNNER = textwrap.dedent(
    """
    import json, sys
    from prefect_venice.flows import VideoRequest, generate_video
    request = VideoRequest(prompt=sys.argv[1], output_dir=sys.argv[2])
    state = generate_video(request=request, credentials_block=sys.argv[3], return_state=True)
    print("RESULT " + json.dumps({"state": state.type.value, "message": state.message}))
    """
)


def capped_block(emulator: Emulator, name: str, limit: float | None = 1.0) -> VeniceCredentials:
    block = VeniceCredentials(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        spend_limit_usd=limit,
        spend_period="day",
    )
    block.save(name, overwrite=True)
    loaded = VeniceCredentials.load(name)
    assert isinstance(loaded, VeniceCredentials)
    return loaded


def test_ten_runs_in_separate_processes_cannot_pass_a_daily_cap(
    emulator: Emulator, tmp_path: Path
) -> None:
    block = capped_block(emulator, "capped-ten")
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, f"Take {n}", str(tmp_path / "videos"), "capped-ten"],
            env=env,
            cwd=tmp_path,  # not the repository root: its prefect_venice/ would shadow the install
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(10)
    ]
    outcomes = []
    for run in runs:
        out, err = run.communicate(timeout=240)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        assert lines, err[-2000:]
        outcomes.append(json.loads(lines[-1].removeprefix("RESULT ")))

    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 3  # 3 x $0.3125 fit in $1.00; a fourth would not
    completed = [o for o in outcomes if o["state"] == "COMPLETED"]
    refused = [o for o in outcomes if o["state"] == "FAILED"]
    assert len(completed) == 3 and len(refused) == 7
    for outcome in refused:
        message = outcome["message"]
        assert "would exceed the daily limit of $1.00 on block 'capped-ten'" in message
        assert "$0.3125 quoted" in message and "nothing was queued" in message
    account = spend.period_spend(block)
    assert account.spent_usd == pytest.approx(0.9375)
    assert account.reserved_usd == 0
    assert account.remaining_usd == pytest.approx(0.0625)
    shown = subprocess.run(
        [CLI, "spend", "--credentials-block", "capped-ten"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "spent     $0.9375" in shown.stdout
    assert "remaining $0.0625" in shown.stdout


def test_a_run_parameter_cannot_raise_the_cap(emulator: Emulator, output_dir: Path) -> None:
    capped_block(emulator, "capped-small", limit=0.2)

    state = generate_video(
        request=VideoRequest(prompt="A kite", output_dir=str(output_dir), max_usd=None),
        credentials_block="capped-small",
        return_state=True,
    )

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), SpendLimitError)
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_a_batch_reserves_all_its_videos_or_none(emulator: Emulator, output_dir: Path) -> None:
    block = capped_block(emulator, "capped-batch", limit=1.0)
    requests = [VideoRequest(prompt=f"Kite {n}", output_dir=str(output_dir)) for n in range(4)]

    state = generate_videos(requests=requests, credentials_block="capped-batch", return_state=True)

    assert state.is_failed()
    assert "$1.25 quoted" in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0
    assert spend.period_spend(block).reserved_usd == 0


def test_a_job_that_was_not_created_gives_its_reservation_back(
    emulator: Emulator, output_dir: Path
) -> None:
    block = capped_block(emulator, "capped-refused", limit=1.0)
    emulator.set_balance(0.0)  # the queue call answers 402: no job

    state = generate_video(
        request=VideoRequest(prompt="A kite", output_dir=str(output_dir)),
        credentials_block="capped-refused",
        return_state=True,
    )

    assert state.is_failed()
    assert "402" in (state.message or "")
    account = spend.period_spend(block)
    assert (account.spent_usd, account.reserved_usd) == (0, 0)


def test_crossing_80_and_100_percent_emits_threshold_events(
    emulator: Emulator, output_dir: Path
) -> None:
    capped_block(emulator, "capped-events", limit=0.7)
    for prompt in ("One", "Two", "Three"):
        generate_video(
            request=VideoRequest(prompt=prompt, output_dir=str(output_dir)),
            credentials_block="capped-events",
            return_state=True,
        )

    events = venice_events("venice.spend.capped-events", expected=2, prefix="venice.spend.")
    thresholds = [(e["payload"]["threshold"], e["payload"]["refused"]) for e in events]
    assert (0.8, False) in thresholds  # the second video took it to $0.625 of $0.70
    assert (1.0, True) in thresholds  # the third did not fit
    assert emulator.ledger()["calls"]["queue"] == 2


def test_the_same_scheduled_slot_triggered_twice_pays_once(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deployments"))
    try:
        from daily_video import daily_video
    finally:
        sys.path.pop(0)
    request = VideoRequest(prompt="Sunrise, {date}", output_dir=str(output_dir))

    first: Any = daily_video(request=request, credentials_block=credentials_block)
    second: Any = daily_video(request=request, credentials_block=credentials_block)

    assert first.queue_id == second.queue_id
    assert emulator.ledger()["calls"]["queue"] == 1


def test_a_period_is_a_day_week_or_month_in_the_blocks_time_zone() -> None:
    late = datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc)

    assert spend.period_of("day", "UTC", late)[0] == "2026-11-26"
    assert spend.period_of("day", "Europe/Rome", late)[0] == "2026-11-27"
    assert spend.period_of("week", "UTC", late)[0] == "2026-W48"
    assert spend.period_of("month", "UTC", late)[0] == "2026-11"
    with pytest.raises(ValueError, match="not a time zone"):
        VeniceCredentials(spend_timezone="Mars/Olympus")


def test_spend_shows_what_venice_charged_and_a_charge_unlike_its_quote(
    emulator: Emulator, output_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect_venice.cli import main

    capped_block(emulator, "capped-billing", limit=5.0)
    generate_video(
        request=VideoRequest(prompt="A kite", output_dir=str(output_dir)),
        credentials_block="capped-billing",
    )
    emulator.set_charge_markup(0.2)  # the price changed between quote and queue
    generate_video(
        request=VideoRequest(prompt="Another kite", output_dir=str(output_dir)),
        credentials_block="capped-billing",
    )

    assert main(["spend", "--credentials-block", "capped-billing", "--days", "1"]) == 0

    out = capsys.readouterr().out
    assert "spent     $0.6250" in out  # the two quotes, as reserved and settled
    assert "Charged by Venice this period: $0.6875" in out  # $0.3125 + $0.375
    (odd,) = [line for line in out.splitlines() if "differs from its quote" in line]
    assert "quoted $0.3125, charged $0.3750" in odd


def test_a_prefect_api_failure_after_paying_never_fails_the_paid_video(
    emulator: Emulator, output_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capped_block(emulator, "capped-hiccup", limit=1.0)
    real_ensure = spend._ensure

    def failing_for_spent_counters(name: str, limit: int) -> None:
        if name.startswith("venice-spent-"):  # only reached after the paid call
            raise RuntimeError("QueuePool limit of size 5 overflow 10 reached (injected)")
        real_ensure(name, limit)

    monkeypatch.setattr(spend, "_ensure", failing_for_spent_counters)

    result = generate_video(
        request=VideoRequest(prompt="A kite", output_dir=str(output_dir)),
        credentials_block="capped-hiccup",
    )

    assert Path(result.path).is_file()
    assert emulator.ledger()["calls"]["queue"] == 1
