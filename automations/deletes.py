"""Deletes in the background: a custom event, a marketing source or an account, whatever it owns.

Django's cascade loads every related row into memory and deletes them in one transaction: a custom event that
owned 3.8 million records took 298 s and 3.4 GB inside one web request, holding locks that capture then waited on.
Instead the service hides the thing at once (`deleted_at`: every selector, the tracking caches and so capture
treat it as unknown) and schedules a BackgroundDelete; the task then removes the rows in bounded, set-based
batches, each its own short transaction:

    DELETE FROM t WHERE id IN (SELECT id FROM t WHERE <owned by the thing> LIMIT n)

found through an index that leads with what owns the rows, so a batch locks n rows for milliseconds and capture,
reports and the API keep their latency. After each batch the task rests in proportion to the batch's time
(BACKGROUND_DELETE_REST_RATIO), so that it never takes more than its share of the machine's cores and disk.
Dependent rows go first (action runs, then event records, then the rest), and the thing's own row last, when only
the few rows written meanwhile are left for Django's cascade.

A task that dies (a deploy, a time limit) is harmless: what is gone is not looked for again, and the next attempt
(Celery's retry, or `manage.py background_deletes_run`) carries on.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from automations.models import (
    Action,
    ActionRun,
    BackgroundDelete,
    EventDailyBreakdown,
    EventDailyRollup,
    ReportDirtyDay,
    TrafficDailyRollup,
)
from custom_events.models import CustomEvent, MarketingSource
from paminga.models import Account
from tracking.models import (
    Contact,
    ContactListMembership,
    ContactTag,
    EventRecord,
    Impression,
    PageText,
    RejectedHit,
    Session,
    Visitor,
)
from tracking.partitions import batches_by_time

from .privacy import rows_delete

logger = logging.getLogger(__name__)


def background_delete_schedule(*, kind: str, account: Account, target_id: int, label: str) -> BackgroundDelete:
    """Records the delete and enqueues its task once the caller's transaction (which hid the thing) commits."""
    from .tasks import background_delete_task

    job, _created = BackgroundDelete.objects.get_or_create(
        kind=kind, target_id=target_id, defaults={"account_pk": account.pk, "label": label[:300]}
    )
    transaction.on_commit(lambda: background_delete_task.delay(job.pk))
    return job


def background_delete_list(*, account: Account) -> list[BackgroundDelete]:
    """The account's deletes still in progress, oldest first (for its settings pages)."""
    return list(
        BackgroundDelete.objects.filter(account_pk=account.pk)
        .exclude(status=BackgroundDelete.Status.DONE)
        .order_by("created_at", "id")
    )


# --- Batches -------------------------------------------------------------------------------------------------


def _ids_sql(queryset: QuerySet, size: int) -> tuple[str, tuple]:
    return queryset.order_by().values("pk")[:size].query.sql_with_params()


def rows_delete_batch(queryset: QuerySet, size: int) -> int:
    """Deletes at most `size` rows of the queryset in one statement, without loading them (no cascade: the
    callers delete dependent rows first)."""
    sql, params = _ids_sql(queryset, size)
    model = queryset.model
    table, pk = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {pk} IN ({sql})", params)
        return max(cursor.rowcount, 0)


def rows_unlink_batch(queryset: QuerySet, field: str, size: int) -> int:
    """Sets the nullable foreign key `field` to NULL on at most `size` rows of the queryset, in one statement."""
    sql, params = _ids_sql(queryset, size)
    model = queryset.model
    table, pk = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(model._meta.pk.column)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = NULL WHERE {pk} IN ({sql})", params)
        return max(cursor.rowcount, 0)


@dataclass
class Step:
    """One kind of row to remove: `run(size)` removes a batch and says how many went (0: none left)."""

    name: str
    rows: QuerySet
    run: Callable[[int], int]


def _delete(name: str, rows: QuerySet) -> Step:
    return Step(name, rows, lambda size: rows_delete_batch(rows, size))


def _by_time(name: str, rows: QuerySet, before=None) -> Step:
    """Rows of a partitioned table (tracking.partitions), in time order; `before(ids)` runs ahead of each batch's
    delete and returns how many rows it removed."""
    batches = None

    def run(size: int) -> int:
        nonlocal batches
        batches = batches or batches_by_time(rows, size)
        ids, batch = next(batches, (None, None))
        if ids is None:
            return 0
        done = before(ids) if before else 0
        return done + rows_delete(batch)

    return Step(name, rows, run)


def _records_delete(records: QuerySet) -> Step:
    # A record written meanwhile may already have action runs: they go with it.
    return _by_time(
        "event records",
        records,
        lambda ids: rows_delete_batch(ActionRun.objects.filter(event_record_id__in=ids), len(ids) * 100),
    )


def _sessions_delete(sessions: QuerySet) -> Step:
    def unlink(ids: list[int]) -> int:
        Visitor.objects.filter(current_session_id__in=ids).update(current_session=None)
        return 0  # visitors stay: only the visits are counted

    return _by_time("visits", sessions, unlink)


def _contacts_delete(contacts: QuerySet) -> Step:
    def run(size: int) -> int:
        ids = list(contacts.order_by().values_list("pk", flat=True)[:size])
        if not ids:
            return 0
        ContactTag.objects.filter(contact_id__in=ids).delete()
        ContactListMembership.objects.filter(contact_id__in=ids).delete()
        return rows_delete_batch(Contact.objects.filter(pk__in=ids), len(ids))

    return Step("contacts", contacts, run)


