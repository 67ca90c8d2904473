"""Raw data retention: page views, events (with their action runs), visits and event debugger entries older than
each account's retention period are deleted (docs/privacy.md).

Report totals of those days stay: the raw rows are deleted only once the rollups hold them (up to the
watermarks), and the account's horizon (ReportRawHorizon) is moved first, so the rollup task never rebuilds a day
before it from the raw rows that are going away.

On PostgreSQL, whole months go first: once every account's period has passed a month, its partitions of the raw
tables are dropped (tracking.partitions), which is instant and returns the disk. The few rows of that month that
kept rows still refer to (the page view a later conversion is attributed to, a visit that went on into the next
month) move into the default partition first, where the row deletes below take them in their time.

The row deletes, for what is left (the months an account's period ends in, and SQLite), run in small batches, each
its own short transaction, found through the (account, time) indexes in time order with a keyset (time, id)
(tracking.partitions.batches_by_time): a batch locks a thousand old rows for milliseconds, so capture, which only
writes new rows, never waits, and no statement scans what an earlier batch already deleted.
"""

import calendar
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from paminga.models import Account
from paminga.progress import Progress
from tracking.models import EventRecord, Impression, RejectedHit, Session, Visitor
from tracking.partitions import (
    batches_by_time,
    month_start,
    partition_detach,
    partition_months,
    partition_name,
    partitioned,
)
from tracking.texts import page_texts_purge, page_texts_purge_due

from .models import (
    ActionRun,
    ContactErasure,
    ReportAccountRollup,
    ReportDirtyDay,
    ReportRawHorizon,
    ReportRollupWatermark,
)
from .privacy import rows_delete
from .reports.services import day_bounds, report_rollups_update

logger = logging.getLogger(__name__)


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def retention_horizon(*, account: Account, now: datetime) -> tuple[date, datetime]:
    """(the first local day kept, the instant it starts): raw rows before that instant are deleted. A whole local
    day, so that a day is either all raw rows or all rollups."""
    raw_from = months_before(now.astimezone(account.tzinfo).date(), account.retention_months)
    return raw_from, day_bounds(raw_from, raw_from, account.tzinfo)[0]


@dataclass
class RetentionRun:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0
    accounts: int = 0
    skipped: list[str] = field(default_factory=list)
    months_dropped: list[date] = field(default_factory=list)
    seconds: float = 0.0


TABLES = ("events", "action_runs", "impressions", "visits", "debugger_entries", "page_texts")


def _horizon_move(*, account: Account, raw_from: date) -> None:
    """Committed before any row is deleted: from then on the rollup task leaves the days before raw_from alone."""
    with transaction.atomic():
        horizon = ReportRawHorizon.objects.select_for_update().filter(account=account).first()
        if horizon is None:
            ReportRawHorizon.objects.create(account=account, raw_from=raw_from)
        elif horizon.raw_from < raw_from:
            horizon.raw_from = raw_from
            horizon.save(update_fields=["raw_from", "updated_at"])
        # A day marked dirty would be read from its raw rows, which are going: its rollups are the better answer.
        ReportDirtyDay.objects.filter(account=account, day__lt=raw_from).delete()


def _batch_done(run: RetentionRun, progress: Progress | None, rows: int) -> None:
    run.batches += 1
    if progress is not None:
        progress.update(rows)


