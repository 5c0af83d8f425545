"""Case 4: bad inputs, through the flows and the CLI: each refused, clearly, for free.

Every case must fail with a message that names what is wrong (a fragment per case,
never just an exception's name or a traceback), and the emulator's ledger must show
no /video/queue call at all, so nothing can have been charged. Inputs cover the
destination (folders, file names, storage keys and blocks), money, waits, images,
prompts, models and their options, and names.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.filesystems import LocalFileSystem
from reliability_support import (
    CLI,
    PRIVATE_FIELDS,
    PUBLIC_FIELDS,
    Figures,
    ReliabilitySession,
    cli_env,
    leftovers,
    queue_calls,
    run,
    save_block,
)

from prefect_venice.emulator import Emulator
from prefect_venice.flows import generate_video, generate_videos

SECTION = "case 4: refusals"
LONG_PROMPT = "a gondola " * 2001  # 20,010 characters
OVER_MODEL_LIMIT = "a gondola " * 300  # 3,000 characters: over the model's 2,500
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


@dataclass
class Place:
    """Files and folders the bad inputs point at."""

    root: Path
    output: Path
    a_file: Path
    existing_video: Path
    a_folder: Path
    shell_png: Path
    png: Path
    store_block: str
    store_root: Path
    credentials_block: str


@pytest.fixture
def place(
    reliability: ReliabilitySession, start_emulator: Callable[..., Emulator]
) -> tuple[Place, Emulator]:
    emulator = start_emulator()
    root = reliability.folder("outputs", "refusals")
    root.mkdir()
    output = root / "videos"
    output.mkdir()
    a_file = root / "not-a-folder.txt"
    a_file.write_text("a file\n")
    existing = output / "taken.mp4"
    existing.write_bytes(b"\x00\x00\x00\x18ftypisom")
    folder = output / "a-folder.mp4"
    folder.mkdir()
    shell = root / "script.png"
    shell.write_text("#!/bin/sh\necho not an image\n")
    png = root / "start.png"
    png.write_bytes(PNG)
    store_root = root / "store"
    (store_root / "clips").mkdir(parents=True)
    (store_root / "clips" / "taken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom")
    store = f"rel-store-{uuid.uuid4().hex[:8]}"
    LocalFileSystem(basepath=str(store_root)).save(store)
    return (
        Place(
            root=root,
            output=output,
            a_file=a_file,
            existing_video=existing,
            a_folder=folder,
            shell_png=shell,
            png=png,
            store_block=f"local-file-system/{store}",
            store_root=store_root,
            credentials_block=save_block(emulator),
        ),
        emulator,
    )


Case = tuple[str, Callable[[Place], dict[str, Any]], str]


def _public(**changes: Any) -> Callable[[Place], dict[str, Any]]:
    def build(place: Place) -> dict[str, Any]:
        request: dict[str, Any] = {
            "prompt": "Fog over a harbour",
            "output_dir": str(place.output),
            **PUBLIC_FIELDS,
        }
        for name, value in changes.items():
            request[name] = value(place) if callable(value) else value
        return {name: value for name, value in request.items() if value is not _DROP}

    return build


_DROP = object()
_I2V = "wan-2.5-preview-image-to-video"

#: (case, request builder, regular expression the refusal must contain)
FLOW_CASES: list[Case] = [
    # Where the video would go.
    ("output_dir is a file", _public(output_dir=lambda p: str(p.a_file)), r"not a folder"),
    (
        "output_dir under a file",
        _public(output_dir=lambda p: str(p.a_file / "sub")),
        r"cannot be created",
    ),
    (
        "output_dir uncreatable (/proc)",
        _public(output_dir="/proc/venice-rel"),
        r"cannot be created",
    ),
    ("output_dir empty", _public(output_dir=""), r"output_dir"),
    ("output_dir with NUL", _public(output_dir="videos\x00x"), r"control character|NUL"),
    ("filename with '/'", _public(filename="sub/clip.mp4"), r"path separator"),
    ("filename '..'", _public(filename=".."), r"folder"),
    ("filename '.'", _public(filename="."), r"folder"),
    ("filename with NUL", _public(filename="clip\x00.mp4"), r"control character"),
    ("filename absolute", _public(filename="/tmp/clip.mp4"), r"path separator"),
    ("filename with newline", _public(filename="clip\n.mp4"), r"control character"),
    ("filename with backslash", _public(filename="sub\\clip.mp4"), r"path separator"),
    ("filename over 255 bytes", _public(filename="x" * 300 + ".mp4"), r"255 bytes"),
    ("existing file, no overwrite", _public(filename="taken.mp4"), r"already exists"),
    ("filename names a folder", _public(filename="a-folder.mp4"), r"folder"),
    (
        "storage key outside the base path",
        _public(storage_block=lambda p: p.store_block, filename="../escape.mp4"),
        r"'\.\.'|outside|not allowed",
    ),
    (
        "storage key absolute",
        _public(storage_block=lambda p: p.store_block, filename="/etc/venice.mp4"),
        r"absolute",
    ),
    (
        "storage key with an empty segment",
        _public(storage_block=lambda p: p.store_block, filename="clips//x.mp4"),
        r"empty",
    ),
    (
        "storage key exists, no overwrite",
        _public(storage_block=lambda p: p.store_block, filename="clips/taken.mp4"),
        r"already exists",
    ),
    (
        "storage block missing",
        _public(storage_block="local-file-system/no-such-block-rel"),
        r"no-such-block-rel",
    ),
    ("storage block malformed", _public(storage_block="nope"), r"block-type-slug"),
    (
        "storage block not a file system",
        _public(storage_block=lambda p: f"venice-credentials/{p.credentials_block}"),
        r"not a writable file system",
    ),
    # Money.
    ("max_usd NaN", _public(max_usd=float("nan")), r"max_usd.*finite"),
    ("max_usd inf", _public(max_usd=float("inf")), r"max_usd.*finite"),
    ("max_usd negative", _public(max_usd=-1.0), r"max_usd.*(0|negative)"),
    ("quote above max_usd", _public(max_usd=0.01), r"above the budget"),
    # Waits.
    ("max_wait_seconds 0.5", _public(max_wait_seconds=0.5), r"max_wait_seconds.*1"),
    # 0 means "the worker's setting" since the run form offers it; 0.001 is still refused.
    ("max_wait_seconds 0.001", _public(max_wait_seconds=0.001), r"max_wait_seconds.*1"),
    ("max_wait_seconds negative", _public(max_wait_seconds=-5), r"max_wait_seconds.*1"),
    ("max_wait_seconds NaN", _public(max_wait_seconds=float("nan")), r"max_wait_seconds.*finite"),
    ("max_wait_seconds inf", _public(max_wait_seconds=float("inf")), r"max_wait_seconds.*finite"),
    # Images.
    (
        "image data:text/plain",
        _public(model=_I2V, aspect_ratio=_DROP, image="data:text/plain;base64,aGVsbG8="),
        r"text/plain",
    ),
    (
        "image: a shell script named .png",
        _public(model=_I2V, aspect_ratio=_DROP, image=lambda p: str(p.shell_png)),
        r"script\.png|not an image|PNG|type",
    ),
    (
        "image http:// without host",
        _public(model=_I2V, aspect_ratio=_DROP, image="http://"),
        r"host",
    ),
    (
        "image URL with spaces",
        _public(model=_I2V, aspect_ratio=_DROP, image="http://example.com/a b.png"),
        r"space|URL",
    ),
    (
        "image file missing",
        _public(model=_I2V, aspect_ratio=_DROP, image=lambda p: str(p.root / "missing.png")),
        r"missing\.png",
    ),
    (
        "image empty data: URL",
        _public(model=_I2V, aspect_ratio=_DROP, image="data:image/png;base64,"),
        r"empty|no data|0 (bytes|characters)",
    ),
    (
        "image ftp:// URL",
        _public(model=_I2V, aspect_ratio=_DROP, image="ftp://example.com/a.png"),
        r"ftp|http",
    ),
    (
        "image for a text-to-video model",
        _public(image=lambda p: str(p.png)),
        r"image",
    ),
    ("image-to-video without an image", _public(model=_I2V, aspect_ratio=_DROP), r"image"),
    # Prompts.
    ("prompt blank", _public(prompt="   "), r"blank|empty"),
    ("prompt empty", _public(prompt=""), r"prompt"),
    ("prompt with NUL", _public(prompt="fog\x00harbour"), r"control character|NUL|U\+0000"),
    ("prompt with BEL", _public(prompt="fog\x07harbour"), r"control character|U\+0007"),
    ("prompt over 20,000 characters", _public(prompt=LONG_PROMPT), r"prompt.*(long|characters)"),
    ("prompt over the model's limit", _public(prompt=OVER_MODEL_LIMIT), r"2500|2,500"),
    ("negative_prompt with NUL", _public(negative_prompt="rain\x00"), r"negative_prompt"),
    # Models and their options.
    ("unknown model", _public(model="wan-9-text-to-video"), r"wan-9-text-to-video"),
    ("bad duration", _public(duration="7s"), r"7s"),
    ("duration not a duration", _public(duration="abc"), r"abc"),
    ("bad resolution", _public(resolution="4k"), r"4k"),
    (
        "resolution the model lacks",
        _public(model="kling-2.5-turbo-pro-text-to-video", resolution="720p"),
        r"720p",
    ),
    ("bad aspect ratio", _public(aspect_ratio="4:3"), r"4:3"),
    ("audio off where it is fixed", _public(audio=False, **PRIVATE_FIELDS), r"audio"),
    # Names.
    ("job_name over 200 characters", _public(job_name="j" * 201), r"job_name"),
    ("unknown field", _public(promt="typo"), r"promt"),
]


def _flow_message(state: Any) -> str:
    return state.message or ""


def _clear(message: str, pattern: str) -> list[str]:
    problems = []
    if not re.search(pattern, message, re.IGNORECASE | re.DOTALL):
        problems.append(f"does not match {pattern!r}")
    if "Traceback (most recent call last)" in message:
        problems.append("is a traceback")
    if len(message) < 40:
        problems.append("is too short to say what to do")
    return problems


def test_bad_inputs_to_the_flows_are_refused_clearly_with_no_queue_call(
    place: tuple[Place, Emulator], reliability: ReliabilitySession, figures: Figures
) -> None:
    where, emulator = place
    problems: dict[str, str] = {}
    said: list[str] = []
    refused = 0
    for name, build, pattern in FLOW_CASES:
        state = generate_video(
            request=build(where), credentials_block=where.credentials_block, return_state=True
        )
        message = _flow_message(state)
        said.append(f"{name}\n    {message}")
        calls = queue_calls(emulator.ledger())
        if not state.is_failed():
            problems[name] = f"not refused: {state.type.value}"
        elif found := _clear(message, pattern):
            problems[name] = f"{'; '.join(found)}: {message[:300]}"
        elif calls:
            problems[name] = f"{calls} queue calls"
        else:
            refused += 1
    # Batches: the total budget, and checks across requests.
    batch_cases = _batch_cases(where)
    for name, (requests, max_usd, pattern) in batch_cases.items():
        batch_state = generate_videos(
            requests, max_usd=max_usd, credentials_block=where.credentials_block, return_state=True
        )
        message = _flow_message(batch_state)
        said.append(f"{name}\n    {message}")
        if not batch_state.is_failed():
            problems[name] = f"not refused: {batch_state.type.value}"
        elif found := _clear(message, pattern):
            problems[name] = f"{'; '.join(found)}: {message[:300]}"
        else:
            refused += 1
    for name in ("empty credentials_block", "missing credentials block"):
        block = "" if name.startswith("empty") else "no-such-venice-block-rel"
        request = _public()(where)
        state = generate_video(request=request, credentials_block=block, return_state=True)
        said.append(f"{name}\n    {_flow_message(state)}")
        if not state.is_failed():
            problems[name] = "not refused"
        elif found := _clear(_flow_message(state), r"credentials_block|no-such-venice-block-rel"):
            problems[name] = f"{'; '.join(found)}: {_flow_message(state)[:300]}"
        else:
            refused += 1

    reliability.capture("refusals-flow", "\n".join(said))
    ledger = emulator.ledger()
    figures.set(SECTION, "flow inputs refused", refused)
    figures.set(SECTION, "flow inputs", len(FLOW_CASES) + len(batch_cases) + 2)
    figures.set(SECTION, "flow queue calls", queue_calls(ledger))
    figures.set(SECTION, "flow charges_usd", ledger["charged_usd_total"])
    assert problems == {}
    assert queue_calls(ledger) == 0
    assert ledger["charged_usd_total"] == 0
    assert leftovers(where.root) == []
    assert sorted(p for p in where.output.glob("*.mp4") if p.is_file()) == [where.existing_video]


def _batch_cases(where: Place) -> dict[str, tuple[list[dict[str, Any]], float, str]]:
    one = _public()(where)
    named = [_public(job_name="same", prompt=f"take {n}")(where) for n in range(2)]
    bad_second = [one, _public(duration="7s")(where)]
    return {
        "batch max_usd NaN": ([one], float("nan"), r"max_usd.*finite"),
        "batch max_usd negative": ([one], -1.0, r"max_usd"),
        "batch total above max_usd": ([one, one, one], 0.5, r"add up to"),
        "batch with a shared job_name": (named, 5.0, r"job_name"),
        "batch with one bad request": (bad_second, 5.0, r"#2|7s"),
    }


#: (case, arguments after `generate --output DIR`, regular expression the error must contain)
CLI_CASES: list[tuple[str, Callable[[Place], list[str]], str]] = [
    ("--output is a file", lambda p: ["--output", str(p.a_file)], r"not a folder"),
    ("--output under a file", lambda p: ["--output", str(p.a_file / "x")], r"cannot be created"),
    ("--output uncreatable (/proc)", lambda p: ["--output", "/proc/venice-rel"], r"cannot be"),
    ("--max-usd nan", lambda p: ["--max-usd", "nan"], r"max-usd.*finite"),
    ("--max-usd inf", lambda p: ["--max-usd", "inf"], r"max-usd.*finite"),
    ("--max-usd negative", lambda p: ["--max-usd", "-1"], r"max-usd"),
    ("quote above --max-usd", lambda p: ["--max-usd", "0.01"], r"above the budget"),
    ("--max-wait 0.5", lambda p: ["--max-wait", "0.5"], r"max-wait.*1"),
    ("--max-wait nan", lambda p: ["--max-wait", "nan"], r"max-wait.*finite"),
    ("--max-wait 0", lambda p: ["--max-wait", "0"], r"max-wait"),
    (
        "--image data:text/plain",
        lambda p: ["--model", _I2V, "--image", "data:text/plain;base64,aGVsbG8="],
        r"text/plain",
    ),
    (
        "--image a shell script named .png",
        lambda p: ["--model", _I2V, "--image", str(p.shell_png)],
        r"script\.png|not an image|PNG|type",
    ),
    ("--image http:// without host", lambda p: ["--model", _I2V, "--image", "http://"], r"host"),
    (
        "--image URL with spaces",
        lambda p: ["--model", _I2V, "--image", "http://example.com/a b.png"],
        r"space|URL",
    ),
    (
        "--image file missing",
        lambda p: ["--model", _I2V, "--image", str(p.root / "missing.png")],
        r"missing\.png",
    ),
    ("--prompt blank", lambda p: ["--prompt", "   "], r"blank|empty"),
    ("--prompt with BEL", lambda p: ["--prompt", "fog\x07"], r"control character|U\+0007"),
    ("--prompt over 20,000 characters", lambda p: ["--prompt", LONG_PROMPT], r"prompt"),
    ("--prompt over the model's limit", lambda p: ["--prompt", OVER_MODEL_LIMIT], r"2500|2,500"),
    ("--model unknown", lambda p: ["--model", "wan-9-text-to-video"], r"wan-9-text-to-video"),
    ("--duration 7s", lambda p: ["--duration", "7s"], r"7s"),
    ("--resolution 4k", lambda p: ["--resolution", "4k"], r"4k"),
    ("--aspect-ratio 4:3", lambda p: ["--aspect-ratio", "4:3"], r"4:3"),
    (
        "--audio off where it is fixed",
        lambda p: ["--model", PRIVATE_FIELDS["model"], "--duration", "6s", "--audio", "off"],
        r"audio",
    ),
    ("--image for a text-to-video model", lambda p: ["--image", str(p.png)], r"image"),
    ("--base-url not a URL", lambda p: ["--base-url", "not a url"], r"base.?url|absolute"),
]


def test_bad_inputs_to_the_cli_are_refused_clearly_with_no_queue_call(
    place: tuple[Place, Emulator], reliability: ReliabilitySession, figures: Figures
) -> None:
    where, emulator = place
    home = reliability.folder("homes", "refusals-cli")
    env = cli_env(emulator, home)
    base = [CLI, "generate", "--prompt", "Fog over a harbour", "--model", PUBLIC_FIELDS["model"]]
    base += ["--duration", "5s", "--aspect-ratio", "16:9", "--base-url", emulator.base_url]
    base += ["--output", str(where.output), "--min-poll-interval", "0.01"]
    problems: dict[str, str] = {}
    said: list[str] = []
    refused = 0
    cases = [*CLI_CASES, ("no VENICE_API_KEY", lambda p: [], r"VENICE_API_KEY")]
    for name, extra, pattern in cases:
        case_env = dict(env)
        if name == "no VENICE_API_KEY":
            del case_env["VENICE_API_KEY"]
        done = run(base + extra(where), case_env, reliability.root, reliability, f"refuse-{name}")
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        message = " ".join(errors)
        said.append(f"{name}\n    {message}")
        if done.returncode not in (1, 2):
            problems[name] = f"exit status {done.returncode}: {done.stderr[-300:]}"
        elif "Traceback" in done.stderr:
            problems[name] = f"a traceback: {done.stderr[-300:]}"
        elif found := _clear(message, pattern):
            problems[name] = f"{'; '.join(found)}: {done.stderr[-300:]}"
        elif queue_calls(emulator.ledger()):
            problems[name] = "a queue call"
        else:
            refused += 1
    reliability.capture("refusals-cli", "\n".join(said))
    ledger = emulator.ledger()
    figures.set(SECTION, "cli inputs refused", refused)
    figures.set(SECTION, "cli inputs", len(cases))
    figures.set(SECTION, "cli queue calls", queue_calls(ledger))
    assert problems == {}
    assert queue_calls(ledger) == 0
    assert ledger["charged_usd_total"] == 0
    assert leftovers(where.root) == []
