"""The poll schedule's calibration in simulation: the lag met on new jobs of a shape.

No emulator and no clock: completion times are drawn from a known distribution (each
shape uniform over 0.75-1.35x its base time, the emulator's spread), the schedule is
built from a history of `history` earlier jobs of the shape, and judged on `history`
new ones. Polls follow `PollPolicy.planned_delay` (with its jitter), from execution
time 0; a history entry is the job's exact end (`exact`) or the midpoint of the bracket
a cold wait on Venice's estimate saw it in (`midpoint`, as the package records it).

Compared: the calibration on the history itself (`in_sample`, before commit
`f58c8ac`) and on the history blurred for the jobs to come (`blurred`, the package's
now), each at the default lag target and at 2.2 s, and with a 2 s `min_interval`.
The loop's calls are those of a retrieve every 5 s from time 0.

Run: `.venv/bin/python benchmarks/poll_simulation.py [--trials N]` (about 1-2 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics

from prefect_venice.polling import CompletionModel, PollPolicy

BASES = (60.0, 100.0, 150.0, 250.0)
SPREAD = (0.75, 1.35)


def _wait(
    model: CompletionModel, cost: float, policy: PollPolicy, end: float
) -> tuple[float, int, float, float]:
    """Poll one job ending at `end`: (lag, polls, last PROCESSING time, detection time)."""
    t = policy.planned_delay(model, cost, 0.0, 0) if model.cdf(0.0) <= 0 else 0.0
    polls, overdue, last = 0, 0, 0.0
    while True:
        polls += 1
        if t >= end:
            return t - end, polls, last, t
        last = t
        if t >= model.upper:
            overdue += 1
        t += policy.planned_delay(model, cost, t, overdue - 1)


def simulate(
    *, target: float, min_interval: float, blurred: bool, history: str, trials: int, seed: int = 0
) -> dict[str, float]:
    """Median and mean lag and calls against the 5 s loop's, over trials x shapes x jobs."""
    rng = random.Random(seed)
    lags: list[float] = []
    calls = loop_calls = 0
    for trial in range(trials):
        policy = PollPolicy(target_lag=target, min_interval=min_interval, rng=random.Random(trial))
        for base in BASES:
            prior = CompletionModel.from_estimate(1.23 * base)  # Venice's ~80th percentile
            prior_cost = prior.lag_cost(2 * target, min_interval, policy.max_interval)
            recorded = []
            for _ in range(12):
                end = base * rng.uniform(*SPREAD)
                _, _, lower, upper = _wait(prior, prior_cost, policy, end)
                recorded.append(end if history == "exact" else (lower + upper) / 2)
            model = CompletionModel.from_samples(recorded)
            if not blurred:
                model = CompletionModel(list(zip(model.times, model.probs, strict=True)))
            cost = model.lag_cost(target, min_interval, policy.max_interval)
            for _ in range(12):
                end = base * rng.uniform(*SPREAD)
                lag, polls, _, _ = _wait(model, cost, policy, end)
                lags.append(lag)
                calls += polls
                loop_calls += math.floor(end / 5) + 2
    return {
        "median_lag_s": round(statistics.median(lags), 2),
        "mean_lag_s": round(statistics.mean(lags), 2),
        "calls_vs_loop": round(calls / loop_calls, 3),
    }


def main() -> None:
    """Print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    args = parser.parse_args()
    rows = {}
    for history in ("exact", "midpoint"):
        for blurred in (False, True):
            for target in (2.5, 2.2):
                name = f"{history} {'blurred' if blurred else 'in_sample'} target {target}"
                rows[name] = simulate(
                    target=target,
                    min_interval=3.0,
                    blurred=blurred,
                    history=history,
                    trials=args.trials,
                )
    for target in (2.5, 2.3):
        rows[f"midpoint blurred target {target} min_interval 2.0"] = simulate(
            target=target, min_interval=2.0, blurred=True, history="midpoint", trials=args.trials
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
