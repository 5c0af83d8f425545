"""Case 2: a hard kill (SIGKILL) at each phase of a paid video, then the documented resume.

A flow run (generate_video in its own process) or `prefect-venice generate` runs with a
fixed job name and is killed when the emulator's request log (or the disk) shows it
reached a phase:

- before-send: the quote call appears (the queue call is moments away);
- at-answer: the queue call appears (logged as the emulator decides its answer): at once;
- after-charge: the queue call appears, then a random 0-50 ms (seeded);
- waiting: a retrieve call appears;
- mid-download: the MP4's `.part` file holds its first bytes (big video, slow link).

Then it is resumed the documented way: the same command or flow with the same job name
(for the CLI, every other time `prefect-venice jobs list` + `prefect-venice wait --queue-id`).
What the journal held at the kill decides what must happen:

- no record: nothing was sent; the resume pays once and saves the video;
- `sending`: the request may have left; the resume refuses with UnconfirmedQueueError
  naming the key and how to check, and pays nothing (whether the killed run's request
  reached Venice is read from the ledger: "sent, answer lost" or "claimed, never sent";
  for the latter the suite follows the documented remedy, `jobs forget`, and runs again);
- `queued` / `saved`: the resume pays nothing more and saves (or reports) the video.

Never more than one charge; every saved MP4 whole; nothing half-written left behind.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_support import (
    CLI,
    PRIVATE_MODEL,
    SEED,
    Figures,
    Finished,
    ReliabilitySession,
    charged_jobs,
    check_whole_video,
    cli_env,
    cli_generate_args,
    expected_video,
    fields_for,
    finish,
    flow_env,
    flow_runner_args,
    journal_entry,
    journal_mode_problems,
    journal_records,
    kill_when,
    leftovers,
    mp4s,
    queue_calls,
    requests_of,
    run,
    save_block,
    spawn,
    status_count,
)

from prefect_venice.emulator import Emulator, FaultConfig

#: Kills per interface and phase; the kill right after the charge has the most outcomes.
TRIALS = {"before-send": 2, "at-answer": 3, "after-charge": 5, "waiting": 2, "mid-download": 2}
#: Mid-download kills need a transfer that lasts: a 48 MB MP4.
BIG_VIDEO = 48 * 1024 * 1024
#: After a kill, what the killed process had already sent is still being answered.
SETTLE_SECONDS = 0.5

OUTCOMES = {
    "none": "killed before the claim: resumed, paid once",
    "claimed": "claimed, never sent: refused, nothing paid; forgotten and run again",
    "lost": "sent, answer lost: refused, paid once, no video",
    "queued": "answer recorded: resumed, paid once",
    "saved": "saved before the kill: reported, paid once",
}

_rng = random.Random(SEED)
_FAST_POLL = ("--min-poll-interval", "0.01")


@dataclass
class Trial:
    """One kill and its resume."""

    interface: str
    phase: str
    number: int
    emulator: Emulator
    home: Path
    output: Path
    args: list[str]
    env: dict[str, str]
    private: bool
    delay: float = 0.0
    state_at_kill: str = "none"
    parts_at_kill: list[Path] = field(default_factory=list)
    outcome: str = ""
    resumes: list[Finished] = field(default_factory=list)
    #: Pacing probes the killed process left open (prefect_venice.pacing holds other
    #: processes back until such a probe's answer or its 30 s timeout).
    open_probes: int = 0
    resume_seconds: float = 0.0

    @property
    def job_name(self) -> str:
        return f"kill-{self.interface}-{self.phase}-{self.number}"

    @property
    def key(self) -> str:
        # The flows' job_name and the CLI's --job-name are journaled alike.
        return f"named:{self.job_name}"

    @property
    def journal(self) -> Path:
        return self.home / "jobs"

    @property
    def video_bytes(self) -> int | None:
        return BIG_VIDEO if self.phase == "mid-download" else None


def _parts(folder: Path) -> list[Path]:
    """`.part` files holding bytes (a download in progress, or one killed mid-way)."""
    found = []
    try:
        for path in folder.rglob("*.part"):
            if path.stat().st_size > 0:
                found.append(path)
    except FileNotFoundError:  # the folder or file went away while we looked
        pass
    return found


def _condition(trial: Trial) -> Callable[[], bool]:
    emulator = trial.emulator
    if trial.phase == "before-send":
        return lambda: bool(requests_of(emulator, "quote"))
    if trial.phase in ("at-answer", "after-charge"):
        return lambda: bool(requests_of(emulator, "queue"))
    if trial.phase == "waiting":
        return lambda: bool(requests_of(emulator, "retrieve"))
    return lambda: trial.output.exists() and bool(_parts(trial.output))


def _new_trial(
    interface: str,
    phase: str,
    number: int,
    start_emulator: Callable[..., Emulator],
    session: ReliabilitySession,
) -> Trial:
    private = number % 2 == 1
    slow_link = FaultConfig(latency={"link_get": 0.1})
    big = phase == "mid-download"
    emulator = start_emulator(
        video_bytes=BIG_VIDEO if big else None, faults=slow_link if big else FaultConfig()
    )
    name = f"kill-{interface}-{phase}-{number}"
    home = session.folder("homes", name)
    output = session.folder("outputs", name)
    prompt = f"A kite over dunes, {name}"
    if interface == "cli":
        args = cli_generate_args(
            emulator, private=private, prompt=prompt, output=output, job_name=name
        )
        env = cli_env(emulator, home)
    else:
        request = {
            "prompt": prompt,
            "output_dir": str(output),
            "job_name": name,
            "max_usd": 1.0,
            **fields_for(private),
        }
        args = flow_runner_args(request, save_block(emulator))
        env = flow_env(session, home)
    trial = Trial(interface, phase, number, emulator, home, output, args, env, private)
    if phase == "after-charge":
        trial.delay = _rng.uniform(0.0, 0.05)
    return trial


def _kill(trial: Trial, session: ReliabilitySession) -> None:
    process = spawn(trial.args, trial.env, session.root)
    killed = kill_when(process, _condition(trial), delay=trial.delay)
    done = finish(process, session, f"{trial.job_name}-killed")
    assert killed, f"{trial.job_name} ended before its kill:\n{done.stdout}\n{done.stderr}"
    trial.parts_at_kill = _parts(trial.output) if trial.output.exists() else []
    time.sleep(SETTLE_SECONDS)
    entry = journal_entry(trial.journal, trial.key)
    trial.state_at_kill = entry.state if entry is not None else "none"
    trial.open_probes = _open_probes(trial.home / "pacing")
    # In flight, the record may hold a private link: only the user may read it.
    assert journal_mode_problems(trial.journal) == []


def _open_probes(folder: Path) -> int:
    """Pacing accounts (one per key, API and endpoint) with a probe still waiting for its answer."""
    now = time.time()
    count = 0
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            account = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # killed between truncate and write: the pacer starts afresh
            continue
        count += float(account.get("probe_until") or 0) > now
    return count


def _queue_id_from_jobs_list(trial: Trial, session: ReliabilitySession) -> str:
    listed = run([CLI, "jobs", "list"], trial.env, session.root, session, f"{trial.job_name}-jobs")
    assert listed.returncode == 0, listed.stderr
    for line in listed.stdout.splitlines():
        _state, key, _model, queue_id, *_ = line.split("\t")
        if key == trial.key:
            return queue_id
    raise AssertionError(f"`prefect-venice jobs list` does not list {trial.key}:\n{listed.stdout}")


def _resume(trial: Trial, session: ReliabilitySession) -> Finished:
    """The documented resume: the same command or flow with the same job name."""
    if trial.interface == "cli" and trial.state_at_kill == "queued" and trial.number % 2 == 1:
        queue_id = _queue_id_from_jobs_list(trial, session)
        waited = run(
            [CLI, "wait", "--queue-id", queue_id, "--output", str(trial.output), *_FAST_POLL],
            trial.env,
            session.root,
            session,
            f"{trial.job_name}-wait",
        )
        assert waited.returncode == 0, waited.stderr
        trial.resumes.append(waited)
    done = run(trial.args, trial.env, session.root, session, f"{trial.job_name}-resumed")
    trial.resumes.append(done)
    return done


def _refused_as_unconfirmed(trial: Trial, done: Finished) -> list[str]:
    problems = []
    if trial.interface == "flow":
        outcome = done.flow_outcome()
        if outcome.get("error") != "UnconfirmedQueueError":
            problems.append(f"the resume ended {outcome}, not with UnconfirmedQueueError")
        text = outcome.get("message") or ""
    else:
        if done.returncode != 1:
            problems.append(f"the resume exited {done.returncode}")
        text = done.stderr
    if "Traceback" in done.stderr and trial.interface == "cli":
        problems.append("the CLI printed a traceback")
    for needed in (repr(trial.key), "jobs forget", "usage history"):
        if needed not in text:
            problems.append(f"the refusal does not say {needed!r}: {text[:400]}")
    return problems


def _saved_video(trial: Trial, done: Finished) -> tuple[Path, int, str]:
    """Where the resume says the video is, and the size and SHA-256 it reports."""
    if trial.interface == "flow":
        outcome = done.flow_outcome()
        assert outcome["state"] == "COMPLETED", outcome
        result = outcome["result"]
        return Path(result["path"]), int(result["size_bytes"]), str(result["sha256"])
    assert done.returncode == 0, done.stderr
    path = Path(done.last_line)
    if trial.state_at_kill == "saved" or "already saved" in done.stderr:
        entry = journal_entry(trial.journal, trial.key)
        assert entry is not None and entry.saved is not None
        return path, int(entry.saved["size_bytes"]), str(entry.saved["sha256"])
    sha = next(
        line.rsplit("sha256 ", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("saved ") and "sha256 " in line
    )
    return path, path.stat().st_size, sha


def _run_trial(trial: Trial, session: ReliabilitySession) -> None:
    """Kill, resume, and check everything the ledger and the disk say."""
    _kill(trial, session)
    ledger = trial.emulator.ledger()
    calls_before_resume = queue_calls(ledger)
    charged_at_kill = len(charged_jobs(ledger))
    if trial.state_at_kill == "none":
        # The claim is written before the request leaves: no record, no request.
        assert calls_before_resume == 0, "a queue request left without a journal record"

    started = time.monotonic()
    done = _resume(trial, session)
    trial.resume_seconds = time.monotonic() - started
    ledger = trial.emulator.ledger()
    charged = charged_jobs(ledger)
    assert len(charged) <= 1, f"{trial.job_name}: charged {len(charged)} times"
    assert status_count(ledger, "queue", "200") == len(charged)

    if trial.state_at_kill == "sending":
        assert _refused_as_unconfirmed(trial, done) == []
        assert queue_calls(ledger) == calls_before_resume, "the refused resume sent a queue call"
        assert mp4s(trial.output) == []
        trial.outcome = "lost" if charged_at_kill else "claimed"
        if trial.outcome == "claimed":
            _forget_and_run_again(trial, session)
            ledger = trial.emulator.ledger()
            charged = charged_jobs(ledger)
            assert len(charged) == 1
            _check_saved(trial, trial.resumes[-1])
        else:
            assert len(charged) == 1
    else:
        trial.outcome = trial.state_at_kill
        if trial.state_at_kill != "none":
            assert queue_calls(ledger) == calls_before_resume, "the resume paid again"
        assert len(charged) == 1
        _check_saved(trial, done)
    assert journal_mode_problems(trial.journal) == []
    for record in journal_records(trial.journal):
        assert record.get("download_url") is None, "a link stayed in the journal after the resume"
    assert ledger["link_auth_seen"] is False


def _forget_and_run_again(trial: Trial, session: ReliabilitySession) -> None:
    """The refusal's own advice, after the ledger showed no charge: forget the key, run again."""
    forgot = run(
        [CLI, "jobs", "forget", trial.key], trial.env, session.root, session, f"{trial.job_name}-f"
    )
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    trial.resumes.append(
        run(trial.args, trial.env, session.root, session, f"{trial.job_name}-again")
    )


