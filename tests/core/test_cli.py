"""The prefect-venice console script, end to end against the emulator, and import hygiene."""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from pydantic import SecretStr

from prefect_venice import journal
from prefect_venice.cli import DOWNLOAD_URL_ENV, main
from prefect_venice.client import VeniceClient
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.emulator.catalog import CATALOG
from prefect_venice.emulator.catalog import VideoModel as CatalogModel
from prefect_venice.errors import UnknownModelError
from prefect_venice.generation import format_usd
from prefect_venice.models import QueuedJob, QueueRequest, VideoModel
from prefect_venice.validation import find_model

EmulatorFactory = Callable[..., Emulator]


@pytest.fixture(autouse=True)
def venice_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every CLI test's job journal under tmp_path, never in the real home."""
    home = tmp_path / "venice-home"
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(home))
    return home


#: Every retrieve answers 503 (retryable, nothing learnt): a wait can only run out of time.
STUCK = FaultConfig(rate_503={"retrieve": 1.0})


@pytest.fixture
def stuck_emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """An emulator whose retrieves fail until `configure_faults(FaultConfig())`.

    A one-second wait gives up however fast or slow the machine is (a job that merely
    takes long could finish before a loaded machine polls it); clearing the fault lets
    the resumed wait find the job done.
    """
    return emulator_factory(faults=STUCK)


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
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.setattr(VeniceClient, "wait_for_video", interrupted)

    assert generate(emulator, tmp_path, "--quiet") == 130

    (queue_id,) = emulator.ledger()["jobs"]
    assert queue_id in capsys.readouterr().err


PRIVATE_MODEL = "grok-imagine-text-to-video-private"


def queue_job(emulator: Emulator, model: str = "wan-2.5-preview-text-to-video") -> QueuedJob:
    """Queue (and pay for) one job with the client, as a crashed run would have left it."""
    private = model == PRIVATE_MODEL
    request = QueueRequest(
        model=model,
        prompt="A gondola at sunset",
        duration="6s" if private else "5s",
        resolution="480p" if private else None,
        aspect_ratio="16:9",
    )
    with VeniceClient(emulator.api_key, base_url=emulator.base_url) as client:
        return client.queue(request)


def wait(emulator: Emulator, job: QueuedJob, output: Path, *extra: str) -> int:
    return main(
        [
            "wait",
            "--model",
            job.model,
            "--queue-id",
            job.queue_id,
            "--base-url",
            emulator.base_url,
            "--output",
            str(output),
            "--min-poll-interval",
            "0.01",
            *extra,
        ]
    )


def test_wait_saves_a_queued_job_without_queueing_again(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = queue_job(emulator)
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert wait(emulator, job, tmp_path) == 0

    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path == tmp_path / f"{job.queue_id}.mp4"
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).width > 0
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 1
    assert ledger["jobs"][job.queue_id]["media_deleted"] is True  # /video/complete


