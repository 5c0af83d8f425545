"""`prefect-venice limits`: one command creates the global limits workers share."""

from __future__ import annotations

import collections
import errno
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.exceptions import PrefectHTTPStatusError

from prefect_venice.cli import main
from prefect_venice.errors import InvalidRequestError
from prefect_venice.tasks import pacing


def _read(name: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_the_limits_command_creates_two_window_limits_and_prints_the_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["--queue-name", "cmd-venice-queue", "--retrieve-name", "cmd-venice-retrieve"]

    assert main(["limits", *names]) == 0
    assert main(["limits", *names, "--queue-per-minute", "20"]) == 0  # updates in place

    captured = capsys.readouterr()
    assert "export PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT=cmd-venice-queue" in captured.out
    assert (
        "export PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT=cmd-venice-retrieve" in captured.out
    )
    assert "cmd-venice-queue: 20 slots, each call leases one for 62 s" in captured.err
    queue, retrieve = _read("cmd-venice-queue"), _read("cmd-venice-retrieve")
    # A window limit: the whole minute's allowance as slots, no decay (leases free them).
    assert (queue.limit, queue.slot_decay_per_second) == (20, 0.0)
    assert (retrieve.limit, retrieve.slot_decay_per_second) == (120, 0.0)


def test_kind_rate_makes_token_buckets_and_turns_a_window_limit_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["--queue-name", "cmd-rate-queue", "--retrieve-name", "cmd-rate-retrieve"]
    assert main(["limits", *names]) == 0
    assert main(["limits", *names, "--kind", "rate", "--queue-per-minute", "20"]) == 0

    queue, retrieve = _read("cmd-rate-queue"), _read("cmd-rate-retrieve")
    assert queue.limit == 2
    assert queue.slot_decay_per_second == pytest.approx(20 / 60 * 0.97, abs=1e-3)
    assert retrieve.limit == 12
    assert retrieve.slot_decay_per_second == pytest.approx(120 / 60 * 0.97, abs=1e-3)


def test_a_rate_that_is_no_number_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "--queue-per-minute", "nan"]) == 2
    assert "--queue-per-minute must be a positive number" in capsys.readouterr().err


def _window_limit(slots: int) -> str:
    name = f"window-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
    return name


def test_each_call_keeps_its_window_slot_until_the_lease_ends() -> None:
    name = _window_limit(2)

    pacing.pace(name)
    pacing.pace(name)

    # Both slots stay taken after the calls: nothing releases them but the lease's end.
    assert _read(name).active_slots == 2
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError) as full:
        client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=60
        )
    assert full.value.response.status_code == 423
    assert pacing.limit_kind(name) == "window"


def test_pace_uses_prefects_rate_limit_for_a_limit_with_decay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"decay-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=5, slot_decay_per_second=5.0)
        )
    taken: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(pacing, "rate_limit", lambda names, **kw: taken.append((names, kw)))
    monkeypatch.setattr(pacing, "take_window_slot", lambda *a: pytest.fail("no lease"))

    pacing.pace(name)

    assert taken == [(name, {"occupy": 1, "strict": True})]


def test_a_missing_limit_is_named_before_anything_is_sent() -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        pacing.pace(f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(InvalidRequestError, match="prefect-venice limits"):
        pacing.check_rate_limit(f"missing-{uuid.uuid4().hex[:8]}", "SETTING")


def test_a_kind_switch_or_reset_frees_the_taken_slots(capsys: pytest.CaptureFixture[str]) -> None:
    names = ["--queue-name", "cmd-reset-queue", "--retrieve-name", "cmd-reset-retrieve"]
    assert main(["limits", *names]) == 0
    pacing.pace("cmd-reset-queue")
    pacing.pace("cmd-reset-queue")
    assert _read("cmd-reset-queue").active_slots == 2

    assert main(["limits", *names]) == 0  # same kind, no reset: the slots stay taken
    assert _read("cmd-reset-queue").active_slots == 2
    assert main(["limits", *names, "--reset"]) == 0
    assert _read("cmd-reset-queue").active_slots == 0

    pacing.pace("cmd-reset-queue")
    assert main(["limits", *names, "--kind", "rate"]) == 0  # a leased slot must not decay too
    assert _read("cmd-reset-queue").active_slots == 0


def test_an_inactive_limit_is_refused_not_skipped() -> None:
    name = _window_limit(3)
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False))

    # The server grants slots of an inactive limit without counting them: unpaced.
    with pytest.raises(InvalidRequestError, match="is inactive"):
        pacing.pace(name)


def test_a_deleted_limit_is_refused_not_skipped() -> None:
    name = _window_limit(3)
    assert pacing.limit_kind(name) == "window"  # known to this process
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)

    # The server grants a slot of a missing limit with no limit attached: unpaced.
    with pytest.raises(InvalidRequestError, match="does not exist or is inactive"):
        pacing.take_window_slot(name)


def test_a_busy_server_is_asked_again_for_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite answers 503 when locked: nothing was sent to Venice, so asking again is safe
    # (the call failed before its queue call, and the flow run with it, before).
    name = _window_limit(3)
    client = pacing._prefect_client()
    real = client.increment_concurrency_slots_with_lease
    answers: list[int] = []

    def busy_once(**options: Any) -> Any:
        if not answers:
            answers.append(503)
            request = httpx.Request("POST", "http://prefect/api/v2/concurrency_limits")
            response = httpx.Response(503, request=request)
            raise PrefectHTTPStatusError("busy", request=request, response=response)
        answers.append(200)
        return real(**options)

    monkeypatch.setattr(client, "increment_concurrency_slots_with_lease", busy_once)
    monkeypatch.setattr("prefect_venice.tasks.pacing.time.sleep", lambda seconds: None)

    pacing.take_window_slot(name)

    assert answers == [503, 200]
    assert _read(name).active_slots == 1


def test_while_a_limit_is_full_one_waiting_call_per_machine_asks_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Each refusal costs the server a request and a database write: with every waiting
    # call asking every second or two, a machine with many runs waiting hammered it.
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(tmp_path))
    name = _window_limit(1)
    pacing.pace(name)  # the limit is full now
    client = pacing._prefect_client()
    real = client.increment_concurrency_slots_with_lease
    asks: collections.Counter[int] = collections.Counter()

    def counted(**options: Any) -> Any:
        asks[threading.get_ident()] += 1
        return real(**options)

    monkeypatch.setattr(client, "increment_concurrency_slots_with_lease", counted)
    waiters = [threading.Thread(target=pacing.take_window_slot, args=(name,)) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    time.sleep(2.5)

    # Each asked once on arrival; since then only the one whose turn it is asks again.
    assert len(asks) == 4
    assert sorted(asks.values())[:3] == [1, 1, 1]
    assert sorted(asks.values())[3] >= 3
    with get_client(sync_client=True) as prefect:
        prefect.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=5))
    for waiter in waiters:
        waiter.join(30)
    assert not any(waiter.is_alive() for waiter in waiters)
    assert _read(name).active_slots == 5


def test_a_file_system_without_locks_lets_every_waiting_call_ask(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # ENOLCK (some network mounts): no call may wait for a turn that can never be had.
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(tmp_path))

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("prefect_venice.tasks.pacing.fcntl.flock", no_locks)
    turn = pacing._WaiterTurn("venice-queue")

    assert turn.take() is True
    assert turn.take() is True
    turn.give_back()