def _check_saved(trial: Trial, done: Finished) -> None:
    path, size, sha = _saved_video(trial, done)
    problems = check_whole_video(
        path, size=size, sha256=sha, expected=expected_video(trial.private, trial.video_bytes)
    )
    assert problems == [], problems
    assert mp4s(trial.output) == [path], "more than one MP4, or not where the run said"
    entry = journal_entry(trial.journal, trial.key)
    assert entry is not None and entry.state == "saved"
    assert entry.download_url is None, "the private link stayed in the journal after the save"
    left = leftovers(trial.output)
    # Only what the killed process itself left mid-download may remain (a known bug,
    # test_a_resume_removes_the_killed_downloads_part_file); nothing of the resume's own.
    allowed = set(trial.parts_at_kill) | {part.parent for part in trial.parts_at_kill}
    assert set(left) <= allowed, left


def _record(figures: Figures, trial: Trial) -> None:
    section = "case 2: kills"
    figures.add(section, f"{trial.interface} {trial.phase}: {trial.outcome}")
    figures.add(section, f"all: {trial.outcome}")
    figures.add(section, "trials")
    charged = len(charged_jobs(trial.emulator.ledger()))
    figures.add(section, "charges", charged)
    figures.add(section, "videos_saved", len(mp4s(trial.output)))
    if trial.parts_at_kill:
        figures.add(section, "part_files_left_by_the_killed_run", len(trial.parts_at_kill))
    if trial.open_probes:
        figures.add(section, "kills that left a pacing probe open")
    # Not asserted (no timed assertions): how long the resume took, to show the stall.
    slowest = figures.data.get(section, {}).get("slowest resume (s)", 0.0)
    figures.set(section, "slowest resume (s)", round(max(slowest, trial.resume_seconds), 1))
    if trial.resume_seconds > 20:
        figures.add(section, "resumes over 20 s")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("phase", list(TRIALS))
