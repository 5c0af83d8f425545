"""The `prefect-venice` console script: run the emulator, generate one video, or resume one."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from . import generation
from ._base import DEFAULT_BASE_URL
from .client import AsyncVeniceClient, VeniceClient
from .errors import VeniceError, VideoLinkMissingError
from .generation import DOWNLOAD_URL_ENV, LocalDestination, wait_command
from .journal import JobJournal, JournalEntry, JournalError
from .media import to_data_url
from .models import Progress, QueuedJob, QueueRequest, QuoteRequest, VideoModel, VideoSaved
from .polling import PollPolicy
from .validation import build_queue_request

__all__ = ["DOWNLOAD_URL_ENV", "main", "resume_command"]

Say = Callable[[str], None]

#: `models` quotes this many models at once by default; --concurrency allows up to the maximum.
_QUOTE_CONCURRENCY = 4
_MAX_QUOTE_CONCURRENCY = 16


class _UsageError(Exception):
    """The command line or environment is incomplete; nothing was sent."""


def resume_command(
    model: str, queue_id: str, output: str = "DIR", base_url: str | None = None
) -> str:
    """Return the shell command that fetches a queued public job without paying again.

    `output` is quoted for the shell unless it is the placeholder "DIR"; base_url is
    named only when it differs from the real API.
    """
    return wait_command(["--model", model, "--queue-id", queue_id], output, base_url)


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that waits for, saves and cleans up a video."""
    parser.add_argument("--output", default=".", help="directory for the MP4 (default: .)")
    parser.add_argument(
        "--base-url",
        default=None,
        help=(
            "API base URL (default: $VENICE_BASE_URL; for wait, then the job journal's; "
            "else the real API)"
        ),
    )
    parser.add_argument(
        "--max-wait", type=float, default=1800.0, help="seconds to wait (default 1800)"
    )
    parser.add_argument(
        "--min-poll-interval", type=float, default=3.0, help="shortest pause between polls, s"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the MP4 path")


def _generate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = sub.add_parser(
        "generate",
        help="validate, quote, queue, wait for and save one video",
        description=(
            "Generate one video: validate the request against the model, quote it, refuse it "
            "above --max-usd, queue it, wait, save the MP4, then clean up on Venice. The API "
            "key is read from VENICE_API_KEY. The saved MP4's path is printed last."
        ),
    )
    gen.add_argument("--prompt", required=True, help="what to generate")
    gen.add_argument(
        "--model", required=True, help="video model id, e.g. wan-2.5-preview-text-to-video"
    )
    gen.add_argument("--duration", required=True, help='e.g. "5s"; the model lists its durations')
    gen.add_argument("--resolution", help='e.g. "720p"')
    gen.add_argument("--aspect-ratio", help='e.g. "16:9"')
    gen.add_argument("--negative-prompt")
    gen.add_argument("--audio", choices=("on", "off"), help="only for audio-configurable models")
    gen.add_argument("--image", help="image for image-to-video: a local file or an http(s) URL")
    gen.add_argument("--max-usd", type=float, help="refuse to queue if the quote is higher")
    gen.add_argument(
        "--job-name",
        help=(
            "name this paid job: a rerun with the same key resumes it (or reports it saved) "
            "instead of paying again"
        ),
    )
    _add_wait_options(gen)
    gen.set_defaults(run=_generate, keep_on_venice=False)


def _wait_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wait = sub.add_parser(
        "wait",
        help="wait for and save a video that is already queued (no new charge)",
        description=(
            "Resume a queued job: poll it by its queue id (nothing is queued or paid), save "
            "the MP4, then clean up on Venice unless --keep-on-venice. The API key is read "
            f"from VENICE_API_KEY. A private model's download_url is a secret: pass it in "
            f"{DOWNLOAD_URL_ENV}, never on the command line; without it, the link that "
            "`generate` recorded in the job journal ($PREFECT_VENICE_HOME/jobs or "
            "~/.prefect-venice/jobs) is used. The saved MP4's path is printed last."
        ),
    )
    wait.add_argument(
        "--model",
        help="the model the job was queued with (default: the one in the job journal)",
    )
    wait.add_argument("--queue-id", required=True, help="the queue_id of the paid job")
    _add_wait_options(wait)
    wait.add_argument(
        "--keep-on-venice",
        action="store_true",
        help="leave the media (and a private link) on Venice after saving",
    )
    wait.set_defaults(run=_wait)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefect-venice", description="Venice.ai video generation tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "emulator",
        help="run the local Venice emulator (see `prefect-venice emulator --help`)",
        add_help=False,
    )
    _generate_parser(sub)
    _wait_parser(sub)
    _jobs_parser(sub)
    _limits_parser(sub)
    _recovery_parser(sub)
    _spend_parser(sub)
    _models_parser(sub)
    return parser


