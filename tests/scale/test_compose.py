"""deployments/compose.yaml says what deployments/scale_out.py does (no Docker needed).

The compose file cannot run here (no Docker daemon on these machines); the local
recipe runs in test_scale_out.py. These tests keep the two from drifting apart: the
same server and worker settings, the same commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from scale_out import (
    POOL,
    ScaleOutConfig,
    server_environment,
    worker_environment,
)

COMPOSE = Path(__file__).resolve().parents[2] / "deployments" / "compose.yaml"
#: Settings the local recipe needs because all its "machines" share one host.
LOCAL_ONLY = {
    "PREFECT_HOME",
    "PREFECT_PROFILES_PATH",
    "PREFECT_VENICE_HOME",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT",
    "PREFECT_VENICE_PRESTART_PYTHON",  # the image's python3 is the one with the package
}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def _prefect_keys(env: dict[str, str]) -> set[str]:
    return {key for key in env if key.startswith("PREFECT_")}


def test_the_workers_get_the_settings_of_the_local_recipe(tmp_path: Path) -> None:
    worker = _compose()["services"]["worker"]
    local = _prefect_keys(worker_environment(ScaleOutConfig(root=tmp_path), "http://x/api", 1))

    assert local - LOCAL_ONLY <= set(worker["environment"])
    assert worker["environment"]["PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR"].startswith("/shared/")
    assert f"prefect worker start --pool {POOL}" in worker["command"][-1]
    assert "python prestart.py serve" in worker["command"][-1]
    assert worker["deploy"]["replicas"] == 3
    assert {"shared:/shared"} <= set(worker["volumes"])


def test_the_server_gets_the_settings_of_the_local_recipe(tmp_path: Path) -> None:
    server = _compose()["services"]["server"]
    local = server_environment(ScaleOutConfig(root=tmp_path), 4200, "postgresql+asyncpg://x")
    wanted = {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW",
        "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
    }

    assert wanted <= _prefect_keys(local)
    for key in wanted - {"PREFECT_SERVER_DATABASE_CONNECTION_URL"}:
        assert server["environment"][key] == local[key], key


def test_setup_runs_the_recipes_own_setup_step() -> None:
    setup = _compose()["services"]["setup"]
    assert setup["command"][:3] == ["python", "scale_out.py", "setup"]
    postgres = _compose()["services"]["postgres"]
    connections = int(postgres["command"][-1].split("=")[1])
    config = ScaleOutConfig(root=Path("/nonexistent"))
    assert connections >= config.db_pool_size + config.db_max_overflow
