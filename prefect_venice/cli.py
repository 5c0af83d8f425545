"""The `prefect-venice` console script: run the emulator, or generate one video end to end."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from ._base import DEFAULT_BASE_URL
from .client import VeniceClient
from .errors import BudgetExceededError, VeniceError
from .media import to_data_url
from .models import Progress, QueuedJob, QueueRequest, VideoSaved
from .polling import PollPolicy

__all__ = ["main"]


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
    gen.add_argument("--output", default=".", help="directory for the MP4 (default: .)")
    gen.add_argument(
        "--base-url",
        default=os.environ.get("VENICE_BASE_URL", DEFAULT_BASE_URL),
        help="API base URL (default: $VENICE_BASE_URL or the real API)",
    )
    gen.add_argument("--max-usd", type=float, help="refuse to queue if the quote is higher")
    gen.add_argument(
        "--max-wait", type=float, default=1800.0, help="seconds to wait (default 1800)"
    )
    gen.add_argument(
        "--min-poll-interval", type=float, default=3.0, help="shortest pause between polls, s"
    )
    gen.add_argument("--quiet", action="store_true", help="print only the MP4 path")


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


def _generate(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    api_key = os.environ.get("VENICE_API_KEY", "")
    if not api_key:
        print("error: set VENICE_API_KEY to your Venice API key.", file=sys.stderr)
        return 2
    poll = PollPolicy(min_interval=args.min_poll_interval)
    with VeniceClient(api_key, base_url=args.base_url, poll=poll) as client:
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
        say(f"queued {job.queue_id}")
        try:
            saved = _wait_and_clean_up(client, job, args, say)
        except BaseException:
            # Even with --quiet: the job is paid for, and its id is how to find it again.
            print(
                f"note: job {job.queue_id} ({job.model}) was queued and paid for; "
                "keep its queue_id to fetch the video without paying again.",
                file=sys.stderr,
            )
            raise
    print(saved.path)
    return 0


def _wait_and_clean_up(
    client: VeniceClient, job: QueuedJob, args: argparse.Namespace, say: Callable[[str], None]
) -> VideoSaved:
    def report(progress: Progress) -> None:
        if progress.fraction is not None:
            say(f"  {progress.fraction:4.0%} after {progress.elapsed_seconds:.0f} s")

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    saved = client.wait_for_video(
        job, output / f"{job.queue_id}.mp4", max_wait_seconds=args.max_wait, on_progress=report
    )
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
    try:
        return _generate(args)
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