def retention_account_run(
    *,
    account: Account,
    now: datetime,
    upto: dict[str, int],
    batch_size: int,
    run: RetentionRun,
    progress: Progress | None = None,
) -> None:
    raw_from, cutoff = retention_horizon(account=account, now=now)
    _horizon_move(account=account, raw_from=raw_from)

    events = EventRecord.objects.filter(account=account, occurred_at__lt=cutoff, id__lte=upto.get("events", 0))
    for ids, batch in batches_by_time(events, batch_size):
        with transaction.atomic():
            action_runs = rows_delete(ActionRun.objects.filter(event_record_id__in=ids))
            deleted = rows_delete(batch)
        run.deleted["action_runs"] += action_runs
        run.deleted["events"] += deleted
        _batch_done(run, progress, action_runs + deleted)

    # A page view that a kept conversion is attributed to (a visit across the horizon) stays with its visit, so
    # that the kept day's attributed figures do not change.
    impressions = Impression.objects.filter(
        account=account, occurred_at__lt=cutoff, id__lte=upto.get("impressions", 0)
    ).exclude(Exists(EventRecord.objects.filter(account=account, attributed_impression=OuterRef("pk"))))
    for _ids, batch in batches_by_time(impressions, batch_size):
        with transaction.atomic():
            deleted = rows_delete(batch)
        run.deleted["impressions"] += deleted
        _batch_done(run, progress, deleted)

    # Visits that ended before the horizon and hold nothing any more.
    visits = (
        Session.objects.filter(
            account=account, started_at__lt=cutoff, last_seen_at__lt=cutoff, id__lte=upto.get("sessions", 0)
        )
        .exclude(Exists(Impression.objects.filter(account=account, session=OuterRef("pk"))))
        .exclude(Exists(EventRecord.objects.filter(account=account, session=OuterRef("pk"))))
    )
    for ids, batch in batches_by_time(visits, batch_size):
        with transaction.atomic():
            Visitor.objects.filter(current_session_id__in=ids).update(current_session=None)
            deleted = rows_delete(batch)
        run.deleted["visits"] += deleted
        _batch_done(run, progress, deleted)

    entries = RejectedHit.objects.filter(account=account, created_at__lt=cutoff)
    for _ids, batch in batches_by_time(entries, batch_size):
        with transaction.atomic():
            deleted = rows_delete(batch)
        run.deleted["debugger_entries"] += deleted
        _batch_done(run, progress, deleted)


def _months_droppable(*, accounts, now: datetime, upto: dict[str, int]) -> list[date]:
    """The months whose partitions may go: past every account's period, and held by the rollups (every row of them
    at or below the watermarks)."""
    if not partitioned() or not accounts:
        return []
    before = month_start(min(retention_horizon(account=a, now=now)[1] for a in accounts).astimezone(UTC))
    months = sorted({m for model in _PARTITIONED_ORDER for m in partition_months(model._meta.db_table)})
    droppable = []
    for month in (m for m in months if m < before):
        tables = ((EventRecord, "events"), (Impression, "impressions"), (Session, "sessions"))
        if all(_partition_max_id(model, month) <= upto.get(name, 0) for model, name in tables):
            droppable.append(month)
        else:
            logger.info("Retention keeps month %s: rows not yet in the rollups", month)
    return droppable


# Dropped in this order: events before what they refer to, and each table's keepers are found among what is left.
_PARTITIONED_ORDER = (EventRecord, Impression, Session, RejectedHit)


def _partition_max_id(model, month: date) -> int:
    name = partition_name(model._meta.db_table, month)
    if month not in partition_months(model._meta.db_table):
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(max(id), 0) FROM {connection.ops.quote_name(name)}")
        return cursor.fetchone()[0]


