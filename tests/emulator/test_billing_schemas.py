"""The emulator's billing answers match swagger's response schemas (and a wrong shape does not)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from emulator_support import EmulatorFactory, api, queue, queue_body

from prefect_venice.emulator import Emulator, FaultConfig

# The repository's copy of the vendor's spec (source and date: tests/spec/README.md).
SWAGGER = Path(__file__).resolve().parents[1] / "spec" / "swagger.yaml"
HISTORY = "/billing/usage-history"
BALANCE = "/billing/balance"
# swagger's `format: date-time` is not checked by jsonschema without extra packages; the
# spec's own example has this shape (ISO 8601, milliseconds, Z).
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that leaves timestamps and colon numbers (16:9) as strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith(("int", "float", "timestamp"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes a "null" type (and enum)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    with SWAGGER.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_Loader)
    return document


def response_spec(swagger: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    spec: dict[str, Any] = swagger["paths"][path]["get"]["responses"][str(status)]
    return spec


def validator(swagger: dict[str, Any], path: str, status: int) -> jsonschema.Draft4Validator:
    schema = dict(response_spec(swagger, path, status)["content"]["application/json"]["schema"])
    # Local "#/components/..." references resolve against the schema's root.
    schema["components"] = swagger["components"]
    return jsonschema.Draft4Validator(as_json_schema(schema))


def check(swagger: dict[str, Any], path: str, status: int, response: httpx.Response) -> None:
    """Validate an answer's JSON against the spec's schema for that path and status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    validator(swagger, path, status).validate(response.json())


def with_entries(emulator: Emulator, count: int) -> None:
    with api(emulator) as client:
        for _ in range(count):
            queue(client)


def test_the_spec_has_the_billing_operations(swagger: dict[str, Any]) -> None:
    operation = swagger["paths"][HISTORY]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "currency",
        "cursor",
        "endTimestamp",
        "pageSize",
        "startTimestamp",
    }
    assert set(operation["responses"]) == {"200", "400", "401", "500"}
    assert set(swagger["paths"][BALANCE]["get"]["responses"]) == {"200", "401", "500"}


def test_balance(swagger: dict[str, Any], emulator: Emulator) -> None:
    with_entries(emulator, 1)
    with api(emulator) as client:
        check(swagger, BALANCE, 200, client.get(BALANCE))
        emulator.set_balance(0)
        check(swagger, BALANCE, 200, client.get(BALANCE))
    with api(emulator, key="wrong") as client:
        check(swagger, BALANCE, 401, client.get(BALANCE))


def test_usage_history_pages(swagger: dict[str, Any], emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(rate_limits_enabled=False)
    with api(emulator) as client:
        check(swagger, HISTORY, 200, client.get(HISTORY))  # empty
        with_entries(emulator, 12)
        first = client.get(HISTORY, params={"pageSize": "10"})
        check(swagger, HISTORY, 200, first)  # with a cursor
        last = client.get(HISTORY, params={"cursor": first.json()["nextCursor"]})
        check(swagger, HISTORY, 200, last)  # the last page: null cursor
    assert last.json()["nextCursor"] is None
    for entry in first.json()["data"] + last.json()["data"]:
        assert DATE_TIME.fullmatch(entry["timestamp"])


def test_usage_history_errors(swagger: dict[str, Any], emulator: Emulator) -> None:
    with api(emulator) as client:
        for params in (
            {"pageSize": "5"},
            {"cursor": "bad"},
            {"cursor": "abc", "pageSize": "10"},
            {"startTimestamp": "yesterday"},
        ):
            check(swagger, HISTORY, 400, client.get(HISTORY, params=params))
    with api(emulator, key="wrong") as client:
        check(swagger, HISTORY, 401, client.get(HISTORY))


def test_usage_history_injected_500(
    swagger: dict[str, Any], emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"usage_history": 1.0}))
    with api(emulator) as client:
        check(swagger, HISTORY, 500, client.get(HISTORY))


def test_csv_headers_match_the_spec(
    swagger: dict[str, Any], emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(rate_limits_enabled=False)
    with_entries(emulator, 11)
    headers = response_spec(swagger, HISTORY, 200)["headers"]
    with api(emulator) as client:
        answer = client.get(HISTORY, params={"pageSize": "10"}, headers={"Accept": "text/csv"})
    assert answer.status_code == 200
    for name in ("Content-Disposition", "x-next-cursor"):
        schema = as_json_schema(headers[name]["schema"])
        jsonschema.Draft4Validator(schema).validate(answer.headers[name])
    assert "text/csv" in response_spec(swagger, HISTORY, 200)["content"]


def test_a_wrong_shape_is_rejected(swagger: dict[str, Any], emulator: Emulator) -> None:
    with_entries(emulator, 1)
    with api(emulator) as client:
        good: dict[str, Any] = client.get(HISTORY).json()
        balance: dict[str, Any] = client.get(BALANCE).json()
    history_schema = validator(swagger, HISTORY, 200)
    history_schema.validate(good)

    def broken(change: Any) -> dict[str, Any]:
        body: dict[str, Any] = copy.deepcopy(good)
        change(body)
        return body

    wrong = {
        "an extra field (the spec has no queue_id)": broken(
            lambda b: b["data"][0].update(queue_id="q")
        ),
        "inferenceDetails missing": broken(lambda b: b["data"][0].pop("inferenceDetails")),
        "amount as text": broken(lambda b: b["data"][0].update(amount="-0.1")),
        "a currency outside the enum": broken(lambda b: b["data"][0].update(currency="EUR")),
        "a padded cursor": broken(lambda b: b.update(nextCursor="abc==")),
        "nextCursor missing": broken(lambda b: b.pop("nextCursor")),
    }
    for what, body in wrong.items():
        assert list(history_schema.iter_errors(body)), f"accepted {what}"
    balance_schema = validator(swagger, BALANCE, 200)
    balance_schema.validate(balance)
    with pytest.raises(jsonschema.ValidationError, match="diemEpochAllocation"):
        balance_schema.validate({k: v for k, v in balance.items() if k != "diemEpochAllocation"})


def test_quote_body_is_still_the_documented_one(
    swagger: dict[str, Any], emulator: Emulator
) -> None:
    # The charge markup changes what a job costs, never what a quote looks like.
    with api(emulator) as client:
        emulator.set_charge_markup(0.3)
        answer = client.post("/video/quote", json=queue_body())
    spec = swagger["paths"]["/video/quote"]["post"]["responses"]["200"]
    schema = as_json_schema(spec["content"]["application/json"]["schema"])
    jsonschema.Draft4Validator(schema).validate(answer.json())
