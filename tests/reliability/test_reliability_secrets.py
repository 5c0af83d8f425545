"""Case 5: after all the runs, no API key and no private link is readable at rest.

Runs last (the conftest orders it so). It makes private videos of its own through a
flow, a batch and the CLI (so it has something to find when run alone), reads a job
journal record while its private job is queued (the link must be there, and only the
user may read it), then scans every byte the session left:

- $PREFECT_HOME (storage, logs) and the Prefect test server's database file;
- every job journal, every prefect-venice home (pacing accounts), every output folder;
- this process's log records and every subprocess's stdout and stderr;
- what the Prefect API serves: flow runs (parameters, state messages), task runs, logs,
  artifacts and events, read through the Prefect client.

for each API key the session's emulators accepted and each private-link token they
issued (read from the emulators, not from the client), and for any `/v1/share/read/<token>`
path. A link may remain only in a journal record of a job that was never saved (a
0600 file in a 0700 folder); a saved job's record holds none. A canary first proves
that the scanner finds what it looks for.
"""

from __future__ import annotations

import json
import logging
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prefect.client.orchestration import get_client
from reliability_support import (
    Figures,
    Finding,
    ReliabilitySession,
    SecretScanner,
    charged_jobs,
    cli_env,
    cli_generate_args,
    fields_for,
    finish,
    issued_link_tokens,
    journal_entry,
    journal_mode_problems,
    journal_records,
    save_block,
    spawn,
)

from prefect_venice.emulator import Emulator
from prefect_venice.flows import VideoRequest, generate_video, generate_videos

SECTION = "case 5: secrets at rest"
T = TypeVar("T")


def _pages(read: Callable[[int, int], list[T]], size: int = 200) -> Iterator[T]:
    offset = 0
    while True:
        page = read(size, offset)
        yield from page
        if len(page) < size:
            return
        offset += size


def _dump_prefect_api(path: Path) -> dict[str, int]:
    """Write everything the Prefect API serves about the session's runs to `path`."""
    counts = {"flow_runs": 0, "task_runs": 0, "logs": 0, "artifacts": 0, "events": 0}
    quiet = logging.getLogger("httpx")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # hundreds of reads of the test server's own API
    try:
        _dump(path, counts)
    finally:
        quiet.setLevel(level)
    return counts


def _dump(path: Path, counts: dict[str, int]) -> None:
    with get_client(sync_client=True) as client, path.open("w", encoding="utf-8") as out:
        for flow_run in _pages(lambda n, o: client.read_flow_runs(limit=n, offset=o)):
            counts["flow_runs"] += 1
            state = flow_run.state
            out.write(f"flow run {flow_run.name} {json.dumps(flow_run.parameters, default=str)}\n")
            out.write(f"  state {state.name if state else ''}: {state.message if state else ''}\n")
        for task_run in _pages(lambda n, o: client.read_task_runs(limit=n, offset=o)):
            counts["task_runs"] += 1
            state = task_run.state
            out.write(f"task run {task_run.name}: {state.message if state else ''}\n")
        for log in _pages(lambda n, o: client.read_logs(limit=n, offset=o)):
            counts["logs"] += 1
            out.write(f"log {log.name}: {log.message}\n")
        for artifact in _pages(lambda n, o: client.read_artifacts(limit=n, offset=o)):
            counts["artifacts"] += 1
            out.write(f"artifact {artifact.key} {artifact.description}\n{artifact.data}\n")
        response = client.request(
            "POST",
            "/events/filter",
            json={"filter": {"occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50},
        )
        body: dict[str, Any] = response.json()
        with httpx.Client(timeout=30) as http:
            while True:
                for event in body.get("events", []):
                    counts["events"] += 1
                    out.write(f"event {json.dumps(event, default=str)}\n")
                next_page = body.get("next_page")
                if not next_page:
                    break
                body = http.get(next_page).json()


def _private_request(output: Path, n: int, job_name: str | None = None) -> VideoRequest:
    return VideoRequest(
        prompt=f"A lighthouse in a storm, take {n}",
        output_dir=str(output),
        job_name=job_name,
        max_usd=1.0,
        **fields_for(True),
    )


def _runs_of_its_own(emulator: Emulator, session: ReliabilitySession, figures: Figures) -> None:
    """Private videos through a flow, a batch and the CLI; a journal read while queued."""
    block = save_block(emulator)
    output = session.folder("outputs", "secrets")
    assert generate_video(
        request=_private_request(output, 0, "secrets-flow"), credentials_block=block
    ).path
    batch = [_private_request(output, n) for n in (1, 2)]
    assert len(generate_videos(batch, max_usd=2.0, credentials_block=block)) == 2

    home = session.folder("homes", "secrets-cli")
    args = cli_generate_args(
        emulator, private=True, prompt="A lighthouse, CLI", output=output, job_name="secrets-cli"
    )
    process = spawn(args, cli_env(emulator, home), session.root)
    key = "named:secrets-cli"
    deadline = time.monotonic() + 60
    entry = journal_entry(home / "jobs", key)
    while (entry is None or entry.state != "queued") and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.005)
        entry = journal_entry(home / "jobs", key)
    done = finish(process, session, "secrets-cli")
    assert done.returncode == 0, done.stderr
    # While queued, the record held the one-time link, in a file only the user may read.
    assert entry is not None and entry.state == "queued", "never saw the job queued"
    assert entry.download_url is not None
    token = entry.download_url.get_secret_value().rsplit("/", 1)[-1]
    assert token in issued_link_tokens(emulator)
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.path.parent.stat().st_mode) == 0o700
    after = journal_entry(home / "jobs", key)
    assert after is not None and after.state == "saved" and after.download_url is None
    assert len(charged_jobs(emulator.ledger())) == 4
    figures.set(SECTION, "own private videos", 4)


