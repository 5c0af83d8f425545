"""The private-link origin: no auth accepted, few GETs, revocation and expiry."""

from __future__ import annotations

from typing import Any

import httpx
from emulator_support import EmulatorFactory, api, private_body, wait_until_done

from prefect_venice.emulator import Emulator


def private_job(emulator: Emulator, *, finish: bool = True) -> dict[str, Any]:
    with api(emulator) as client:
        queued = client.post("/video/queue", json=private_body())
        assert queued.status_code == 200
        job: dict[str, Any] = queued.json()
        if finish:
            wait_until_done(client, job)
    return job


def test_link_is_404_until_the_job_is_complete(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(job_duration_factor=100)
    job = private_job(emulator, finish=False)
    response = httpx.get(job["download_url"])
    assert response.status_code == 404
    assert response.json()["error"]


def test_link_refuses_any_authorization_header(emulator: Emulator) -> None:
    job = private_job(emulator)
    for header in (f"Bearer {emulator.api_key}", "Basic Zm9vOmJhcg=="):
        response = httpx.get(job["download_url"], headers={"Authorization": header})
        assert response.status_code == 403
        assert "Authorization" in response.json()["error"]
    record = emulator.ledger()["jobs"][job["queue_id"]]
    assert record["link_auth_seen"] is True
    assert emulator.ledger()["link_auth_seen"] is True


def test_link_without_auth_leaves_no_trace_of_auth(emulator: Emulator) -> None:
    job = private_job(emulator)
    assert httpx.get(job["download_url"]).status_code == 200
    assert emulator.ledger()["jobs"][job["queue_id"]]["link_auth_seen"] is False
    assert emulator.ledger()["link_auth_seen"] is False


def test_link_allows_only_a_few_gets(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(link_max_gets=2)
    job = private_job(emulator)
    assert httpx.get(job["download_url"]).status_code == 200
    assert httpx.get(job["download_url"]).status_code == 200
    third = httpx.get(job["download_url"])
    assert third.status_code == 429
    assert float(third.headers["Retry-After"]) > 0
    assert emulator.ledger()["jobs"][job["queue_id"]]["link_gets"] == 3


def test_default_link_get_limit_is_five(emulator: Emulator) -> None:
    job = private_job(emulator)
    statuses = [httpx.get(job["download_url"]).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_delete_revokes_the_link(emulator: Emulator) -> None:
    job = private_job(emulator)
    deleted = httpx.delete(job["download_url"])
    assert deleted.status_code in (200, 204)
    after = httpx.get(job["download_url"])
    assert after.status_code == 410
    assert "revoked" in after.json()["error"]
    record = emulator.ledger()["jobs"][job["queue_id"]]
    assert record["link_deleted"] is True


def test_delete_needs_no_finished_job(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(job_duration_factor=100)
    job = private_job(emulator, finish=False)
    assert httpx.delete(job["download_url"]).status_code in (200, 204)
    assert httpx.get(job["download_url"]).status_code == 410


def test_second_delete_is_410(emulator: Emulator) -> None:
    job = private_job(emulator)
    httpx.delete(job["download_url"])
    assert httpx.delete(job["download_url"]).status_code == 410


def test_link_expires(emulator_factory: EmulatorFactory) -> None:
    # 20 emulated seconds at the test time scale: shorter than any job.
    emulator = emulator_factory(link_lifetime_seconds=20)
    job = private_job(emulator)
    response = httpx.get(job["download_url"])
    assert response.status_code == 410
    assert "expired" in response.json()["error"]


def test_unknown_token_is_404(emulator: Emulator) -> None:
    response = httpx.get(f"{emulator.link_origin}/v1/share/read/not-a-token")
    assert response.status_code == 404


def test_link_origin_is_not_the_api_origin(emulator: Emulator) -> None:
    assert not emulator.link_origin.startswith(emulator.base_url)
    assert httpx.get(f"{emulator.link_origin}/api/v1/models").status_code == 404
