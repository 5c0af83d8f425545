"""The repository's copy of the vendor's OpenAPI spec: the version its README names, unaltered."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
SWAGGER = HERE / "swagger.yaml"
VERSION = "20260821.193530"
SHA256 = "a847f606b5da0efe8f10a8ce4f828a6d3e5af787f4770355c3564e32872874c7"
#: The reference folder the copy came from, beside the repository where it exists.
SHARED = HERE.parents[2] / "shared" / "venice" / "swagger.yaml"


def test_the_copy_is_the_version_its_readme_names() -> None:
    info = yaml.safe_load(SWAGGER.read_text(encoding="utf-8"))["info"]
    assert info["version"] == VERSION
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    assert VERSION in readme
    assert SHA256 in readme


def test_the_copy_is_unaltered() -> None:
    assert hashlib.sha256(SWAGGER.read_bytes()).hexdigest() == SHA256


@pytest.mark.skipif(not SHARED.is_file(), reason=f"no reference folder at {SHARED.parent}")
def test_the_copy_matches_the_reference_folder() -> None:
    assert SHARED.read_bytes() == SWAGGER.read_bytes(), (
        f"{SHARED} changed: copy it to {SWAGGER} and update tests/spec/README.md"
    )
