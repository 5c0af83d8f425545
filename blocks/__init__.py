"""Prefect blocks of prefect-venice: the VeniceCredentials block."""

from prefect_venice.blocks.credentials import VeniceCredentials

__all__ = ["VeniceCredentials"]
