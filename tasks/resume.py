"""Job keys and the job journal, as the Prefect tasks and flows use them to never pay twice.

Every paid job is recorded under a job key before its queue request is sent (see
prefect_venice.journal). By default the key is the flow run (or, for a subflow, the
parent's task run that a retried parent finds again), the request's slot in the run
and a hash of the request, so a retry of the run, a UI Retry or a retried parent
resumes the same job. A caller may name the job instead (`VideoRequest.job_key`), so
that a plain-script rerun or a second trigger of the same scheduled slot resumes it.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from prefect.context import FlowRunContext, TaskRunContext

from prefect_venice.generation import request_fingerprint
from prefect_venice.journal import JobJournal, JournalEntry
from prefect_venice.models import QueueRequest
from prefect_venice.tasks.records import VideoResult
from prefect_venice.tasks.settings import VeniceSettings

__all__ = ["job_journal", "job_key_for", "recorded_result", "resume_anchor", "saved_result"]


def job_journal(settings: VeniceSettings | None = None) -> JobJournal:
    """Return the journal the settings name (PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR).

    Default: `$PREFECT_VENICE_HOME/jobs` or `~/.prefect-venice/jobs` on the machine that
    runs the flow. Workers that retry each other's runs need one folder they all share.
    `settings` already read by the caller are used as they are (read now otherwise).
    """
    return JobJournal((settings if settings is not None else VeniceSettings()).journal_dir)


def job_key_for(request: QueueRequest, slot: int = 0, given: str | None = None) -> str:
    """Return the job key of `request`: the caller's name for it, or one tied to this run."""
    if given:
        return f"named:{given}"
    return f"prefect:{resume_anchor()}:{slot}:{request_fingerprint(request)}"


def resume_anchor() -> UUID:
    """Return the id that stays the same when this flow run is run again.

    A subflow that failed gets a NEW flow run when its parent is retried, but it
    hangs off the same parent task run (Prefect finds that task run by its key),
    so a subflow is anchored to its parent task run and a top-level run to itself.
    Outside any flow run there is nothing to resume: a fresh id is returned.
    """
    flow_run_context = FlowRunContext.get()
    flow_run = flow_run_context.flow_run if flow_run_context is not None else None
    if flow_run is None:
        task_context = TaskRunContext.get()
        if task_context is not None:
            return task_context.task_run.flow_run_id or task_context.task_run.id
        return uuid4()
    if flow_run.parent_task_run_id:
        return flow_run.parent_task_run_id
    return flow_run.id


def recorded_result(key: str, journal: JobJournal | None = None) -> VideoResult | None:
    """Return the saved video recorded under `key` (a resumed run skips it), or None.

    `journal`: the job journal to look in (default: the one the settings name).
    """
    entry = (journal if journal is not None else job_journal()).get(key)
    return saved_result(entry)


def saved_result(entry: JournalEntry | None) -> VideoResult | None:
    """Return the saved video a journal record holds, or None (not saved, or unreadable)."""
    if entry is None or entry.state != "saved" or not entry.saved:
        return None
    try:
        return VideoResult.model_validate(entry.saved)
    except ValueError:
        return None
