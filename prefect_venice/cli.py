"""The `prefect-venice` console script: run the emulator, generate one video, or resume one."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import SecretStr, ValidationError

from . import journal
from ._base import DEFAULT_BASE_URL
from .client import VeniceClient
from .errors import BudgetExceededError, VeniceError, VideoLinkMissingError
from .media import to_data_url
from .models import Progress, QueuedJob, QueueRequest, VideoSaved
from .polling import PollPolicy

__all__ = ["DOWNLOAD_URL_ENV", "main", "resume_command"]

#: Where `prefect-venice wait` reads a private model's download_url: a bearer secret
#: that must not sit in a command line (shell history, `ps`).
DOWNLOAD_URL_ENV = "VENICE_DOWNLOAD_URL"

Say = Callable[[str], None]


class _UsageError(Exception):
    """The command line or environment is incomplete; nothing was sent."""


def resume_command(
    model: str, queue_id: str, output: str = "DIR", base_url: str | None = None
) -> str:
    """Return the shell command that fetches a queued public job without paying again.

    `output` is quoted for the shell unless it is the placeholder "DIR"; base_url is
    named only when it differs from the real API.
    """
    return _wait_command(["--model", model, "--queue-id", queue_id], output, base_url)


def _wait_command(selector: list[str], output: str, base_url: str | None) -> str:
    parts = ["prefect-venice", "wait", *selector, "--output"]
    command = shlex.join(parts) + " " + (output if output == "DIR" else shlex.quote(output))
    if base_url is not None and base_url != DEFAULT_BASE_URL:
        command += f" --base-url {shlex.quote(base_url)}"
    return command


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
    return parser


def _request_from(args: argparse.Namespace) -> QueueRequest:
    return QueueRequest(
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
    with _client_from(args) as client:
        request = _request_from(args)
        model = client.validate(request)
        quote = client.quote(request, validate=False)
        say(f"{model.id}: quoted ${quote.usd:.4f}")
        if args.max_usd is not None and quote.usd > args.max_usd:
            raise BudgetExceededError(
                f"The quote ${quote.usd:.4f} is above --max-usd ${args.max_usd:.4f}; "
                "nothing was queued."
            )
        job = client.queue(request, validate=False)
        recorded = _record(job, args)
        say(f"queued {job.queue_id}")
        try:
            saved = _wait_and_clean_up(client, job, args, say)
        except BaseException:
            # Even with --quiet: the job is paid for, and its id is how to find it again.
            print(_paid_job_note(job, args, recorded), file=sys.stderr)
            raise
    journal.forget(job.queue_id)
    print(saved.path)
    return 0


def _record(job: QueuedJob, args: argparse.Namespace) -> Path | None:
    """Journal the queue answer at once: a private link is sent only this one time."""
    try:
        return journal.record(job, args.base_url)
    except (OSError, journal.JournalError) as exc:
        # Not fatal: the job is paid for and still in hand, so wait for it anyway.
        print(
            f"warning: could not record job {job.queue_id} in the journal: {exc}", file=sys.stderr
        )
        return None


def _paid_job_note(job: QueuedJob, args: argparse.Namespace, recorded: Path | None) -> str:
    note = f"note: job {job.queue_id} ({job.model}) was queued and paid for; "
    if recorded is not None:
        note += f"it is recorded at {recorded}; "
    if job.download_url is None:
        command = resume_command(job.model, job.queue_id, args.output, args.base_url)
        return note + f"fetch it without paying again with: {command}"
    if recorded is not None:
        # The link stays in the user-only journal file; the command needs no secret.
        command = _wait_command(["--queue-id", job.queue_id], args.output, args.base_url)
        return note + f"fetch it without paying again with: {command}"
    # The link is never printed, so nothing outside this process can fetch the video.
    return note + (
        "its private download link was sent only once and is not shown, so this video "
        "cannot be fetched again."
    )


def _wait(args: argparse.Namespace) -> int:
    say = _sayer(args)
    try:
        entry = journal.load(args.queue_id)
    except journal.JournalError as exc:
        raise _UsageError(str(exc)) from None
    model = args.model or (entry.model if entry is not None else None)
    if model is None:
        raise _UsageError(
            f"--model is required: job {args.queue_id} is not in the job journal "
            f"({journal.jobs_dir()})."
        )
    # The job goes back to the API that queued it, unless told otherwise.
    args.base_url = _base_url(args.base_url, entry.base_url if entry is not None else None)
    link = os.environ.get(DOWNLOAD_URL_ENV) or None  # the environment wins over the journal
    job = QueuedJob(
        model=model,
        queue_id=args.queue_id,
        download_url=SecretStr(link) if link else (entry.download_url if entry else None),
    )
    with _client_from(args) as client:
        try:
            saved = _wait_and_clean_up(client, job, args, say)
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
    if entry is not None and not args.keep_on_venice:
        journal.forget(job.queue_id)  # saved and cleaned up: nothing left to fetch
    print(saved.path)
    return 0


def _wait_and_clean_up(
    client: VeniceClient, job: QueuedJob, args: argparse.Namespace, say: Say
) -> VideoSaved:
    def report(progress: Progress) -> None:
        if progress.fraction is not None:
            say(f"  {progress.fraction:4.0%} after {progress.elapsed_seconds:.0f} s")

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    saved = client.wait_for_video(
        job, output / f"{job.queue_id}.mp4", max_wait_seconds=args.max_wait, on_progress=report
    )
    if not args.keep_on_venice:
        if job.download_url is not None:
            client.revoke(job.download_url)
        client.complete(job)
    say(f"saved {saved.size_bytes} bytes, sha256 {saved.sha256}")
    return saved


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
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid request: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
