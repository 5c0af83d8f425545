"""Prefect's own standards for blocks, run over every block of prefect_venice."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites.blocks import BlockStandardTestSuite
from prefect.utilities.dispatch import get_registry_for_type
from prefect.utilities.importtools import to_qualified_name

import prefect_venice.blocks


def find_module_blocks() -> list[type[Block]]:
    blocks = get_registry_for_type(Block) or {}
    return [
        block
        for block in blocks.values()
        if to_qualified_name(block).startswith(prefect_venice.blocks.__name__)
    ]


def test_every_exported_block_is_found() -> None:
    assert {b.__name__ for b in find_module_blocks()} >= {"VeniceCredentials"}


@pytest.mark.parametrize("block", find_module_blocks())
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block: type[Block]) -> type[Block]:
        return block
