"""The flows' parameter schemas: what the Prefect UI turns into a run form."""

from __future__ import annotations

from prefect_venice.flows import generate_video, generate_videos


def test_generate_video_form_takes_a_request_and_a_block_name_only() -> None:
    schema = generate_video.parameters.model_dump()

    assert set(schema["properties"]) == {"request", "credentials_block"}
    assert schema["properties"]["credentials_block"]["default"] == "venice"
    fields = schema["definitions"]["VideoRequest"]["properties"]
    assert {"prompt", "model", "duration", "image", "max_usd", "output_dir"} <= set(fields)
    assert not {name for name in fields if "key" in name or "secret" in name}
    assert all(field.get("description") for field in fields.values())


def test_generate_videos_form_takes_requests_a_budget_a_block_name_and_a_window() -> None:
    schema = generate_videos.parameters.model_dump()

    assert set(schema["properties"]) == {
        "requests",
        "max_usd",
        "credentials_block",
        "max_in_flight",
    }
    window = schema["properties"]["max_in_flight"]
    assert window["default"] == 100  # 40 queue calls a minute x jobs of 2-3 minutes
    assert window["minimum"] == 1
    assert window.get("description")
