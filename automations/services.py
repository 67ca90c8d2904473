"""Writes for automations: creating action runs for recorded events and running them."""

import logging

from django.db import transaction

from tracking.models import EventRecord

from .models import Action, ActionRun

logger = logging.getLogger(__name__)


def action_runs_create(*, event_record: EventRecord) -> list[ActionRun]:
    """One pending run per enabled action of the event, written in the caller's transaction (so a run exists
    exactly when its event does) and enqueued after commit. Events without actions enqueue nothing."""
    actions = list(Action.objects.filter(custom_event_id=event_record.custom_event_id, enabled=True))
    if not actions:
        return []
    runs = ActionRun.objects.bulk_create(
        [ActionRun(account_id=event_record.account_id, action=a, event_record=event_record) for a in actions]
    )
    run_ids = [run.pk for run in runs]
    transaction.on_commit(lambda: action_runs_enqueue(run_ids=run_ids))
    return runs


def action_runs_resume(*, contact) -> int:
    """Runs that waited for this contact to be identified become pending and are enqueued after commit."""
    run_ids = list(
        ActionRun.objects.filter(event_record__contact=contact, status=ActionRun.Status.WAITING).values_list(
            "pk", flat=True
        )
    )
    if run_ids:
        ActionRun.objects.filter(pk__in=run_ids).update(status=ActionRun.Status.PENDING)
        transaction.on_commit(lambda: action_runs_enqueue(run_ids=run_ids))
    return len(run_ids)


def action_runs_enqueue(*, run_ids: list[int]) -> None:
    from .tasks import action_run_task

    for run_id in run_ids:
        try:
            action_run_task.delay(run_id)
        except Exception:  # noqa: BLE001 - the broker being down must not fail the request
            # The run stays pending in the database; the periodic sweep enqueues it again.
            logger.warning("Could not enqueue action run %s; the sweep will pick it up", run_id, exc_info=True)