def _spend_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spend = sub.add_parser(
        "spend",
        help="show what a credentials block spent, reserved and has left this period",
        description=(
            "Read a VeniceCredentials block's spend account from the Prefect server that "
            "PREFECT_API_URL names: the current period's cap, spent, reserved and remaining, "
            "then what was spent on each of the last days."
        ),
    )
    spend.add_argument("--credentials-block", default="venice", help="block name (default venice)")
    spend.add_argument("--days", type=int, default=7, help="days to list (default 7)")
    spend.set_defaults(run=_spend)


def _limits_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    limits = sub.add_parser(
        "limits",
        help="create the Prefect global rate limits that share Venice's limits across workers",
        description=(
            "Create (or update) two Prefect global concurrency limits on the Prefect server "
            "that PREFECT_API_URL names, one for /video/queue and one for /video/retrieve, "
            "and print the settings that make workers use them. Every process already "
            "paces itself from Venice's rate-limit headers; these limits make workers on "
            "several machines share one key's allowance. By default each is a window "
            "limit: its slots are the minute's allowance and every call leases one for "
            "62 s, so no 60 s holds more calls than Venice allows (set the server's "
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS=1 so that slots come back "
            "on time). --kind rate makes token buckets with slot decay instead."
        ),
    )
    limits.add_argument(
        "--reset",
        action="store_true",
        help="free every taken slot (after a server restart with in-memory lease storage)",
    )
    limits.add_argument(
        "--kind",
        choices=("window", "rate"),
        default="window",
        help="window (default): minute leases; rate: slot decay, a tenth as burst",
    )
    limits.add_argument("--queue-per-minute", type=float, default=40.0, help="default 40")
    limits.add_argument("--retrieve-per-minute", type=float, default=120.0, help="default 120")
    limits.add_argument("--queue-name", default="venice-queue")
    limits.add_argument("--retrieve-name", default="venice-retrieve")
    limits.set_defaults(run=_limits)


def _recovery_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recovery = sub.add_parser(
        "recovery",
        help="create the automations that recover the runs of a worker that died",
        description=(
            "Create (or replace) two Prefect automations on the server PREFECT_API_URL "
            "names: one marks a flow run tagged venice Crashed when its heartbeats stop "
            "(its worker or machine died; workers need PREFECT_FLOWS_HEARTBEAT_FREQUENCY, "
            "e.g. 30), one schedules a crashed run again so that a live worker resumes "
            "it. With a job journal every worker reaches "
            "(PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR), the new attempt resumes the job "
            "already paid for."
        ),
    )
    recovery.add_argument("--tag", default="venice", help="runs watched (default venice)")
    recovery.add_argument(
        "--silence", type=float, default=90.0, help="seconds without heartbeat (default 90)"
    )
    recovery.add_argument(
        "--no-retry", action="store_true", help="only mark dead runs Crashed; do not retry"
    )
    recovery.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="runs per flow run, retries included (default 3); a run that never started "
        "is not retried",
    )
    recovery.set_defaults(run=_recovery)


