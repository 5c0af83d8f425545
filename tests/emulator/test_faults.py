"""Injected faults: seeded 500/503 rates, dropped bodies, and the unknown-outcome queue."""

from __future__ import annotations

import httpx
import pytest
from emulator_support import (
    EmulatorFactory,
    api,
    private_body,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator, FaultConfig


def quote_statuses(emulator: Emulator, count: int) -> list[int]:
    with api(emulator) as client:
        return [client.post("/video/quote", json=queue_body()).status_code for _ in range(count)]


def test_fault_rates_repeat_with_the_same_seed(emulator_factory: EmulatorFactory) -> None:
    faults = FaultConfig(rate_500={"quote": 0.3}, rate_503={"quote": 0.3})
    config = {"faults": faults, "lockout_enabled": False, "seed": 7}
    first = quote_statuses(emulator_factory(**config), 40)
    second = quote_statuses(emulator_factory(**config), 40)
    assert first == second
    assert {200, 500, 503} <= set(first)


def test_another_seed_gives_another_sequence(emulator_factory: EmulatorFactory) -> None:
    faults = FaultConfig(rate_500={"quote": 0.5})
    one = quote_statuses(emulator_factory(faults=faults, lockout_enabled=False, seed=1), 40)
    two = quote_statuses(emulator_factory(faults=faults, lockout_enabled=False, seed=2), 40)
    assert one != two


def test_configure_faults_restarts_the_sequence(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(lockout_enabled=False)
    faults = FaultConfig(rate_500={"*": 0.5})
    emulator.configure_faults(faults)
    first = quote_statuses(emulator, 20)
    emulator.configure_faults(faults)
    assert quote_statuses(emulator, 20) == first


def test_injected_errors_have_standard_error_bodies(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_503={"retrieve": 1.0}))
    with api(emulator) as client:
        job = queue(client)
        response = client.post("/video/retrieve", json=ref(job))
    assert response.status_code == 503
    assert response.json()["error"]


def test_faults_hit_only_their_endpoint(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"retrieve": 1.0}))
    assert quote_statuses(emulator, 5) == [200] * 5


def test_injected_500_on_queue_creates_no_job(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"queue": 1.0}))
    with api(emulator) as client:
        response = client.post("/video/queue", json=queue_body())
    assert response.status_code == 500
    ledger = emulator.ledger()
    assert ledger["jobs"] == {}
    assert ledger["charged_usd_total"] == 0
    assert ledger["balance_usd"] == 100
    assert ledger["queue_calls_total"] == 1


def test_queue_can_charge_then_drop_the_connection(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_rate=1.0))
    with api(emulator) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/video/queue", json=queue_body())
    ledger = emulator.ledger()
    (record,) = ledger["jobs"].values()
    assert record["charged_usd"] > 0
    assert ledger["charged_usd_total"] == record["charged_usd"]
    assert ledger["statuses"]["queue"] == {"dropped": 1}


def test_first_queue_call_charges_but_loses_its_answer(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=1))
    with api(emulator) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/video/queue", json=queue_body())
        ledger = emulator.ledger()
        (record,) = ledger["jobs"].values()
        assert record["charged_usd"] > 0
        assert ledger["statuses"]["queue"] == {"dropped": 1}
        second = client.post("/video/queue", json=queue_body())
    assert second.status_code == 200
    ledger = emulator.ledger()
    assert len(ledger["jobs"]) == 2
    assert second.json()["queue_id"] in ledger["jobs"]
    assert ledger["statuses"]["queue"] == {"dropped": 1, "200": 1}


def test_first_n_queue_calls_lose_their_answers(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=3))
    outcomes: list[int | str] = []
    with api(emulator) as client:
        for _ in range(5):
            try:
                outcomes.append(client.post("/video/queue", json=queue_body()).status_code)
            except httpx.RemoteProtocolError:
                outcomes.append("dropped")
    assert outcomes == ["dropped", "dropped", "dropped", 200, 200]
    assert len(emulator.ledger()["jobs"]) == 5


def test_refused_queue_calls_do_not_use_up_the_first_drops(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=1))
    with api(emulator) as client:
        refused = client.post("/video/queue", json=queue_body(prompt="a forbidden scene"))
        assert refused.status_code == 422
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/video/queue", json=queue_body())
    assert emulator.ledger()["statuses"]["queue"] == {"422": 1, "dropped": 1}


def test_configure_faults_aims_the_first_drops_at_the_next_calls(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client)
        emulator.configure_faults(FaultConfig(queue_drop_after_create_first=1))
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/video/queue", json=queue_body())
        queue(client)
    assert emulator.ledger()["statuses"]["queue"] == {"200": 2, "dropped": 1}


def test_retrieve_video_can_drop_mid_body(emulator: Emulator) -> None:
    received = 0
    with api(emulator) as client:
        job = queue(client)
        wait_until_done(client, job)
        emulator.configure_faults(FaultConfig(drop_rate={"retrieve": 1.0}))
        with client.stream("POST", "/video/retrieve", json=ref(job)) as response:
            assert response.headers["content-type"] == "video/mp4"
            expected = int(response.headers["content-length"])
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_raw():
                    received += len(chunk)
    assert 0 < received < expected


def test_dropped_download_does_not_delete_media(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(drop_rate={"retrieve": 1.0}))
    with api(emulator) as client:
        job = queue(client)
        with pytest.raises(httpx.RemoteProtocolError):
            wait_until_done(client, job, delete_media_on_completion=True)
        emulator.configure_faults(FaultConfig())
        again = client.post("/video/retrieve", json=ref(job))
    assert again.headers["content-type"] == "video/mp4"


def test_link_download_can_drop_mid_body(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(drop_rate={"link_get": 1.0}))
    with api(emulator) as client:
        job = client.post("/video/queue", json=private_body()).json()
        wait_until_done(client, job)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(job["download_url"])
    emulator.configure_faults(FaultConfig())
    assert httpx.get(job["download_url"]).status_code == 200


def test_latency_setting_keeps_answers_correct(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(latency={"quote": 0.01}))
    assert quote_statuses(emulator, 2) == [200, 200]


def test_injected_failures_count_towards_the_lockout(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(
        faults=FaultConfig(rate_500={"quote": 1.0}), lockout_failures=3, lockout_window_seconds=5000
    )
    assert quote_statuses(emulator, 5) == [500, 500, 500, 500, 429]