def _month_drop(month: date, *, batch_size: int, run: RetentionRun, progress: Progress | None) -> None:
    """Drops the month's partitions. The action runs of its events go first, in batches (their table is not
    partitioned); a page view or visit of the month that a kept row refers to is kept, moved to the default
    partition."""
    q = connection.ops.quote_name
    events = q(EventRecord._meta.db_table)
    for model in _PARTITIONED_ORDER:
        if month not in partition_months(model._meta.db_table):
            continue
        if model is EventRecord:
            runs, part = q(ActionRun._meta.db_table), q(partition_name(model._meta.db_table, month))
            while True:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(
                        f"DELETE FROM {runs} WHERE id IN (SELECT r.id FROM {runs} r JOIN {part} e "
                        f"ON e.id = r.event_record_id LIMIT %s)",
                        [batch_size],
                    )
                    deleted = max(cursor.rowcount, 0)
                if not deleted:
                    break
                run.deleted["action_runs"] += deleted
                _batch_done(run, progress, deleted)
        with transaction.atomic():
            with connection.cursor() as cursor:
                # A table with foreign key checks still deferred in this transaction cannot be dropped: they run now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            detached = q(partition_detach(model._meta.db_table, month))
            keep = ""
            if model is Impression:
                keep = f"SELECT attributed_impression_id FROM {events} WHERE attributed_impression_id BETWEEN %s AND %s"
            elif model is Session:
                keep = (
                    f"SELECT session_id FROM {q(Impression._meta.db_table)} WHERE session_id BETWEEN %s AND %s "
                    f"UNION SELECT session_id FROM {events} WHERE session_id BETWEEN %s AND %s"
                )
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*), min(id), max(id) FROM {detached}")
                count, low, high = cursor.fetchone()
                kept = 0
                if keep and count:
                    cursor.execute(
                        f"INSERT INTO {q(model._meta.db_table)} SELECT * FROM {detached} WHERE id IN ({keep})",
                        [low, high] * keep.count("BETWEEN"),
                    )
                    kept = cursor.rowcount
                cursor.execute(f"DROP TABLE {detached}")
                if model is Session and count:
                    # Visitors whose latest visit went: their next hit starts a new one.
                    sessions = q(Session._meta.db_table)
                    cursor.execute(
                        f"UPDATE {q(Visitor._meta.db_table)} SET current_session_id = NULL "
                        f"WHERE current_session_id BETWEEN %s AND %s "
                        f"AND NOT EXISTS (SELECT 1 FROM {sessions} s WHERE s.id = current_session_id)",
                        [low, high],
                    )
        name = {EventRecord: "events", Impression: "impressions", Session: "visits"}.get(model, "debugger_entries")
        run.deleted[name] += count - kept
        _batch_done(run, progress, count - kept)
    run.months_dropped.append(month)
    logger.info("Retention dropped the partitions of %s", month)


def retention_run(
    *,
    now: datetime | None = None,
    accounts=None,
    batch_size: int | None = None,
    log=None,
    progress: Progress | None = None,
) -> RetentionRun:
    """Deletes every account's raw rows older than its retention period. Safe to run at any time: what is already
    gone is not looked for again, and an interrupted run is finished by the next one. `progress` counts the rows
    deleted, batch by batch (how many there are is not counted first: that would read them all once more)."""
    started = time.monotonic()
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    run = RetentionRun()
    # The rollups first: a raw row may only go once they hold it.
    report_rollups_update(now=now)
    rolled = dict(ReportAccountRollup.objects.values_list("account_id", "time_zone"))
    upto = dict(ReportRollupWatermark.objects.values_list("table", "upto_id"))
    everyone = list(Account.objects.order_by("pk"))
    if all(rolled.get(account.pk) == account.time_zone for account in everyone):
        for month in _months_droppable(accounts=everyone, now=now, upto=upto):
            _month_drop(month, batch_size=batch_size, run=run, progress=progress)
    # The accounts whose unused page texts go in this run: every account after a month's partitions went (most of the
    # texts rows stop using), those not purged for PAGE_TEXTS_PURGE_DAYS (a purge reads all of the account's rows),
    # and those with an erasure whose own purge never ran.
    everyone_ids = [account.pk for account in everyone]
    purge = set(everyone_ids) if run.months_dropped else set(page_texts_purge_due(account_ids=everyone_ids, now=now))
    waiting = ContactErasure.objects.filter(texts_purged_at__isnull=True)
    purge.update(waiting.values_list("account_id", flat=True))
    for account in accounts if accounts is not None else everyone:
        if rolled.get(account.pk) != account.time_zone:
            # Its rollups are being rebuilt (a time zone change): deleting now would lose those days' figures.
            run.skipped.append(account.slug)
            logger.warning("Retention skipped account %s: its report rollups are not complete", account.pk)
            continue
        retention_account_run(account=account, now=now, upto=upto, batch_size=batch_size, run=run, progress=progress)
        run.accounts += 1
        if log:
            log(f"  {account.slug}: raw rows before {retention_horizon(account=account, now=now)[0]} deleted")
    for account_id in sorted(purge):
        purge_started = timezone.now()
        deleted = page_texts_purge(account_id=account_id)
        waiting.filter(account_id=account_id, erased_at__lte=purge_started).update(texts_purged_at=timezone.now())
        run.deleted["page_texts"] += deleted
        _batch_done(run, progress, deleted)
    run.seconds = time.monotonic() - started
    logger.info("Retention run: %s in %d batches, %.1f s", run.deleted, run.batches, run.seconds)
    return run
