"""`prefect-venice emulator`: run the local Venice API from a shell until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .config import DEFAULT_API_KEY, DEFAULT_VIOLATION_WORDS, ENDPOINTS, EmulatorConfig, FaultConfig
from .runner import Emulator

_EPILOG = f"""\
ENDPOINT is one of {", ".join(ENDPOINTS)} or * (all). Rates are between 0 and 1.
Every emulated period (job durations, rate-limit windows, lockout, link lifetime)
is multiplied by --time-scale (the windows and the lockout not with
--real-time-limits); reported times are real. A prompt containing
{", ".join(repr(w) for w in DEFAULT_VIOLATION_WORDS)} is refused with 422 unless
--violation-word is given. An injected 500 on queue creates no job.
"""


def _pairs(values: list[str] | None, option: str) -> dict[str, float]:
    table: dict[str, float] = {}
    for item in values or []:
        name, sep, number = item.partition("=")
        if not sep or (name not in ENDPOINTS and name != "*"):
            raise SystemExit(f"{option} expects ENDPOINT=NUMBER with ENDPOINT in {ENDPOINTS}")
        try:
            table[name] = float(number)
        except ValueError:
            raise SystemExit(f"{option}: {number!r} is not a number") from None
    return table


def _count(text: str) -> int:
    """Parse a whole number of at least 0 (an argparse `type`)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is below 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of `prefect-venice emulator`."""
    parser = argparse.ArgumentParser(
        prog="prefect-venice emulator",
        description="Run a local Venice video API (and its private-link origin) on loopback.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=8765, help="API port, 0 = any free (default: %(default)s)")
    add("--link-port", type=int, default=0, help="private-link port, 0 = any free (default: 0)")
    add("--api-key", default=DEFAULT_API_KEY, help="accepted API key (default: %(default)s)")
    add("--time-scale", type=float, default=1.0, help="emulated-time factor (default: 1.0)")
    add("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    add("--balance", type=float, default=100.0, help="account balance in USD (default: 100)")
    add("--fail-rate-500", action="append", metavar="ENDPOINT=RATE", help="inject 500s")
    add("--fail-rate-503", action="append", metavar="ENDPOINT=RATE", help="inject 503s")
    add("--drop-rate", action="append", metavar="ENDPOINT=RATE", help="cut video bodies mid-way")
    add("--latency", action="append", metavar="ENDPOINT=SECONDS", help="delay answers")
    add(
        "--queue-drop-after-create",
        type=float,
        default=0.0,
        metavar="RATE",
        help="create and charge the job, then drop the connection (outcome unknown)",
    )
    add(
        "--queue-drop-after-create-first",
        type=_count,
        default=0,
        metavar="N",
        help="the same for the first N queue calls that create a job; later ones answer",
    )
    add("--video-bytes", type=int, default=None, help="pad every video to N bytes")
    add("--max-body-bytes", type=int, default=25 * 1024 * 1024, help="413 above this size")
    add("--violation-word", action="append", help="prompt word that triggers 422 (repeatable)")
    add("--link-max-gets", type=int, default=5, help="GETs per private link (default: 5)")
    add("--link-lifetime", type=float, default=86400.0, help="link lifetime, emulated seconds")
    add(
        "--charge-markup",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="charge every job this fraction above its quote, e.g. 0.1 (default: 0)",
    )
    add("--inference-key", default=None, help="also accept this INFERENCE key (no billing)")
    add("--no-rate-limits", action="store_true", help="switch off per-key rate limits")
    add("--no-lockout", action="store_true", help="switch off the failed-request lockout")
    add(
        "--real-time-limits",
        action="store_true",
        help="keep rate-limit windows and the lockout in real seconds under --time-scale",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Turn parsed options into an `EmulatorConfig`."""
    faults = FaultConfig(
        rate_500=_pairs(args.fail_rate_500, "--fail-rate-500"),
        rate_503=_pairs(args.fail_rate_503, "--fail-rate-503"),
        drop_rate=_pairs(args.drop_rate, "--drop-rate"),
        latency=_pairs(args.latency, "--latency"),
        queue_drop_after_create_rate=args.queue_drop_after_create,
        queue_drop_after_create_first=args.queue_drop_after_create_first,
    )
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        link_port=args.link_port,
        api_key=args.api_key,
        time_scale=args.time_scale,
        seed=args.seed,
        balance_usd=args.balance,
        faults=faults,
        max_body_bytes=args.max_body_bytes,
        content_violation_words=tuple(args.violation_word or DEFAULT_VIOLATION_WORDS),
        video_bytes=args.video_bytes,
        rate_limits_enabled=not args.no_rate_limits,
        lockout_enabled=not args.no_lockout,
        real_time_limits=args.real_time_limits,
        link_max_gets=args.link_max_gets,
        link_lifetime_seconds=args.link_lifetime,
        charge_markup=args.charge_markup,
        inference_api_key=args.inference_key,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the process exit code."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with Emulator(config_from_args(args)) as emulator:
            print(f"Venice emulator API:   {emulator.base_url}", flush=True)
            print(f"Private-link origin:   {emulator.link_origin}", flush=True)
            print(f"Ledger:                {emulator.ledger_url}", flush=True)
            print(f"Request log:           {emulator.requests_url}", flush=True)
            print(f"API key:               {emulator.api_key}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    except OSError as exc:
        print(f"cannot start the emulator: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("Venice emulator stopped.", flush=True)
    return 0