@pytest.mark.parametrize("interface", ["cli", "flow"])
def test_a_kill_then_the_documented_resume_pays_once_or_refuses(
    interface: str,
    phase: str,
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
    figures: Figures,
) -> None:
    for number in range(TRIALS[phase]):
        trial = _new_trial(interface, phase, number, start_emulator, reliability)
        _run_trial(trial, reliability)
        _record(figures, trial)
        if phase == "mid-download":
            assert trial.parts_at_kill, "the kill did not land mid-download"
            assert trial.outcome == "queued"
        if phase == "waiting":
            assert trial.outcome == "queued"


@pytest.mark.parametrize("interface", ["cli", "flow"])
def test_a_resume_removes_the_killed_downloads_part_file(
    interface: str,
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
) -> None:
    trial = _new_trial(interface, "mid-download", 100, start_emulator, reliability)
    _kill(trial, reliability)
    assert trial.parts_at_kill, "the kill did not land mid-download"
    done = _resume(trial, reliability)
    _check_saved(trial, done)
    assert leftovers(trial.output) == []


_DIE_BETWEEN_WRITE_AND_RENAME = """
import os, signal, sys
from pydantic import SecretStr
from prefect_venice.journal import JobJournal
from prefect_venice.models import QueuedJob

journal = JobJournal()
journal.claim("named:orphan", model=sys.argv[1], base_url=sys.argv[2])
# SIGKILL at the one point a kill after the charge can land inside JobJournal.answered:
# the record's temporary file is written (and fsynced), the rename has not happened.
os.replace = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
job = QueuedJob(model=sys.argv[1], queue_id="q-orphan", download_url=SecretStr(sys.argv[3]))
journal.answered("named:orphan", job)
"""


def test_a_kill_during_a_journal_write_leaves_no_link_at_rest(
    start_emulator: Callable[..., Emulator], reliability: ReliabilitySession
) -> None:
    emulator = start_emulator()
    home = reliability.folder("homes", "orphan")
    env = cli_env(emulator, home)
    link = f"{emulator.link_origin}/v1/share/read/{'T' * 43}"
    script = [sys.executable, "-c", _DIE_BETWEEN_WRITE_AND_RENAME]
    died = run(
        [*script, PRIVATE_MODEL, emulator.base_url, link],
        env,
        reliability.root,
        reliability,
        "orphan-killed",
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    try:
        # The documented remedy once Venice's usage history shows no charge: forget the key.
        forgot = run(
            [CLI, "jobs", "forget", "named:orphan"], env, reliability.root, reliability, "f"
        )
        assert forgot.returncode == 0, forgot.stdout + forgot.stderr
        holding = [p.name for p in (home / "jobs").iterdir() if "T" * 43 in p.read_text("utf-8")]
        assert holding == [], f"the private link stays in {holding}"
    finally:
        # This test's made-up link is not one the session's scan should count.
        for path in (home / "jobs").iterdir():
            path.unlink()
