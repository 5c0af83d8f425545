"""The emulator's JSON answers match the vendor's OpenAPI schemas in tests/spec/swagger.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from emulator_support import (
    CONSENTS,
    I2V,
    SEEDANCE,
    T2V,
    EmulatorFactory,
    api,
    private_body,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator, FaultConfig

# The repository's copy of the vendor's spec (source and date: tests/spec/README.md).
SWAGGER = Path(__file__).resolve().parents[1] / "spec" / "swagger.yaml"
UNKNOWN_JOB = {"model": T2V, "queue_id": "00000000-0000-4000-8000-000000000000"}


class _Yaml12Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader without YAML 1.1's surprises: 16:9 stays a string, not 969 (base 60)."""


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    with SWAGGER.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_Yaml12Loader)
    return document


def test_yaml_loader_keeps_aspect_ratios_as_strings(swagger: dict[str, Any]) -> None:
    enum = swagger["components"]["schemas"]["QueueVideoRequest"]["properties"]["aspect_ratio"]
    assert "16:9" in enum["enum"]


def check(
    swagger: dict[str, Any], path: str, method: str, status: int, response: httpx.Response
) -> None:
    """Validate an answer's JSON against the spec's schema for that path and status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    spec = swagger["paths"][path][method]["responses"][str(status)]
    schema = dict(spec["content"]["application/json"]["schema"])
    # Local "#/components/..." references resolve against the schema's root.
    schema["components"] = swagger["components"]
    jsonschema.Draft4Validator(schema).validate(response.json())


def video_constraints_schema(swagger: dict[str, Any]) -> dict[str, Any]:
    spec = swagger["components"]["schemas"]["ModelResponse"]["properties"]["model_spec"]
    (variant,) = [
        option
        for option in spec["properties"]["constraints"]["anyOf"]
        if option.get("title") == "Video Model Constraints"
    ]
    return dict(variant)


def test_models(swagger: dict[str, Any], emulator: Emulator) -> None:
    response = httpx.get(f"{emulator.base_url}/models", params={"type": "video"})
    check(swagger, "/models", "get", 200, response)
    constraints = video_constraints_schema(swagger)
    for model in response.json()["data"]:
        jsonschema.Draft4Validator(constraints).validate(model["model_spec"]["constraints"])
        # No field the variant does not know.
        assert set(model["model_spec"]["constraints"]) <= set(constraints["properties"])
        assert set(model["model_spec"]) <= set(
            swagger["components"]["schemas"]["ModelResponse"]["properties"]["model_spec"][
                "properties"
            ]
        )


def test_quote(swagger: dict[str, Any], emulator: Emulator) -> None:
    with api(emulator) as client:
        check(swagger, "/video/quote", "post", 200, client.post("/video/quote", json=queue_body()))
        bad = client.post("/video/quote", json={"model": T2V, "duration": "7s"})
    check(swagger, "/video/quote", "post", 400, bad)


def test_queue_answers(swagger: dict[str, Any], emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(max_body_bytes=4096)
    with api(emulator) as client:

        def answer(status: int, body: dict[str, Any]) -> None:
            check(swagger, "/video/queue", "post", status, client.post("/video/queue", json=body))

        answer(200, queue_body())
        answer(200, private_body())
        answer(200, queue_body(model=SEEDANCE, consents=CONSENTS))
        answer(400, queue_body(prompt=None))
        answer(409, queue_body(model=SEEDANCE))
        answer(413, queue_body(model=I2V, image_url="data:image/png;base64," + "A" * 8192))
        answer(422, queue_body(prompt="forbidden things"))
        emulator.set_balance(0)
        answer(402, queue_body())
    with api(emulator, key="wrong") as client:
        check(swagger, "/video/queue", "post", 401, client.post("/video/queue", json={}))


def test_queue_injected_500(swagger: dict[str, Any], emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"queue": 1.0}))
    with api(emulator) as client:
        check(swagger, "/video/queue", "post", 500, client.post("/video/queue", json=queue_body()))


def test_retrieve_answers(swagger: dict[str, Any], emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        check(
            swagger, "/video/retrieve", "post", 200, client.post("/video/retrieve", json=ref(job))
        )
        check(
            swagger,
            "/video/retrieve",
            "post",
            404,
            client.post("/video/retrieve", json=UNKNOWN_JOB),
        )
        bad = client.post("/video/retrieve", json={**ref(job), "model": I2V})
        check(swagger, "/video/retrieve", "post", 400, bad)
        private = client.post("/video/queue", json=private_body()).json()
        completed = wait_until_done(client, private)
        check(swagger, "/video/retrieve", "post", 200, completed)
        assert completed.json()["status"] == "COMPLETED"


def test_retrieve_injected_faults(
    swagger: dict[str, Any], emulator_factory: EmulatorFactory
) -> None:
    for status, faults in (
        (500, FaultConfig(rate_500={"retrieve": 1.0})),
        (503, FaultConfig(rate_503={"retrieve": 1.0})),
    ):
        emulator = emulator_factory(faults=faults)
        with api(emulator) as client:
            response = client.post("/video/retrieve", json=UNKNOWN_JOB)
        check(swagger, "/video/retrieve", "post", status, response)


def test_complete_answers(swagger: dict[str, Any], emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        check(
            swagger, "/video/complete", "post", 200, client.post("/video/complete", json=ref(job))
        )
        check(
            swagger, "/video/complete", "post", 400, client.post("/video/complete", json=ref(job))
        )


def test_check_rejects_a_wrong_shape(swagger: dict[str, Any], emulator: Emulator) -> None:
    real = httpx.get(f"{emulator.base_url}/models", params={"type": "video"})
    body = real.json()
    del body["data"][0]["owned_by"]
    broken = httpx.Response(200, json=body)
    with pytest.raises(jsonschema.ValidationError, match="owned_by"):
        check(swagger, "/models", "get", 200, broken)