def _steps(job: BackgroundDelete) -> Iterator[Step]:
    """What to remove for the job, in order: rows first that others point at."""
    account_pk = job.account_pk
    if job.kind == BackgroundDelete.Kind.CUSTOM_EVENT:
        event = job.target_id
        yield _delete("action runs", ActionRun.objects.filter(custom_event_id=event))
        yield _records_delete(EventRecord.objects.filter(account_id=account_pk, custom_event_id=event))
        yield _delete("report rollups", EventDailyBreakdown.objects.filter(custom_event_id=event))
        yield _delete("report rollups", EventDailyRollup.objects.filter(custom_event_id=event))
        yield _delete("actions", Action.objects.filter(custom_event_id=event))
    elif job.kind == BackgroundDelete.Kind.MARKETING_SOURCE:
        records = EventRecord.objects.filter(account_id=account_pk, marketing_source_id=job.target_id)
        # Events keep the source's name as sent (marketing_source_name) and their channel: only the link goes.
        yield Step("event records", records, lambda size: rows_unlink_batch(records, "marketing_source", size))
    elif job.kind == BackgroundDelete.Kind.ACCOUNT:
        yield _delete("action runs", ActionRun.objects.filter(account_id=account_pk))
        yield _records_delete(EventRecord.objects.filter(account_id=account_pk))
        yield _by_time("page views", Impression.objects.filter(account_id=account_pk))
        yield _sessions_delete(Session.objects.filter(account_id=account_pk))
        yield _delete("page texts", PageText.objects.filter(account_id=account_pk))
        yield _delete("visitors", Visitor.objects.filter(account_id=account_pk))
        yield _contacts_delete(Contact.objects.filter(account_id=account_pk))
        yield _by_time("event debugger entries", RejectedHit.objects.filter(account_id=account_pk))
        yield _delete("report rollups", EventDailyBreakdown.objects.filter(account_id=account_pk))
        yield _delete("report rollups", EventDailyRollup.objects.filter(account_id=account_pk))
        yield _delete("report rollups", TrafficDailyRollup.objects.filter(account_id=account_pk))
        yield _delete("report rollups", ReportDirtyDay.objects.filter(account_id=account_pk))


def _target_delete(job: BackgroundDelete, size: int) -> None:
    """The thing itself, with Django's cascade over what is left (rows written while the task ran: a handful).

    A definition's occurrences are not in that cascade (it would look them up by definition alone, across every
    account): the ones recorded meanwhile go first, the same way as the rest. A row recorded after that (ingest had
    loaded the definition before it was deleted) fails this transaction's foreign key check, and the task runs again
    (background_deletes_resume)."""
    if job.kind == BackgroundDelete.Kind.CUSTOM_EVENT:
        step = _records_delete(EventRecord.objects.filter(account_id=job.account_pk, custom_event_id=job.target_id))
        while step.run(size):
            pass
    model = {
        BackgroundDelete.Kind.CUSTOM_EVENT: CustomEvent,
        BackgroundDelete.Kind.MARKETING_SOURCE: MarketingSource,
        BackgroundDelete.Kind.ACCOUNT: Account,
    }[job.kind]
    model.objects.filter(pk=job.target_id, deleted_at__isnull=False).delete()


def background_delete_run(*, job_id: int, batch_size: int | None = None) -> BackgroundDelete | None:
    """Runs (or carries on with) one delete until it is done. None when there is no such job."""
    size = batch_size or settings.BACKGROUND_DELETE_BATCH_SIZE
    job = BackgroundDelete.objects.filter(pk=job_id).first()
    if job is None:
        logger.info("Background delete %s no longer exists", job_id)
        return None
    if job.status == BackgroundDelete.Status.DONE:
        return job
    if job.status == BackgroundDelete.Status.PENDING:
        # An estimate for the progress bar: one count per kind of row, through the same indexes the batches use.
        job.rows_total = sum(step.rows.count() for step in _steps(job))
        job.status = BackgroundDelete.Status.RUNNING
        job.save(update_fields=["rows_total", "status", "updated_at"])
    for step in _steps(job):
        while True:
            started = time.monotonic()
            with transaction.atomic():
                done = step.run(size)
                if done:
                    BackgroundDelete.objects.filter(pk=job.pk).update(
                        rows_done=F("rows_done") + done, batches=F("batches") + 1, updated_at=timezone.now()
                    )
            if not done:
                break
            time.sleep((time.monotonic() - started) * settings.BACKGROUND_DELETE_REST_RATIO)
    with transaction.atomic():
        _target_delete(job, size)
        BackgroundDelete.objects.filter(pk=job.pk).update(
            status=BackgroundDelete.Status.DONE, finished_at=timezone.now(), updated_at=timezone.now()
        )
    job.refresh_from_db()
    logger.info("Background delete of %s %s (%s): %s rows", job.kind, job.target_id, job.label, job.rows_done)
    return job


def background_deletes_resume(*, idle_for=None) -> list[int]:
    """Runs every delete not finished and idle for `idle_for` (a task lost to a broker outage, a worker killed
    mid-way); all of them without it. Returns their ids."""
    pending = BackgroundDelete.objects.exclude(status=BackgroundDelete.Status.DONE)
    if idle_for is not None:
        pending = pending.filter(updated_at__lt=timezone.now() - idle_for)
    ids = list(pending.order_by("id").values_list("pk", flat=True))
    for job_id in ids:
        background_delete_run(job_id=job_id)
    return ids
