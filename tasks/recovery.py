"""Automations that recover the runs of a worker (or a machine) that died.

A run whose process dies with its machine stays *Running* forever: nothing reports
its end. Prefect's answer is the flow-run heartbeat (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`
on the workers) and an automation that marks a run whose heartbeats stop *Crashed*
(https://docs.prefect.io/v3/advanced/detect-zombie-flows). A second automation
schedules a crashed run again, so any worker picks it up; the run keeps its id, so
its job key is the same and, with a job journal every worker reaches
(`PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR`), the new attempt resumes the job
already paid for instead of paying again.

Both automations match only flow runs tagged `venice` (the package's deployments
carry that tag). `prefect-venice recovery` creates or replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

__all__ = [
    "CRASH_ZOMBIES",
    "RETRY_CRASHED",
    "RecoveryPlan",
    "ensure_recovery_automations",
    "recovery_automations",
]

CRASH_ZOMBIES = "venice: mark runs without heartbeat Crashed"
RETRY_CRASHED = "venice: schedule crashed runs again"
#: How the first automation's Crashed message begins; the second retries only those.
ZOMBIE_MESSAGE_PREFIX = "No heartbeat for"

#: Flow-run events that end a run, or show that it is alive.
_ALIVE_OR_OVER = {
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


@dataclass(frozen=True)
class RecoveryPlan:
    """What `ensure_recovery_automations` creates.

    Args:
        tag: Only flow runs with this tag are watched.
        silence_seconds: A run with no heartbeat for this long is marked Crashed; keep
            it above twice the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY (30 s: 90 s).
        retry: Also schedule crashed runs again.
        max_attempts: A run is scheduled again only while it has run fewer times than
            this, only if it ran at all, and only if the first automation marked it
            (its heartbeats stopped): a run that crashes by itself (a broken command or
            image, a flow that fails to load) would crash again, forever.

    """

    tag: str = "venice"
    silence_seconds: float = 90.0
    retry: bool = True
    max_attempts: int = 3


def _tagged(tag: str) -> ResourceSpecification:
    return ResourceSpecification(
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
    )


def recovery_automations(plan: RecoveryPlan) -> list[AutomationCore]:
    """Return the automations for `plan`, not yet created."""
    zombies = AutomationCore(
        name=CRASH_ZOMBIES,
        description=(
            f"A flow run tagged {plan.tag!r} that sent a heartbeat and then nothing for "
            f"{plan.silence_seconds:g} s lost its process (a worker or machine died): "
            "mark it Crashed."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=set(_ALIVE_OR_OVER),
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=_tagged(plan.tag),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=plan.silence_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=(
                    f"{ZOMBIE_MESSAGE_PREFIX} {plan.silence_seconds:g} s: the run's worker or "
                    "machine stopped. Marked Crashed by prefect-venice recovery."
                ),
            )
        ],
    )
    automations = [zombies]
    if plan.retry:
        automations.append(
            AutomationCore(
                name=RETRY_CRASHED,
                description=(
                    f"A flow run tagged {plan.tag!r} marked Crashed for want of heartbeats, "
                    f"that ran fewer than {plan.max_attempts} times: schedule it again, so a live "
                    "worker runs it. It keeps its id and so its job key: with a shared job "
                    "journal it resumes the job already paid for."
                ),
                trigger=EventTrigger(
                    expect={"prefect.flow-run.Crashed"},
                    # The event's run count: 1 .. max_attempts - 1 (0: it never ran).
                    match=ResourceSpecification(
                        {
                            "prefect.resource.id": ["prefect.flow-run.*"],
                            "prefect.run-count": [
                                str(count) for count in range(1, plan.max_attempts)
                            ],
                            # Only the runs the first automation marked: a run that
                            # crashes on its own (a broken command, a flow that fails to
                            # load) keeps its run count and would be retried forever.
                            "prefect.state-message": [f"{ZOMBIE_MESSAGE_PREFIX}*"],
                        }
                    ),
                    match_related=_tagged(plan.tag),
                    for_each={"prefect.resource.id"},
                    posture=Posture.Reactive,
                    threshold=1,
                    within=timedelta(seconds=0),
                ),
                actions=[
                    ChangeFlowRunState(
                        state=StateType.SCHEDULED,
                        name="AwaitingRetry",
                        message="Crashed: scheduled again by prefect-venice recovery.",
                        force=True,
                    )
                ],
            )
        )
    return automations


def ensure_recovery_automations(plan: RecoveryPlan | None = None) -> list[str]:
    """Create the automations of `plan` on the server PREFECT_API_URL names; return names.

    An automation of the same name is replaced, so running it again applies new
    settings. With `retry=False` an earlier retry automation is removed.
    """
    plan = plan or RecoveryPlan()
    wanted = recovery_automations(plan)
    with get_client(sync_client=True) as client:
        for name in (CRASH_ZOMBIES, RETRY_CRASHED):
            for existing in client.read_automations_by_name(name):
                client.delete_automation(existing.id)
        for automation in wanted:
            client.create_automation(automation)
    return [automation.name for automation in wanted]
