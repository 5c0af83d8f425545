"""A local Venice video API for tests, demos and benchmarks (standard library only)."""

from .config import DEFAULT_API_KEY, EmulatorConfig, FaultConfig
from .runner import Emulator

__all__ = ["DEFAULT_API_KEY", "Emulator", "EmulatorConfig", "FaultConfig"]
