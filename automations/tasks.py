"""Celery tasks: ids in, one service call, explicit retries. The run row is the state; a task only carries its id.

Time limits: the webhook timeout is at most 30 s, so the soft limit leaves room for one slow call and the
database writes around it; the hard limit kills a stuck worker process, and the sweep retries its run later.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from . import services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    # The attempt limit lives in the database (AUTOMATIONS_MAX_ATTEMPTS), which counts attempts across redeliveries
    # and sweeps; Celery's own counter can only be lower, so this bound is never the one that stops a run.
    max_retries=settings.AUTOMATIONS_MAX_ATTEMPTS,
    soft_time_limit=45,
    time_limit=60,
)
def action_run_task(self, run_id: int) -> None:
    outcome = services.action_run_execute(run_id=run_id)
    if outcome is None:
        logger.info("Action run %s no longer exists", run_id)
        return
    if outcome.retry_in is not None:
        # Exponential backoff computed from the attempts recorded on the run (services._retry_delay).
        raise self.retry(countdown=outcome.retry_in)


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=180)
def action_runs_sweep_task() -> None:
    result = services.action_runs_sweep()
    logger.info("Action run sweep: %s", result)


@shared_task(ignore_result=True, soft_time_limit=3600, time_limit=3700)
def retention_run_task() -> None:
    """Periodic (Celery beat): deletes raw rows older than each account's retention period, in small batches."""
    from .retention import retention_run

    retention_run()


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5, soft_time_limit=3600, time_limit=3700)
def background_delete_task(self, job_id: int) -> None:
    """Removes what a deleted custom event, marketing source or account owned, in small batches. Safe to run twice:
    a batch only finds what is left."""
    from .deletes import background_delete_run

    try:
        background_delete_run(job_id=job_id)
    except DatabaseError as exc:
        # Transient (a lost connection, a lock timeout): what is done stays done, the retry carries on.
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(ignore_result=True, soft_time_limit=3600, time_limit=3700)
def background_deletes_resume_task() -> None:
    """Periodic (Celery beat): carries on with deletes whose task was lost (broker outage, worker killed)."""
    from datetime import timedelta

    from .deletes import background_deletes_resume

    resumed = background_deletes_resume(idle_for=timedelta(minutes=15))
    if resumed:
        logger.info("Background deletes resumed: %s", resumed)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5, soft_time_limit=3600, time_limit=3700)
def erasure_texts_purge_task(self, erasure_id: int) -> None:
    """After an erasure: the page texts no row uses any more (automations.privacy.erasure_texts_purge). Retried on a
    database error; retention runs it for an erasure it never finished."""
    from .privacy import erasure_texts_purge

    try:
        erasure_texts_purge(erasure_id=erasure_id)
    except DatabaseError as exc:
        raise self.retry(exc=exc, countdown=60) from exc
