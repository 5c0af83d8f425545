"""The paid path: everything refusable is refused before paying, and a job is paid for once.

Every count comes from the emulator's ledger, never from what the flow says it did.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from prefect.filesystems import LocalFileSystem

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import DestinationError, UnconfirmedQueueError
from prefect_venice.flows import VideoRequest, generate_video, generate_videos
from prefect_venice.generation import LocalDestination
from prefect_venice.journal import JobJournal
from prefect_venice.models import QueuedJob

PRIVATE_MODEL = "grok-imagine-text-to-video-private"


def request_for(output_dir: Path, **overrides: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A gondola at sunset",
        "aspect_ratio": "16:9",
        "output_dir": str(output_dir),
    }
    fields.update(overrides)
    return VideoRequest(**fields)


def private_request(output_dir: Path, **overrides: Any) -> VideoRequest:
    fields: dict[str, Any] = {"model": PRIVATE_MODEL, "duration": "6s", "resolution": "480p"}
    fields.update(overrides)
    return request_for(output_dir, **fields)


def paid_calls(emulator: Emulator) -> int:
    calls: dict[str, int] = emulator.ledger()["calls"]
    return calls.get("queue", 0)


def journal() -> JobJournal:
    return JobJournal(os.environ["PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR"])


# Refused before paying --------------------------------------------------------------------


def _a_file(tmp_path: Path) -> dict[str, Any]:
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    return {"output_dir": str(target)}


def _an_existing_video(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "keep.mp4").write_bytes(b"precious")
    return {"output_dir": str(tmp_path / "videos"), "filename": "keep.mp4"}


def _under_a_file(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "plain-file").write_text("x")
    return {"output_dir": str(tmp_path / "plain-file" / "videos")}


REFUSALS = {
    "output_dir is a file": (_a_file, "exists and is not a folder"),
    "output_dir cannot be created": (_under_a_file, "cannot be created or written"),
    "filename climbs out": (lambda _: {"filename": "../../escape.mp4"}, "path separator"),
    "filename is absolute": (lambda _: {"filename": "/tmp/anywhere.mp4"}, "path separator"),
    "filename is a dot": (lambda _: {"filename": "."}, "names a folder"),
    "filename is dot-dot": (lambda _: {"filename": ".."}, "names a folder"),
    "filename holds NUL": (lambda _: {"filename": "a\x00b.mp4"}, "control character"),
    "filename names an existing file": (_an_existing_video, "already exists"),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_a_destination_that_would_fail_after_paying_is_refused_first(
    case: str, emulator: Emulator, credentials_block: str, tmp_path: Path
) -> None:
    make_fields, expected = REFUSALS[case]
    fields = make_fields(tmp_path)
    request = request_for(Path(fields.pop("output_dir", tmp_path / "videos")), **fields)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert expected in (state.message or "")
    assert "nothing was queued or charged" in (state.message or "")
    assert isinstance(state.result(raise_on_failure=False), DestinationError)
    assert emulator.ledger()["calls"] == {}, "a refused request made calls to Venice"
    assert not (tmp_path.parent / "escape.mp4").exists()
    if case == "filename names an existing file":
        assert (tmp_path / "videos" / "keep.mp4").read_bytes() == b"precious"


def test_a_storage_key_outside_the_blocks_base_path_is_refused_first(
    emulator: Emulator, credentials_block: str, tmp_path: Path
) -> None:
    LocalFileSystem(basepath=str(tmp_path / "store")).save("paid-path-store", overwrite=True)
    request = request_for(
        tmp_path,
        storage_block="local-file-system/paid-path-store",
        filename="../outside.mp4",
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert "'..' segment" in (state.message or "")
    assert emulator.ledger()["calls"] == {}


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), -1.0])
def test_a_batch_budget_that_is_no_amount_is_refused_first(
    budget: float, emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    state = generate_videos(
        requests=[request_for(output_dir)],
        max_usd=budget,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed()
    assert "max_usd must be a finite amount" in (state.message or "")
    assert paid_calls(emulator) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_usd", float("nan")), ("max_usd", float("inf")), ("max_wait_seconds", 0.001)],
)
def test_a_request_with_an_impossible_budget_or_wait_cannot_be_built(
    field: str, value: float, output_dir: Path
) -> None:
    with pytest.raises(ValueError, match=field):
        request_for(output_dir, **{field: value})


def test_an_output_root_confines_where_a_worker_saves(
    emulator: Emulator,
    credentials_block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_OUTPUT_ROOT", str(root))

    outside = generate_video(
        request=request_for(tmp_path / "elsewhere"),
        credentials_block=credentials_block,
        return_state=True,
    )
    inside = generate_video(request=request_for(Path("daily")), credentials_block=credentials_block)

    assert outside.is_failed()
    assert "outside" in (outside.message or "")
    assert Path(inside.path).parent == root / "daily"
    assert paid_calls(emulator) == 1


def test_an_empty_credentials_block_name_says_what_to_give(output_dir: Path) -> None:
    state = generate_video(
        request=request_for(output_dir), credentials_block=" ", return_state=True
    )

    assert state.is_failed()
    assert "name of a saved VeniceCredentials block" in (state.message or "")


# Paid once ---------------------------------------------------------------------------------


def test_a_rerun_with_the_same_job_name_pays_once(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    request = request_for(output_dir, job_name="launch-teaser")

    first = generate_video(request=request, credentials_block=credentials_block)
    second = generate_video(request=request, credentials_block=credentials_block)

    assert second.path == first.path
    assert second.sha256 == first.sha256
    assert paid_calls(emulator) == 1
    assert list(emulator.ledger()["jobs"]) == [first.queue_id]


def test_a_job_name_reused_for_another_request_is_refused(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    generate_video(
        request=request_for(output_dir, job_name="one"), credentials_block=credentials_block
    )

    state = generate_video(
        request=request_for(output_dir, job_name="one", prompt="Something else"),
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed()
    assert "already belongs to a different request" in (state.message or "")
    assert paid_calls(emulator) == 1


def test_a_lost_queue_answer_is_never_paid_for_again_by_a_retry(
    emulator_factory: Any, output_dir: Path
) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=1))
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(
        "lost-answer", overwrite=True
    )

    state = generate_video.with_options(retries=2, retry_delay_seconds=0)(
        request=request_for(output_dir), credentials_block="lost-answer", return_state=True
    )

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, UnconfirmedQueueError)
    assert "may have been created and charged" in str(error)
    assert "prefect-venice jobs forget" in str(error)
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 1
    assert len(ledger["jobs"]) == 1


def test_a_retried_batch_keeps_what_it_saved_and_resumes_the_rest(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_place = LocalDestination.place
    placed: list[str] = []

    def fail_the_second(self: LocalDestination, staged: Path, queue_id: str) -> Path:
        placed.append(queue_id)
        if len(placed) == 2:
            raise OSError("disk went away (injected)")
        return real_place(self, staged, queue_id)

    monkeypatch.setattr(LocalDestination, "place", fail_the_second)
    requests = [request_for(output_dir, prompt=f"Take {n}") for n in range(3)]

    state = generate_videos.with_options(retries=1, retry_delay_seconds=0)(
        requests=requests, max_usd=5.0, credentials_block=credentials_block, return_state=True
    )

    assert state.is_completed(), state.message
    results = state.result()
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 3
    assert sorted(ledger["jobs"]) == sorted(r.queue_id for r in results)
    for result in results:
        assert Path(result.path).read_bytes()[4:8] == b"ftyp"
    # The two saved by the first attempt were not fetched again.
    assert len(placed) == 4


def test_a_private_link_never_rests_readable_or_after_the_save(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    queued_jobs: list[QueuedJob],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen_modes: list[tuple[int, int]] = []
    real_place = LocalDestination.place

    def look_at_the_record(self: LocalDestination, staged: Path, queue_id: str) -> Path:
        (entry,) = [e for e in journal().entries() if e.queue_id == queue_id]
        seen_modes.append(
            (
                stat.S_IMODE(entry.path.stat().st_mode),
                stat.S_IMODE(entry.path.parent.stat().st_mode),
            )
        )
        assert entry.download_url is not None, "the link is needed until the video is saved"
        return real_place(self, staged, queue_id)

    monkeypatch.setattr(LocalDestination, "place", look_at_the_record)

    result = generate_video(
        request=private_request(output_dir), credentials_block=credentials_block
    )

    (job,) = queued_jobs
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    token = link.rsplit("/", 1)[-1]
    assert seen_modes == [(0o600, 0o700)]
    (entry,) = list(journal().entries())
    assert entry.state == "saved" and entry.download_url is None
    assert token not in entry.path.read_text()
    home = Path(os.environ["PREFECT_HOME"]) if "PREFECT_HOME" in os.environ else None
    from prefect.settings import PREFECT_HOME

    for folder in {PREFECT_HOME.value(), home} - {None}:
        assert folder is not None
        for path in Path(folder).rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert token.encode() not in path.read_bytes(), f"the link rests in {path}"
    assert Path(result.path).is_file()


def test_a_prefect_api_that_refuses_artifacts_does_not_fail_a_paid_video(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_venice.flows import video as video_flow
    from prefect_venice.tasks import progress

    def refused(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("QueuePool limit of size 5 overflow 10 reached (injected)")

    monkeypatch.setattr(progress, "create_progress_artifact", refused)
    monkeypatch.setattr(video_flow, "create_markdown_artifact", refused)

    result = generate_video(request=request_for(output_dir), credentials_block=credentials_block)

    assert Path(result.path).is_file()
    assert paid_calls(emulator) == 1


def test_overwrite_replaces_an_existing_file_when_asked(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    output_dir.mkdir(parents=True)
    (output_dir / "clip.mp4").write_bytes(b"old")

    result = generate_video(
        request=request_for(output_dir, filename="clip.mp4", overwrite=True),
        credentials_block=credentials_block,
    )

    assert Path(result.path) == (output_dir / "clip.mp4").resolve()
    assert Path(result.path).read_bytes()[4:8] == b"ftyp"


def test_a_run_leaves_no_staging_folder_or_part_file(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    generate_video(request=request_for(output_dir), credentials_block=credentials_block)

    leftovers = [p.name for p in output_dir.iterdir() if not p.name.endswith(".mp4")]
    assert leftovers == []
    assert not list(output_dir.rglob("*.part"))
