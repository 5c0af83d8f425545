"""Python started in the checkout's root imports the whole package (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_block_imports_from_the_checkout_root() -> None:
    # `python -c` puts the working directory first on the path, so the checkout's bare
    # prefect_venice/ folder shadows the installed package: the docs' block snippet run
    # there failed with "No module named 'prefect_venice.blocks'".
    code = (
        "import prefect_venice, prefect_venice.blocks as b, prefect_venice.flows as f;"
        "print(prefect_venice.__file__); print(b.VeniceCredentials.__name__, f.generate_video.name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = done.stdout.splitlines()
    assert Path(first).parent == REPO_ROOT / "prefect_venice"  # the checkout's copy was used
    assert second == "VeniceCredentials generate-video"


def test_elsewhere_the_installed_package_keeps_its_own_path(tmp_path: Path) -> None:
    code = "import prefect_venice; print(len(prefect_venice.__path__))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"
