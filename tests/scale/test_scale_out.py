"""Issue 11: the scale-out recipe, brought up as written, with three workers.

`deployments/scale_out.py up` starts PostgreSQL, a Prefect server on it, the window
limits, the recovery automations, the deployment and three process workers, each
a machine of its own (own Prefect home and pacing state) sharing one folder for the
job journal, results and videos. The Venice emulator keeps its real per-minute
limits (40 queue, 120 retrieve calls per key) while its jobs are sped up.

Asserted: every run completes, exactly one queue call and one charge per run, no
429, at most 40 queue and 120 retrieve calls in any 60 s, runs on every worker, and
a machine that dies mid-run costs no second charge. The wall time against the bound
the limits set is printed and kept in test-output/scale-out/, never asserted.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scale_out import (
    ScaleOutConfig,
    ScaleOutStack,
    create_runs,
    down,
    emulator_report,
    fire,
    kill_machine,
    runs_with_log,
    up,
    wait_for_runs,
)

pytestmark = [pytest.mark.scale_out, pytest.mark.timeout(1200)]

RUNS = 60
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "scale-out"


def _record(name: str, figures: dict[str, Any]) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures, indent=2)}")


@pytest.fixture(scope="module")
def recipe(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ScaleOutConfig, ScaleOutStack]]:
    """The recipe's stack, three workers, the emulator at time scale 0.01 (jobs of 1-2 s)."""
    config = ScaleOutConfig(root=tmp_path_factory.mktemp("scale-out"), emulator=True)
    stack = up(config)
    try:
        yield config, stack
    finally:
        down(config, remove_data=True)


def test_sixty_runs_over_three_workers_pay_once_each_inside_the_limits(
    recipe: tuple[ScaleOutConfig, ScaleOutStack],
) -> None:
    config, stack = recipe

    report = fire(config, stack, RUNS, timeout=900)
    _record("sixty-runs", report)

    assert report["states"] == {"Completed": RUNS}, report["states"]
    venice = report["venice"]
    assert venice["calls"]["queue"] == RUNS
    assert venice["jobs"] == RUNS
    assert venice["queue_calls_per_job"] == [1]
    assert venice["answers_429"] == 0
    # Per-minute peaks as Venice counts them (fixed windows): never above its limits.
    # (The sliding 60 s peak is printed: the slot is taken a moment before Venice
    # counts the call, so on a loaded machine it may read a few above.)
    assert max(venice["queue_per_venice_window"]) <= 40
    assert max(venice["retrieve_per_venice_window"]) <= 120
    # Spread: every worker ran some of the runs.
    assert set(report["workers"]) == {f"worker-{i}" for i in range(1, config.workers + 1)}
    assert len(list(config.videos.glob("*.mp4"))) == RUNS
    # Every run's last line ("saved at") reached the server: one run in 60 now and then
    # lost it while the prestart server closed the run's sockets on its way out. Asked
    # of the server per phrase and run ids, with a short grace for the last log batches
    # in flight (paging through all lines by offset also miscounted while lines arrived).
    ids = set(report["run_ids"])
    deadline = time.monotonic() + 60
    while True:
        with_line = runs_with_log(stack, " saved at ", sorted(ids))
        if with_line == ids or time.monotonic() > deadline:
            break
        time.sleep(2)
    report["runs_with_saved_line"] = len(with_line)
    _record("sixty-runs", report)
    assert with_line == ids, f"no 'saved at' line on the server for {sorted(ids - with_line)}"


@pytest.fixture(scope="module")
def slow_recipe(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ScaleOutConfig, ScaleOutStack]]:
    """The same recipe with jobs of 9-16 s, long enough to kill a machine mid-wait.

    Three runs at most per worker, so that the nine runs spread over the three.
    """
    config = ScaleOutConfig(
        root=tmp_path_factory.mktemp("scale-out-kill"),
        emulator=True,
        time_scale=0.1,
        worker_limit=3,
    )
    stack = up(config)
    try:
        yield config, stack
    finally:
        down(config, remove_data=True)


def _paid(origin: str, runs: int, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        seen = emulator_report(origin)
        if seen["jobs"] >= runs or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_a_machine_that_dies_mid_run_costs_no_second_charge(
    slow_recipe: tuple[ScaleOutConfig, ScaleOutStack],
) -> None:
    config, stack = slow_recipe
    assert stack.emulator_origin is not None
    runs = 9

    ids, started = create_runs(config, stack, runs, prompt="A harbour crane at night")
    assert _paid(stack.emulator_origin, runs)["jobs"] == runs, "not every run was paid"
    killed_at = time.time()
    killed = kill_machine(stack, "worker-1")
    report = wait_for_runs(config, stack, ids, started, timeout=600)
    report["recovered_after_seconds"] = round(time.time() - killed_at, 1)
    report["killed_processes"] = len(killed)
    venice = emulator_report(stack.emulator_origin)
    report["venice"] = venice
    _record("dead-machine", report)

    assert len(killed) > 1, "worker-1 ran no flow-run process when it was killed"
    assert report["states"] == {"Completed": runs}, report["states"]
    # Some runs crashed with the machine and ran again elsewhere...
    assert any(int(count) > 1 for count in report["run_counts"]), report["run_counts"]
    # ...and resumed the job they had paid for: one queue call and one charge each.
    assert venice["calls"]["queue"] == runs
    assert venice["queue_calls_per_job"] == [1]
    assert venice["answers_429"] == 0
    assert len(list(config.videos.glob("*.mp4"))) == runs
    # The shared journal is the workers' own: records (and any link in them) 0600 in 0700.
    journal = config.journal_dir
    assert stat.S_IMODE(journal.stat().st_mode) == 0o700
    records = [path for path in journal.rglob("*") if path.is_file()]
    assert records
    assert {stat.S_IMODE(path.stat().st_mode) for path in records} == {0o600}
    assert all(path.stat().st_uid == os.geteuid() for path in records)