def _models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser(
        "models",
        help="list the video models with their options and the price of their default shape",
        description=(
            "List the video models (GET /models?type=video) with their durations, "
            "resolutions, aspect ratios, audio, privacy and type, and quote each model's "
            "default shape: its first duration, first resolution and first aspect ratio "
            "(POST /video/quote, free; nothing is queued or paid). The API key is read from "
            "VENICE_API_KEY. A table on stdout, or JSON with --json."
        ),
    )
    models.add_argument(
        "--base-url",
        default=None,
        help="API base URL (default: $VENICE_BASE_URL, else the real API)",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument(
        "--concurrency",
        type=int,
        default=_QUOTE_CONCURRENCY,
        help=f"quotes in flight at once (default {_QUOTE_CONCURRENCY}, 1-{_MAX_QUOTE_CONCURRENCY})",
    )
    models.add_argument(
        "--no-quotes", action="store_true", help="list the models only, without quoting them"
    )
    models.set_defaults(run=_models)


def _jobs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = sub.add_parser(
        "jobs",
        help="list the job journal, or forget one record",
        description=(
            "The job journal ($PREFECT_VENICE_HOME/jobs or ~/.prefect-venice/jobs) records each "
            "paid job under its job key before the queue request is sent. `list` prints state, "
            "key, model, queue id, time and saved path; `forget KEY` deletes a record, e.g. a "
            "'sending' one after checking Venice's usage history that nothing was charged."
        ),
    )
    jobs.add_argument("action", choices=("list", "forget"))
    jobs.add_argument("key", nargs="?", help="the job key, for forget")
    jobs.set_defaults(run=_jobs)


def _request_from(args: argparse.Namespace) -> QueueRequest:
    return build_queue_request(
        model=args.model,
        prompt=args.prompt,
        duration=args.duration,
        resolution=args.resolution,
        aspect_ratio=args.aspect_ratio,
        negative_prompt=args.negative_prompt,
        audio=None if args.audio is None else args.audio == "on",
        image_url=to_data_url(args.image, "image") if args.image else None,
    )


def _sayer(args: argparse.Namespace) -> Say:
    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    return say


def _client_from(args: argparse.Namespace) -> VeniceClient:
    api_key = os.environ.get("VENICE_API_KEY", "")
    if not api_key:
        raise _UsageError("set VENICE_API_KEY to your Venice API key.")
    poll = PollPolicy(min_interval=args.min_poll_interval)
    return VeniceClient(api_key, base_url=args.base_url, poll=poll)


def _base_url(given: str | None, recorded: str | None = None) -> str:
    """Pick the API: --base-url, else $VENICE_BASE_URL, else the journal's, else Venice."""
    return given or os.environ.get("VENICE_BASE_URL") or recorded or DEFAULT_BASE_URL


def _generate(args: argparse.Namespace) -> int:
    args.base_url = _base_url(args.base_url)
    say = _sayer(args)
    # Everything that could fail after paying is checked first.
    request = _request_from(args)
    generation.check_money(args.max_usd, "--max-usd")
    generation.check_wait(args.max_wait, "--max-wait")
    destination = generation.prepare_local_destination(args.output)
    journal = JobJournal()
    key = f"named:{args.job_name}" if args.job_name else f"cli-{uuid.uuid4().hex}"
    with _client_from(args) as client:
        model = client.validate(request)
        quote = client.quote(request, validate=False)
        say(f"{model.id}: quoted {generation.format_usd(quote.usd)}")
        generation.check_budget(quote.usd, args.max_usd, subject=model.id)
        queued = generation.queue_once(client, request, key=key, journal=journal)
        job, entry = queued.job, queued.entry
        if entry.state == "saved":
            return _already_saved(entry)
        say(f"queued {job.queue_id}" + (f" (job name {args.job_name})" if args.job_name else ""))
        try:
            saved = _wait_and_clean_up(client, job, args, say, destination, journal, key)
        except BaseException:
            # Even with --quiet: the job is paid for, and its id is how to find it again.
            print(_paid_job_note(job, args, entry.path), file=sys.stderr)
            raise
    if not args.job_name:
        journal.forget(key)  # nothing can resume a key nobody knows
    print(saved.path)
    return 0


def _already_saved(entry: JournalEntry) -> int:
    where = (entry.saved or {}).get("path", "")
    print(f"job {entry.key!r} was already saved; nothing was queued.", file=sys.stderr)
    print(where)
    return 0


def _paid_job_note(job: QueuedJob, args: argparse.Namespace, recorded: Path) -> str:
    note = f"note: job {job.queue_id} ({job.model}) was queued and paid for; "
    note += f"it is recorded at {recorded}; "
    if job.download_url is None:
        command = resume_command(job.model, job.queue_id, args.output, args.base_url)
    else:
        # The link stays in the user-only journal file; the command needs no secret.
        command = wait_command(["--queue-id", job.queue_id], args.output, args.base_url)
    return note + f"fetch it without paying again with: {command}"


def _wait(args: argparse.Namespace) -> int:
    say = _sayer(args)
    generation.check_wait(args.max_wait, "--max-wait")
    journal = JobJournal()
    try:
        entry = journal.find_queue_id(args.queue_id)
    except JournalError as exc:
        raise _UsageError(str(exc)) from None
    model = args.model or (entry.model if entry is not None else None)
    if model is None:
        raise _UsageError(
            f"--model is required: job {args.queue_id} is not in the job journal "
            f"({journal.directory})."
        )
    destination = generation.prepare_local_destination(args.output)
    # The job goes back to the API that queued it, unless told otherwise.
    args.base_url = _base_url(args.base_url, entry.base_url if entry is not None else None)
    link = os.environ.get(DOWNLOAD_URL_ENV) or None  # the environment wins over the journal
    job = QueuedJob(
        model=model,
        queue_id=args.queue_id,
        download_url=SecretStr(link) if link else (entry.download_url if entry else None),
    )
    key = entry.key if entry is not None else None
    with _client_from(args) as client:
        try:
            saved = _wait_and_clean_up(client, job, args, say, destination, journal, key)
        except BaseException as exc:
            if isinstance(exc, VideoLinkMissingError):
                print(
                    f"note: a private model's job needs its download_url in {DOWNLOAD_URL_ENV}.",
                    file=sys.stderr,
                )
            if entry is not None:
                print(
                    f"note: job {job.queue_id} is still recorded at {entry.path}.", file=sys.stderr
                )
            raise
    print(saved.path)
    return 0


def _wait_and_clean_up(
    client: VeniceClient,
    job: QueuedJob,
    args: argparse.Namespace,
    say: Say,
    destination: LocalDestination,
    journal: JobJournal,
    key: str | None,
) -> VideoSaved:
    def report(progress: Progress) -> None:
        if progress.fraction is not None:
            say(f"  {progress.fraction:4.0%} after {progress.elapsed_seconds:.0f} s")

    staged = destination.staging_dir / f"{job.queue_id}.mp4"
    generation.remove_partial_downloads(destination.staging_dir, job.queue_id)
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        saved = client.wait_for_video(
            job, staged, max_wait_seconds=args.max_wait, on_progress=report
        )
        final = destination.place(saved.path, job.queue_id)
    finally:
        generation.remove_stale_staging(destination.staging_dir)  # no empty folder left
    saved = saved.model_copy(update={"path": final})
    if key is not None:
        journal.saved(
            key, {"path": str(final), "size_bytes": saved.size_bytes, "sha256": saved.sha256}
        )
    say(f"saved {saved.size_bytes} bytes, sha256 {saved.sha256}")
    if not args.keep_on_venice:
        try:
            generation.clean_up(client, job)
        except VeniceError as exc:
            # The video is saved; a failed clean-up is worth a warning, not a failure.
            print(f"warning: clean-up of {job.queue_id} failed: {exc}", file=sys.stderr)
            return saved
        if key is not None:
            journal.cleaned(key)  # the link is revoked: no secret stays at rest
    return saved


def _spend(args: argparse.Namespace) -> int:
    # The Prefect layer is imported here only: the rest of the CLI never loads Prefect.
    from prefect_venice.blocks import VeniceCredentials
    from prefect_venice.tasks.spend import report

    try:
        block = VeniceCredentials.load(args.credentials_block)
    except ValueError as exc:
        raise _UsageError(f"no credentials block {args.credentials_block!r}: {exc}") from None
    if not isinstance(block, VeniceCredentials):
        raise _UsageError(f"block {args.credentials_block!r} is not a VeniceCredentials block.")
    print(report(block, days=max(1, args.days)))
    return 0


def _limits(args: argparse.Namespace) -> int:
    # The Prefect layer is imported here only: the rest of the CLI never loads Prefect.
    from prefect_venice.tasks.pacing import (
        WINDOW_LEASE_SECONDS,
        ensure_rate_limits,
        rate_limit_specs,
    )

    for value, flag in (
        (args.queue_per_minute, "--queue-per-minute"),
        (args.retrieve_per_minute, "--retrieve-per-minute"),
    ):
        if not math.isfinite(value) or value <= 0:
            raise _UsageError(f"{flag} must be a positive number (got {value}).")
    specs = rate_limit_specs(
        args.queue_per_minute,
        args.retrieve_per_minute,
        args.queue_name,
        args.retrieve_name,
        kind=args.kind,
    )
    ensure_rate_limits(specs, reset=args.reset)
    for spec in specs:
        how = (
            f"each call leases one for {WINDOW_LEASE_SECONDS:g} s"
            if spec.kind == "window"
            else f"{spec.decay_per_second}/s come back"
        )
        print(
            f"# {spec.name}: {spec.slots} slots, {how} ({spec.per_minute:g} a minute)",
            file=sys.stderr,
        )
        print(f"export {spec.setting}={spec.name}")
    return 0


def _recovery(args: argparse.Namespace) -> int:
    # The Prefect layer is imported here only: the rest of the CLI never loads Prefect.
    from prefect_venice.tasks.recovery import RecoveryPlan, ensure_recovery_automations

    if not math.isfinite(args.silence) or args.silence < 30:
        raise _UsageError(f"--silence must be at least 30 seconds (got {args.silence}).")
    if args.max_attempts < 2:
        raise _UsageError(f"--max-attempts must be at least 2 (got {args.max_attempts}).")
    plan = RecoveryPlan(
        tag=args.tag,
        silence_seconds=args.silence,
        retry=not args.no_retry,
        max_attempts=args.max_attempts,
    )
    for name in ensure_recovery_automations(plan):
        print(f"automation: {name}")
    print("export PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30  # on every worker")
    return 0


def _default_shape(model: VideoModel) -> QuoteRequest | None:
    """Return the quote of the model's first duration, resolution and aspect ratio.

    None when the model lists no durations (a quote needs one).
    """
    constraints = model.constraints
    if constraints is None or not constraints.durations:
        return None
    return QuoteRequest(
        model=model.id,
        duration=constraints.durations[0],
        resolution=constraints.resolutions[0] if constraints.resolutions else None,
        aspect_ratio=constraints.aspect_ratios[0] if constraints.aspect_ratios else None,
    )


@dataclass(frozen=True)
class _ListedModel:
    """One line of `prefect-venice models`: a model, and the quote of its default shape."""

    model: VideoModel
    quote_usd: float | None
    quote_error: str | None

    def to_json(self) -> dict[str, Any]:
        constraints = self.model.constraints
        shape = _default_shape(self.model)
        return {
            "id": self.model.id,
            "name": self.model.name,
            "model_type": constraints.model_type if constraints else None,
            "privacy": self.model.privacy,
            "durations": constraints.durations if constraints else [],
            "resolutions": constraints.resolutions if constraints else [],
            "aspect_ratios": constraints.aspect_ratios if constraints else [],
            "audio": constraints.audio if constraints else None,
            "audio_configurable": constraints.audio_configurable if constraints else None,
            "prompt_character_limit": constraints.max_prompt_characters if constraints else None,
            "default_shape": None
            if shape is None
            else {
                "duration": shape.duration,
                "resolution": shape.resolution,
                "aspect_ratio": shape.aspect_ratio,
            },
            "quote_usd": self.quote_usd,
            "quote_error": self.quote_error,
        }

    def columns(self) -> tuple[str, ...]:
        constraints = self.model.constraints
        shape = _default_shape(self.model)

        def listed(values: list[str] | None) -> str:
            return ", ".join(values) if values else "-"

        audio = "-"
        if constraints is not None:
            audio = "yes" if constraints.audio else "no"
            audio += " (configurable)" if constraints.audio_configurable else ""
        shape_text = "-"
        if shape is not None:
            parts = (shape.duration, shape.resolution, shape.aspect_ratio)
            shape_text = " ".join(p for p in parts if p)
        return (
            self.model.id,
            constraints.model_type if constraints else "-",
            self.model.privacy or "-",
            listed(constraints.durations if constraints else None),
            listed(constraints.resolutions if constraints else None),
            listed(constraints.aspect_ratios if constraints else None),
            audio,
            shape_text,
            "-" if self.quote_usd is None else generation.format_usd(self.quote_usd),
        )


_MODEL_COLUMNS = (
    "MODEL",
    "TYPE",
    "PRIVACY",
    "DURATIONS",
    "RESOLUTIONS",
    "ASPECT RATIOS",
    "AUDIO",
    "DEFAULT SHAPE",
    "QUOTE",
)


async def _list_models(
    api_key: str, base_url: str, concurrency: int, quotes: bool
) -> list[_ListedModel]:
    """List the video models (sorted by id) and quote each default shape, a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def priced(client: AsyncVeniceClient, model: VideoModel) -> _ListedModel:
        shape = _default_shape(model)
        if not quotes:
            return _ListedModel(model, None, "not quoted (--no-quotes)")
        if shape is None:
            return _ListedModel(model, None, "the model lists no durations")
        async with gate:
            try:
                quote = await client.quote(shape, validate=False)
            except VeniceError as exc:
                if not exc.retryable and exc.status in (401, 402, 403):
                    raise  # the key, not the model: every quote would fail the same way
                return _ListedModel(model, None, str(exc))
        return _ListedModel(model, quote.usd, None)

    # Listing and quoting are free and unpaced: no pacing account is read or written.
    async with AsyncVeniceClient(api_key, base_url=base_url, pacing=False) as client:
        models = sorted(await client.list_video_models(), key=lambda m: m.id)
        # Every quote ends before the client closes, even when one raises.
        answers = await asyncio.gather(*(priced(client, m) for m in models), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return [answer for answer in answers if isinstance(answer, _ListedModel)]


def _models_table(listed: list[_ListedModel]) -> list[str]:
    """Return aligned columns under a header, one model a line."""
    rows = [_MODEL_COLUMNS, *(item.columns() for item in listed)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_MODEL_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _models(args: argparse.Namespace) -> int:
    if not 1 <= args.concurrency <= _MAX_QUOTE_CONCURRENCY:
        raise _UsageError(
            f"--concurrency must be from 1 to {_MAX_QUOTE_CONCURRENCY} (got {args.concurrency})."
        )
    api_key = os.environ.get("VENICE_API_KEY", "")
    if not api_key:
        raise _UsageError("set VENICE_API_KEY to your Venice API key.")
    base_url = _base_url(args.base_url)
    listed = asyncio.run(_list_models(api_key, base_url, args.concurrency, not args.no_quotes))
    if args.json:
        print(json.dumps([item.to_json() for item in listed], indent=2))
        return 0
    for line in _models_table(listed):
        print(line)
    if args.no_quotes:
        print(f"{len(listed)} video models (not quoted).", file=sys.stderr)
        return 0
    print(
        f"{len(listed)} video models. QUOTE is the price of DEFAULT SHAPE (the first duration, "
        "resolution and aspect ratio; audio as the model defaults), from /video/quote (free).",
        file=sys.stderr,
    )
    for item in listed:
        if item.quote_error:
            print(f"note: no quote for {item.model.id}: {item.quote_error}", file=sys.stderr)
    return 0


def _jobs(args: argparse.Namespace) -> int:
    journal = JobJournal()
    if args.action == "forget":
        if not args.key:
            raise _UsageError("jobs forget needs the job key (see `prefect-venice jobs list`).")
        found = journal.forget(args.key)
        print(f"{'forgot' if found else 'no record for'} job key {args.key!r}")
        return 0 if found else 1
    for entry in journal.entries():
        saved = (entry.saved or {}).get("path", "")
        print(
            "\t".join(
                [
                    entry.state,
                    entry.key,
                    entry.model,
                    entry.queue_id or "-",
                    entry.created_at,
                    saved,
                ]
            )
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "emulator":
        from .emulator.cli import main as emulator_main

        return emulator_main(args_list[1:])
    args = _build_parser().parse_args(args_list)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VeniceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (JournalError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid request: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