def _canary_is_found(
    scanner_for: Callable[[set[str], set[str]], SecretScanner], root: Path
) -> None:
    """The scanner finds a key, a token and a link path when they are there."""
    canary = root / "canary"
    canary.mkdir()
    key, token = "vk-rel-canary" + "0" * 20, "C" * 43
    (canary / "a.log").write_text(f"Authorization: Bearer {key}\n")
    (canary / "b.json").write_text(json.dumps({"url": f"http://h:1/v1/share/read/{token}"}))
    (canary / "c.bin").write_bytes(b"\x00" * 5_000_000 + token.encode() + b"\x00")
    files, found = scanner_for({key}, {token}).scan_tree(canary)
    for path in canary.iterdir():
        path.unlink()
    canary.rmdir()
    labels = sorted({(Path(f.where).name, f.what) for f in found})
    assert files == 3
    assert labels == [
        ("a.log", "API key"),
        ("b.json", "a private link path and token"),
        ("b.json", "private-link token"),
        ("c.bin", "private-link token"),
    ], labels


def _files(findings: list[Finding]) -> int:
    return len({finding.where for finding in findings})


def _scanner(keys: set[str], tokens: set[str]) -> SecretScanner:
    return SecretScanner({"API key": keys, "private-link token": tokens})


def _in_journal(finding: Finding, session: ReliabilitySession) -> Path | None:
    path = Path(finding.where)
    in_journal = any(path.parent == journal for journal in session.journals)
    return path if in_journal and journal_mode_problems(path.parent) == [] else None


def _in_flight(finding: Finding, session: ReliabilitySession) -> bool:
    """A link in the journal record of a job never saved: kept, user-only, to resume it."""
    path = _in_journal(finding, session)
    if path is None or path.suffix != ".json":
        return False
    record = json.loads(path.read_text(encoding="utf-8"))
    return bool(record.get("state") == "queued")


def _orphaned_temp(finding: Finding, session: ReliabilitySession) -> bool:
    """A journal temp file a kill left behind (user-only): the known bug, counted apart.

    test_reliability_kills.py::test_a_kill_during_a_journal_write_leaves_no_link_at_rest
    reproduces it deterministically (xfail, strict); here it may or may not happen.
    """
    path = _in_journal(finding, session)
    return path is not None and path.name.startswith(".") and path.suffix == ".tmp"


def test_no_api_key_or_private_link_is_readable_at_rest(
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
    reliability_env: Path,
    figures: Figures,
) -> None:
    emulator = start_emulator(job_duration_factor=3.0)
    _runs_of_its_own(emulator, reliability, figures)
    _canary_is_found(_scanner, reliability.root)

    keys = set(reliability.api_keys)
    tokens = set(reliability.link_tokens) | issued_link_tokens(emulator)
    counts = _dump_prefect_api(reliability.captures / "prefect-api.txt")
    dump = (reliability.captures / "prefect-api.txt").read_text(encoding="utf-8")
    # The dump is of the right server: it names the session's jobs and redacts links.
    known = set(reliability.queue_ids) | set(emulator.ledger()["jobs"])
    assert sum(queue_id in dump for queue_id in known) >= 3  # the CLI job is not in Prefect
    assert "<private link redacted>" in dump
    assert counts["artifacts"] > 0 and counts["logs"] > 0

    scanner = _scanner(keys, tokens)
    roots = [reliability.root, reliability.database.parent]
    files = 0
    findings: list[Finding] = []
    for root in roots:
        scanned, found = scanner.scan_tree(root)
        files += scanned
        findings += found
    kept = [finding for finding in findings if _in_flight(finding, reliability)]
    orphaned = [finding for finding in findings if _orphaned_temp(finding, reliability)]
    leaked = sorted({(f.where, f.what) for f in findings if f not in kept and f not in orphaned})

    journal_problems = [p for j in sorted(reliability.journals) for p in journal_mode_problems(j)]
    saved_with_link = [
        record["_path"]
        for journal in sorted(reliability.journals)
        for record in journal_records(journal)
        if record.get("state") == "saved" and record.get("download_url")
    ]
    figures.set(SECTION, "api keys looked for", len(keys))
    figures.set(SECTION, "link tokens looked for", len(tokens))
    figures.set(SECTION, "files scanned", files)
    figures.set(SECTION, "journal folders", len(reliability.journals))
    for name, count in counts.items():
        figures.set(SECTION, f"prefect api {name} read", count)
    figures.set(SECTION, "journal records of unsaved jobs holding a link", _files(kept))
    figures.set(SECTION, "orphaned journal temp files holding a link (bug)", _files(orphaned))
    figures.set(SECTION, "files holding a secret elsewhere", len({where for where, _ in leaked}))
    assert len(tokens) >= 4 and len(keys) >= 1
    assert leaked == [], leaked
    assert journal_problems == [], journal_problems
    assert saved_with_link == [], saved_with_link
