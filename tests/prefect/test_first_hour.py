"""A Prefect user's first hour: a form that works as submitted, clean refusals, runs told apart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from conftest import PrefectAPI, venice_events
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.context import FlowRunContext

from prefect_venice.emulator import Emulator
from prefect_venice.flows import VideoRequest, generate_video, generate_videos
from prefect_venice.flows.naming import _chosen_by_user, slug


def run_id(state: Any) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert isinstance(flow_run_id, UUID)
    return flow_run_id


def form(flow: Any) -> dict[str, Any]:
    schema: dict[str, Any] = flow.parameters.model_dump()
    return schema


def test_the_form_offers_choices_with_valid_defaults_titles_and_no_null_toggles() -> None:
    fields = form(generate_video)["definitions"]["VideoRequest"]["properties"]

    for name in ("model", "duration", "resolution", "aspect_ratio", "audio"):
        assert fields[name]["enum"], name
        assert fields[name]["default"] in fields[name]["enum"], name
    assert "wan-2.5-preview-text-to-video" in fields["model"]["enum"]
    for name, field in fields.items():
        assert field.get("title") and field.get("description"), name
        assert "anyOf" not in field, f"{name} renders as a type toggle"
        assert "<" not in field["description"], f"{name}'s description loses its <...>"
        assert field["title"] != name.replace("_", " ").title() or " " not in name, name


def test_a_request_built_from_the_forms_defaults_is_the_default_request(output_dir: Path) -> None:
    fields = form(generate_video)["definitions"]["VideoRequest"]["properties"]
    submitted = {name: field["default"] for name, field in fields.items() if "default" in field}
    submitted |= {"prompt": "A lighthouse at dusk", "output_dir": str(output_dir)}

    from_form = VideoRequest.model_validate(json.loads(json.dumps(submitted)))

    assert from_form == VideoRequest(prompt="A lighthouse at dusk", output_dir=str(output_dir))


def test_a_prompt_alone_gives_a_completed_run(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    result = generate_video(
        request=VideoRequest(prompt="A lighthouse at dusk", output_dir=str(output_dir)),
        credentials_block=credentials_block,
    )

    assert Path(result.path).read_bytes()[4:8] == b"ftyp"
    assert emulator.ledger()["calls"]["queue"] == 1


def test_a_budget_refusal_is_a_clean_failed_state_with_the_numbers(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    request = VideoRequest(prompt="A lighthouse", output_dir=str(output_dir), max_usd=0.05)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    message = state.message or ""
    assert "The quote of $0.3125" in message and "budget of $0.05" in message
    assert "nothing was queued or charged" in message
    logs = prefect_api.logs(run_id(state))
    assert logs, "the run logged nothing"
    assert not [log.message for log in logs if "Traceback" in log.message]
    run = f"prefect.flow-run.{run_id(state)}"
    deadline = time.monotonic() + 20
    refused: list[dict[str, Any]] = []
    while not refused and time.monotonic() < deadline:
        events = venice_events(f"venice.model.{request.model}", expected=1, timeout=1)
        refused = [
            e
            for e in events
            if e["event"] == "venice.video.refused"
            and any(r.get("prefect.resource.id") == run for r in e.get("related", []))
        ]
    assert refused, "no venice.video.refused event for this run"
    assert refused[-1]["payload"]["reason"] == "BudgetExceededError"
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_a_validation_refusal_names_the_allowed_values_without_a_traceback(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    request = VideoRequest(prompt="A lighthouse", output_dir=str(output_dir), duration="7s")

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert "'5s'" in (state.message or "") and "'10s'" in (state.message or "")
    logs = prefect_api.logs(run_id(state))
    assert not [log.message for log in logs if "Traceback" in log.message]
    assert emulator.ledger()["calls"].get("quote", 0) == 0


def test_runs_with_different_prompts_get_names_you_can_tell_apart(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    names = []
    for prompt in ("A gondola at sunset", "Fog rolling over a harbour"):
        state = generate_video(
            request=VideoRequest(prompt=prompt, output_dir=str(output_dir)),
            credentials_block=credentials_block,
            return_state=True,
        )
        names.append(prefect_api.flow_run(run_id(state)).name)

    assert names == [
        "wan-2.5-preview-a-gondola-at-sunset",
        "wan-2.5-preview-fog-rolling-over-a-harbour",
    ]


def test_a_batch_is_named_by_its_size_and_first_prompt(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    requests = [VideoRequest(prompt=f"Kites, take {n}", output_dir=str(output_dir)) for n in (1, 2)]

    state = generate_videos(
        requests=requests, credentials_block=credentials_block, return_state=True
    )

    assert prefect_api.flow_run(run_id(state)).name == "batch-2-kites-take-1"


def test_names_a_person_chose_are_kept_and_generated_ones_replaced() -> None:
    assert _chosen_by_user("launch-teaser-v2")
    assert _chosen_by_user("Launch teaser")
    assert not _chosen_by_user("smart-bear")
    assert not _chosen_by_user("astonishing-mastiff")
    assert not _chosen_by_user(None)
    assert FlowRunContext.get() is None  # outside a run nothing is renamed
    assert slug("A Gondola, gliding through VENICE's canals at sunset!", 30) == (
        "a-gondola-gliding-through"
    )


def test_the_artifacts_page_keeps_a_fixed_set_of_keys_across_runs(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    for prompt in ("One", "Two", "Three"):
        generate_video(
            request=VideoRequest(prompt=f"Take {prompt}", output_dir=str(output_dir)),
            credentials_block=credentials_block,
        )
    generate_videos(
        requests=[VideoRequest(prompt="Batch take", output_dir=str(output_dir))],
        credentials_block=credentials_block,
    )

    with get_client(sync_client=True) as client:
        keyed = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(exists_=True)), limit=200
        )
    assert {artifact.key for artifact in keyed} <= {
        "venice-video-summary",
        "venice-batch-summary",
        "venice-batch-progress",
    }