def test_wait_keep_on_venice_leaves_the_media(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queue_job(emulator)
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert wait(emulator, job, tmp_path, "--quiet", "--keep-on-venice") == 0

    assert (tmp_path / f"{job.queue_id}.mp4").is_file()
    assert emulator.ledger()["jobs"][job.queue_id]["media_deleted"] is False
    assert emulator.ledger()["calls"].get("complete", 0) == 0


def test_wait_on_an_unknown_queue_id_fails_clearly(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    unknown = QueuedJob(model="wan-2.5-preview-text-to-video", queue_id="no-such-job")

    assert wait(emulator, unknown, tmp_path) == 1

    err = capsys.readouterr().err
    assert "error:" in err
    assert "no-such-job" in err
    assert "404" in err
    assert "check the model and queue_id" in err.lower()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["venice-home"])
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_wait_resumes_a_private_job_from_the_environment_without_echoing_its_link(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = queue_job(emulator, PRIVATE_MODEL)
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.setenv(DOWNLOAD_URL_ENV, link)

    assert wait(emulator, job, tmp_path) == 0

    out, err = capsys.readouterr()
    path = Path(out.strip().splitlines()[-1])
    assert path.read_bytes()[4:8] == b"ftyp"
    assert emulator.ledger()["calls"]["queue"] == 1
    for shown in (out, err):
        assert link not in shown
        assert link.rsplit("/", 1)[-1] not in shown, "the link's token leaked"


def test_wait_on_a_private_job_without_its_link_fails_at_once(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = queue_job(emulator, PRIVATE_MODEL)
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.delenv(DOWNLOAD_URL_ENV, raising=False)
    bare = QueuedJob(model=job.model, queue_id=job.queue_id)

    assert wait(emulator, bare, tmp_path, "--max-wait", "60") == 1

    err = capsys.readouterr().err
    assert "carries no download_url" in err  # the client's VideoLinkMissingError
    assert DOWNLOAD_URL_ENV in err
    assert [p.name for p in tmp_path.iterdir()] in ([], ["venice-home"])


def test_generate_names_the_wait_command_when_it_fails_after_queueing(
    stuck_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator = stuck_emulator
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert generate(emulator, tmp_path, "--quiet", "--max-wait", "1") == 1

    (queue_id,) = emulator.ledger()["jobs"]
    err = capsys.readouterr().err
    command = re.search(r"prefect-venice wait .*", err)
    assert command, err
    argv = shlex.split(command.group(0))[1:]
    assert argv[argv.index("--queue-id") + 1] == queue_id

    # Following the note fetches the same job, and nothing is paid again.
    emulator.configure_faults(FaultConfig())
    assert main([*argv, "--min-poll-interval", "0.01"]) == 0
    assert (tmp_path / f"{queue_id}.mp4").is_file()
    assert emulator.ledger()["calls"]["queue"] == 1


def test_an_interrupted_private_generate_journals_its_link_and_wait_fetches_it(
    stuck_emulator: Emulator,
    tmp_path: Path,
    venice_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator = stuck_emulator
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.delenv(DOWNLOAD_URL_ENV, raising=False)
    output = tmp_path / "videos"
    private = ("--model", PRIVATE_MODEL, "--duration", "6s", "--resolution", "480p")

    assert generate(emulator, output, *private, "--max-wait", "1") == 1

    (queue_id,) = emulator.ledger()["jobs"]
    recorded_entry = journal.load(queue_id)
    assert recorded_entry is not None and recorded_entry.state == "queued"
    entry = recorded_entry.path
    assert entry.parent == venice_home / "jobs"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    recorded = json.loads(entry.read_text())
    link = recorded["download_url"]
    assert link.startswith(emulator.link_origin)
    assert recorded["model"] == PRIVATE_MODEL
    out, err = capsys.readouterr()
    assert str(entry) in err
    for shown in (out, err):
        assert link not in shown
        assert link.rsplit("/", 1)[-1] not in shown, "the link's token leaked"

    # No --model, no --base-url, no link: the journal says which API, model and link.
    emulator.configure_faults(FaultConfig())
    monkeypatch.delenv("VENICE_BASE_URL", raising=False)
    resume = ["wait", "--queue-id", queue_id]
    status = main([*resume, "--output", str(output), "--min-poll-interval", "0.01"])

    assert status == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).width > 0
    assert emulator.ledger()["calls"]["queue"] == 1
    # Saved and cleaned up: the record stays (so nothing pays for this job again), the link not.
    done = json.loads(entry.read_text())
    assert done["state"] == "saved"
    assert done["download_url"] is None
    assert link not in entry.read_text()


def test_a_successful_generate_leaves_no_journal_entry_in_a_private_directory(
    emulator: Emulator, tmp_path: Path, venice_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    private = ("--model", PRIVATE_MODEL, "--duration", "6s", "--resolution", "480p")

    assert generate(emulator, tmp_path / "videos", *private, "--quiet") == 0

    jobs = venice_home / "jobs"
    assert stat.S_IMODE(jobs.stat().st_mode) == 0o700
    assert list(jobs.iterdir()) == []


def test_wait_without_model_or_journal_entry_fails_before_any_call(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    status = main(["wait", "--queue-id", "not-recorded", "--base-url", emulator.base_url])

    assert status == 2
    assert "--model is required" in capsys.readouterr().err
    assert emulator.ledger()["calls"] == {}


def test_the_environment_link_wins_over_the_journal(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queue_job(emulator, PRIVATE_MODEL)
    assert job.download_url is not None
    stale = job.model_copy(update={"download_url": SecretStr(emulator.link_origin + "/gone")})
    journal.record(stale, emulator.base_url)
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.setenv(DOWNLOAD_URL_ENV, job.download_url.get_secret_value())

    assert wait(emulator, job, tmp_path / "videos", "--quiet") == 0

    assert (tmp_path / "videos" / f"{job.queue_id}.mp4").is_file()
    done = journal.load(job.queue_id)
    assert done is not None and done.state == "saved"
    assert done.download_url is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--max-wait", "-1"), "--max-wait must be a finite number of seconds"),
        (("--max-usd", "nan"), "--max-usd must be a finite amount"),
        (("--prompt", "x" * 20_001), "prompt"),
        (("--prompt", "   "), "prompt"),
        (("--image", "http://"), "has no host"),
    ],
)
def test_generate_refuses_bad_input_before_any_call(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    expected: str,
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    status = generate(emulator, tmp_path / "videos", *extra)

    err = capsys.readouterr().err
    assert status in (1, 2)
    assert err.startswith("error:"), err
    assert expected in err
    assert "Traceback" not in err
    assert emulator.ledger()["calls"] == {}


def test_generate_into_a_file_fails_cleanly_before_paying(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    (tmp_path / "taken").write_text("a file, not a folder")

    assert generate(emulator, tmp_path / "taken") == 1

    assert "exists and is not a folder" in capsys.readouterr().err
    assert emulator.ledger()["calls"] == {}


def test_a_rerun_with_the_same_job_name_pays_once(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert generate(emulator, tmp_path / "videos", "--job-name", "teaser", "--quiet") == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert generate(emulator, tmp_path / "videos", "--job-name", "teaser", "--quiet") == 0
    second = capsys.readouterr().out.strip().splitlines()[-1]

    assert first == second
    assert Path(first).is_file()
    assert emulator.ledger()["calls"]["queue"] == 1


# prefect-venice models ----------------------------------------------------------------


def _default_price(model: CatalogModel) -> float:
    """What the emulator charges for the model's first duration, resolution, aspect ratio."""
    resolution = model.resolutions[0] if model.resolutions else None
    return model.price(model.durations[0], resolution, model.audio)


def test_models_lists_every_model_with_its_options_and_a_price(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert main(["models", "--base-url", emulator.base_url]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "MODEL", "TYPE", "PRIVACY", "DURATIONS", "RESOLUTIONS", "ASPECT", "RATIOS",
        "AUDIO", "DEFAULT", "SHAPE", "QUOTE",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {m.id for m in CATALOG}
    for model in CATALOG:
        row = rows[model.id]
        assert model.model_type in row
        assert model.privacy in row
        assert ", ".join(model.durations) in row
        assert ", ".join(model.resolutions) in row
        assert (", ".join(model.aspect_ratios) or "-") in row
        audio = ("yes" if model.audio else "no") + (
            " (configurable)" if model.audio_configurable else ""
        )
        assert f"  {audio}  " in row
        assert row.endswith(format_usd(_default_price(model))), row
    calls = emulator.ledger()["calls"]
    assert calls == {"models": 1, "quote": len(CATALOG)}  # free calls only: no queue


def test_models_json_gives_each_models_options_and_the_quote_of_its_default_shape(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    monkeypatch.setenv("VENICE_BASE_URL", emulator.base_url)  # as `generate` takes it

    assert main(["models", "--json"]) == 0

    listed = {item["id"]: item for item in json.loads(capsys.readouterr().out)}
    assert list(listed) == sorted(m.id for m in CATALOG)
    for model in CATALOG:
        item = listed[model.id]
        assert item["model_type"] == model.model_type
        assert item["privacy"] == model.privacy
        assert item["durations"] == list(model.durations)
        assert item["resolutions"] == list(model.resolutions)
        assert item["aspect_ratios"] == list(model.aspect_ratios)
        assert (item["audio"], item["audio_configurable"]) == (
            model.audio,
            model.audio_configurable,
        )
        assert item["default_shape"] == {
            "duration": model.durations[0],
            "resolution": model.resolutions[0] if model.resolutions else None,
            "aspect_ratio": model.aspect_ratios[0] if model.aspect_ratios else None,
        }
        assert item["quote_usd"] == _default_price(model)
        assert item["quote_error"] is None
    assert "queue" not in emulator.ledger()["calls"]


def test_models_quotes_a_few_at_a_time(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)

    assert main(["models", "--base-url", emulator.base_url, "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err
    assert main(["models", "--base-url", emulator.base_url, "--no-quotes", "--json"]) == 0
    assert all(item["quote_usd"] is None for item in json.loads(capsys.readouterr().out))
    assert emulator.ledger()["calls"] == {"models": 1}


def test_models_needs_the_api_key_and_sends_nothing_without_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VENICE_API_KEY", raising=False)

    assert main(["models", "--base-url", emulator.base_url]) == 2

    assert "VENICE_API_KEY" in capsys.readouterr().err
    assert emulator.ledger()["calls"] == {}


def test_models_with_a_wrong_key_fails_with_venices_answer(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", "not-the-key")

    assert main(["models", "--base-url", emulator.base_url]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error:") and "401" in err
    assert "Traceback" not in err


# Unknown model ids ----------------------------------------------------------------


def _listed(*ids: str) -> list[VideoModel]:
    return [VideoModel(id=model_id) for model_id in ids]


def test_an_unknown_model_names_the_closest_ids_and_the_models_command() -> None:
    models = _listed(*(m.id for m in CATALOG))
    with pytest.raises(UnknownModelError) as caught:
        find_model(models, "sora-9")
    message = str(caught.value)
    assert "Closest ids: sora-2-text-to-video." in message
    assert f"`prefect-venice models` lists all {len(CATALOG)} video models" in message

    with pytest.raises(UnknownModelError) as caught:
        find_model(models, "kling")  # a family: the ids that start like it
    kling = "kling-2.5-turbo-pro-image-to-video, kling-2.5-turbo-pro-text-to-video."
    assert f"Closest ids: {kling}" in str(caught.value)


def test_with_no_close_id_the_first_five_ids_alphabetically_are_named() -> None:
    ids = [f"model-{letter}" for letter in "gfedcba"]
    with pytest.raises(UnknownModelError) as caught:
        find_model(_listed(*ids), "zz")
    message = str(caught.value)
    assert "model-a, model-b, model-c, model-d, model-e." in message
    assert "model-f" not in message
    assert "`prefect-venice models` lists all 7 video models" in message


def test_generate_with_an_unknown_model_names_close_ids_and_pays_nothing(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    argv = ["generate", "--prompt", "A gondola", "--model", "wan-2.5-text-to-video"]
    argv += ["--duration", "5s", "--base-url", emulator.base_url, "--output", str(tmp_path)]

    assert main(argv) == 1

    err = capsys.readouterr().err
    assert "Closest ids: wan-2.5-preview-text-to-video" in err
    assert "prefect-venice models" in err
    assert emulator.ledger()["calls"] == {"models": 1}


def test_a_resume_command_never_shows_credentials_in_the_base_url() -> None:
    from prefect_venice.generation import wait_command

    command = wait_command(
        ["--queue-id", "q1"], "DIR", "https://alice:s3cret@venice.example/api/v1"
    )

    assert "s3cret" not in command and "alice" not in command
    assert "venice.example/api/v1" in command
