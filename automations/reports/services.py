"""Writes for reporting: keeping the daily rollups up to date.

A periodic task (and `manage.py reports_rollup`) folds the rows recorded since its last run into the stored
daily rollups (fold.py): counts add up and the sketches of unique people merge, so a run costs what is new, not
what the account holds. Nothing runs on the beacon's or the API's hot path, and no rollup row is updated by two
requests at once.

Exactness: for each raw table the rollups hold exactly the rows with an id up to a watermark, and reports add
the rows above it (see selectors.py). The watermark only passes rows whose creation time is a minute old, so a
row whose transaction is still open cannot be skipped. Should one still commit late below the watermark, the next
run sees it: it counts the previous window's rows again, and a different count means its days are rebuilt from
the raw rows (as are days marked dirty).
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Exists, Max, Min, OuterRef, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from automations.models import (
    EventDailyBreakdown,
    EventDailyRollup,
    ReportAccountRollup,
    ReportDirtyDay,
    ReportRawHorizon,
    ReportRebuild,
    ReportRollupWatermark,
    TrafficDailyRollup,
)
from paminga.models import Account
from paminga.progress import Progress
from tracking.models import Contact, EventRecord, Impression, Session

from . import aggregates, fold

logger = logging.getLogger(__name__)

# (model, the column that says when the row was written, the column that decides its day)
TABLES = {
    "events": (EventRecord, "created_at", "occurred_at"),
    "impressions": (Impression, "occurred_at", "occurred_at"),
    "sessions": (Session, "started_at", "started_at"),
}
# Rows younger than this are left to the next run: longer than any transaction that writes them lasts.
WATERMARK_LAG = timedelta(seconds=60)
# Days rebuilt per batch of queries.
CHUNK_DAYS = 31
BULK_SIZE = 2000


@dataclass
class RollupRun:
    accounts_rebuilt: list[int] = field(default_factory=list)
    # Local days whose rollups changed: folded into, or rebuilt from the raw rows.
    days_updated: int = 0
    # Raw rows added into the rollups by folding (rows of rebuilt days not included).
    rows_folded: int = 0
    days_rebuilt: int = 0
    watermarks: dict = field(default_factory=dict)
    seconds: float = 0.0


def day_bounds(day_from: date, day_to: date, tz) -> tuple[datetime, datetime]:
    """The instants [start, end) covering the local days day_from..day_to (inclusive) in the time zone."""
    start = datetime.combine(day_from, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _day_runs(days: set[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into inclusive ranges of at most CHUNK_DAYS days."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1) and (day - runs[-1][0]).days < CHUNK_DAYS:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]


def _hours_days(hours, tz) -> set[date]:
    days = set()
    for hour in hours:
        # An hour can straddle two local days in zones with a half-hour offset.
        days.add(hour.astimezone(tz).date())
        days.add((hour + timedelta(minutes=59, seconds=59)).astimezone(tz).date())
    return days


def _late_rows(marks: dict) -> dict[int, set[datetime]]:
    """{account id: hours} of the rows of the last run's window, for each table whose window no longer holds the
    rows that run folded: a row committed late below its watermark, or rows deleted since. Counting a window by
    primary key is cheap; its days are then rebuilt from the raw rows."""
    touched: dict[int, set[datetime]] = defaultdict(set)
    for table, (model, _written_field, day_field) in TABLES.items():
        mark = marks[table]
        window = model.objects.filter(id__gt=mark.previous_upto_id, id__lte=mark.upto_id)
        if window.count() == mark.folded_rows:
            continue
        hours = (
            window.annotate(hour=TruncHour(day_field, tzinfo=UTC))
            .values_list("account_id", "hour")
            .distinct()
            .order_by()
        )
        for account_id, hour in hours:
            touched[account_id].add(hour)
    return touched


def report_rollups_update(*, now: datetime | None = None, log=None, progress: Progress | None = None) -> RollupRun:
    """Brings every account's rollups up to date. Safe to run at any time and concurrently (runs queue on a lock).

    A run folds the rows recorded since the last run into the stored rollups (fold.py), so it costs what is new;
    it rebuilds from the raw rows only the days it cannot vouch for (dirty days, rows committed late). Accounts
    rolled up for the first time or in a new time zone are rebuilt a chunk of days per transaction, resumed by
    the next run if interrupted. `progress` counts the local days rolled up (its total grows as work is found)."""
    started = time.monotonic()
    now = now or timezone.now()
    run = RollupRun()
    _rollups_fold(now=now, run=run, progress=progress)
    for rebuild in ReportRebuild.objects.order_by("account_id"):
        if _rebuild_continue(rebuild_id=rebuild.pk, log=log, progress=progress):
            account_id = _rebuild_finish(rebuild_id=rebuild.pk, now=now, run=run)
            if account_id is not None:
                run.accounts_rebuilt.append(account_id)
    run.watermarks = dict(ReportRollupWatermark.objects.values_list("table", "upto_id"))
    run.seconds = time.monotonic() - started
    return run


def _rollups_fold(*, now: datetime, run: RollupRun, progress: Progress | None) -> None:
    """Under the watermarks' lock, in one transaction: moves the watermarks and folds the rows between the old
    and the new ones into the rollups of every account that is rolled up; starts the rebuilds that are due."""
    cutoff = now - WATERMARK_LAG
    for table in TABLES:
        ReportRollupWatermark.objects.get_or_create(table=table)
    with transaction.atomic():
        marks = {
            m.table: m
            for m in ReportRollupWatermark.objects.select_for_update().filter(table__in=TABLES).order_by("table")
        }
        after = {table: mark.upto_id for table, mark in marks.items()}
        upto: dict[str, int] = {}
        fresh: set[int] = set()
        for table, (model, written_field, _day_field) in TABLES.items():
            newest = model.objects.filter(id__gt=after[table], **{f"{written_field}__lt": cutoff}).aggregate(
                m=Max("id")
            )["m"]
            upto[table] = max(newest or 0, after[table])
            fresh.update(
                model.objects.filter(id__gt=after[table], id__lte=upto[table])
                .values_list("account_id", flat=True)
                .distinct()
                .order_by()
            )
        late = _late_rows(marks)
        dirty_marks = list(ReportDirtyDay.objects.values_list("id", "account_id", "day"))
        dirty_days: dict[int, set[date]] = defaultdict(set)
        for _id, account_id, day in dirty_marks:
            dirty_days[account_id].add(day)

        rolled = dict(ReportAccountRollup.objects.values_list("account_id", "time_zone"))
        rebuilding = dict(ReportRebuild.objects.values_list("account_id", "time_zone"))
        # Days before an account's horizon have no raw rows left (retention): their rollups are never rebuilt.
        horizons = dict(ReportRawHorizon.objects.values_list("account_id", "raw_from"))
        consumed: list[int] = []
        accounts = Account.objects.filter(
            Q(pk__in=fresh | set(late) | set(dirty_days))
            | Q(pk__in=rebuilding)
            # Not rolled up in its current time zone: never rolled up, or the zone changed.
            | ~Exists(ReportAccountRollup.objects.filter(account=OuterRef("pk"), time_zone=OuterRef("time_zone")))
        ).filter(deleted_at__isnull=True)  # a deleted account's rows are being removed: nothing to roll up
        accounts = accounts.order_by("pk")
        for account in accounts:
            tz = account.tzinfo
            raw_from = horizons.get(account.pk)
            if rolled.get(account.pk) != account.time_zone:
                if rebuilding.get(account.pk) == account.time_zone:
                    # Its rebuild reads up to its own watermarks: late rows meanwhile are rebuilt when it ends.
                    report_days_invalidate(account=account, days=_hours_days(late.get(account.pk, ()), tz))
                else:
                    _rebuild_start(account=account, upto=upto, now=now, raw_from=raw_from)
                continue
            consumed.extend(i for i, account_id, _day in dirty_marks if account_id == account.pk)
            days = dirty_days.get(account.pk, set()) | _hours_days(late.get(account.pk, ()), tz)
            if raw_from is not None:
                days = {day for day in days if day >= raw_from}
            if progress is not None:
                progress.add_total(len(days))
            for day_from, day_to in _day_runs(days):
                _days_rebuild(account=account, day_from=day_from, day_to=day_to, upto=upto)
                if progress is not None:
                    progress.update((day_to - day_from).days + 1)
            folded = fold.account_fold(
                account=account,
                after=after,
                upto=upto,
                keep=lambda day, days=days, raw_from=raw_from: (
                    day not in days and (raw_from is None or day >= raw_from)
                ),
            )
            run.days_rebuilt += len(days)
            run.rows_folded += folded.rows
            run.days_updated += len(days | folded.days)

        ReportDirtyDay.objects.filter(id__in=consumed).delete()
        for table, mark in marks.items():
            mark.previous_upto_id = mark.upto_id
            mark.upto_id = upto[table]
            mark.folded_rows = TABLES[table][0].objects.filter(id__gt=after[table], id__lte=upto[table]).count()
            mark.save(update_fields=["previous_upto_id", "upto_id", "folded_rows", "updated_at"])


def _rebuild_start(*, account: Account, upto: dict[str, int], now: datetime, raw_from: date | None) -> None:
    """Forgets the account's rollups (but for the days before `raw_from`, whose raw rows retention deleted: they
    are kept as they are, in the time zone they were made in) and records the days to rebuild. In the caller's
    transaction: the watermarks move past these rows in the same commit."""
    ReportAccountRollup.objects.filter(account=account).delete()
    for model in (EventDailyRollup, EventDailyBreakdown, TrafficDailyRollup):
        rows = model.objects.filter(account=account)
        (rows.filter(day__gte=raw_from) if raw_from else rows).delete()
    span = [
        model.objects.filter(account=account, id__lte=upto[table]).aggregate(a=Min(day_field), b=Max(day_field))
        for table, (model, _written, day_field) in TABLES.items()
    ]
    firsts = [s["a"] for s in span if s["a"]]
    lasts = [s["b"] for s in span if s["b"]]
    day_from = day_to = None
    if firsts:
        tz = account.tzinfo
        day_from, day_to = min(firsts).astimezone(tz).date(), max(lasts).astimezone(tz).date()
        if raw_from is not None:
            day_from = max(day_from, raw_from)
        if day_from > day_to:
            day_from = day_to = None
    ReportRebuild.objects.update_or_create(
        account=account,
        defaults={
            "time_zone": account.time_zone,
            "upto": dict(upto),
            "day_from": day_from,
            "day_to": day_to,
            "done_through": None,
            "started_at": now,
        },
    )


def _rebuild_continue(*, rebuild_id: int, log=None, progress: Progress | None = None) -> bool:
    """Rebuilds the remaining days of a rebuild, CHUNK_DAYS per transaction, each committed with how far it got:
    an interrupted rebuild loses at most one chunk. True when every day is done."""
    counted = False
    while True:
        with transaction.atomic():
            # Two runs at once alternate chunks instead of doing one twice.
            rebuild = ReportRebuild.objects.select_for_update().select_related("account").filter(pk=rebuild_id).first()
            if rebuild is None or rebuild.account.time_zone != rebuild.time_zone or rebuild.account.deleted_at:
                return False  # finished by another run, restarted in a new time zone by the next one, or deleted
            if rebuild.finished:
                return True
            chunk_from = rebuild.day_from if rebuild.done_through is None else rebuild.done_through + timedelta(days=1)
            if progress is not None and not counted:
                progress.add_total((rebuild.day_to - chunk_from).days + 1)
                counted = True
            chunk_to = min(rebuild.day_to, chunk_from + timedelta(days=CHUNK_DAYS - 1))
            _days_rebuild(account=rebuild.account, day_from=chunk_from, day_to=chunk_to, upto=rebuild.upto)
            rebuild.done_through = chunk_to
            rebuild.save(update_fields=["done_through", "updated_at"])
        if progress is not None:
            progress.update((chunk_to - chunk_from).days + 1)
        if log:
            log(f"  {rebuild.account.slug}: rolled up {chunk_from} to {chunk_to}")


def _rebuild_finish(*, rebuild_id: int, now: datetime, run: RollupRun) -> int | None:
    """Under the watermarks' lock: folds the rows recorded since the rebuild started, rebuilds the days marked
    dirty meanwhile, and makes the account's rollups the ones its reports read."""
    with transaction.atomic():
        upto = {
            m.table: m.upto_id
            for m in ReportRollupWatermark.objects.select_for_update().filter(table__in=TABLES).order_by("table")
        }
        rebuild = ReportRebuild.objects.select_for_update().select_related("account").filter(pk=rebuild_id).first()
        if rebuild is None or not rebuild.finished or rebuild.account.time_zone != rebuild.time_zone:
            return None
        account = rebuild.account
        raw_from = ReportRawHorizon.objects.filter(account=account).values_list("raw_from", flat=True).first()
        dirty_marks = list(ReportDirtyDay.objects.filter(account=account).values_list("id", "day"))
        days = {day for _id, day in dirty_marks if raw_from is None or day >= raw_from}
        for day_from, day_to in _day_runs(days):
            _days_rebuild(account=account, day_from=day_from, day_to=day_to, upto=upto)
        after = {table: rebuild.upto.get(table, 0) for table in TABLES}
        folded = fold.account_fold(
            account=account,
            after=after,
            upto=upto,
            keep=lambda day: day not in days and (raw_from is None or day >= raw_from),
        )
        run.rows_folded += folded.rows
        run.days_rebuilt += len(days)
        run.days_updated += len(days | folded.days)
        ReportDirtyDay.objects.filter(id__in=[i for i, _day in dirty_marks]).delete()
        ReportAccountRollup.objects.update_or_create(
            account=account, defaults={"time_zone": account.time_zone, "rebuilt_at": now}
        )
        rebuild.delete()
        return account.pk


def _days_rebuild(*, account: Account, day_from: date, day_to: date, upto: dict[str, int], clear=True) -> None:
    """Recomputes the rollups of the local days day_from..day_to from the raw rows up to the watermarks."""
    tz = account.tzinfo
    start, end = day_bounds(day_from, day_to, tz)
    if clear:
        for model in (EventDailyRollup, EventDailyBreakdown, TrafficDailyRollup):
            model.objects.filter(account=account, day__gte=day_from, day__lte=day_to).delete()

    events = EventRecord.objects.filter(
        account=account, occurred_at__gte=start, occurred_at__lt=end, id__lte=upto["events"]
    )
    people = aggregates.events_people(events, tz=tz)
    EventDailyRollup.objects.bulk_create(
        (
            EventDailyRollup(
                account=account,
                custom_event_id=event_id,
                day=day,
                fires=fires,
                conversions=conversions,
                attributed=attributed,
                contact_sketch=aggregates.sketch_pack(people.get((event_id, day), ((), ()))[0]),
                visitor_sketch=aggregates.sketch_pack(people.get((event_id, day), ((), ()))[1]),
            )
            for (event_id, day), (fires, conversions, attributed) in aggregates.events_totals(events, tz=tz).items()
        ),
        batch_size=BULK_SIZE,
    )
    breakdown_rows = []
    for dimension, counts in aggregates.events_by_dimensions(events, tz=tz).items():
        for (event_id, day, value), (fires, conversions) in counts.items():
            breakdown_rows.append(
                EventDailyBreakdown(
                    account=account,
                    custom_event_id=event_id,
                    day=day,
                    dimension=dimension,
                    value=value,
                    fires=fires,
                    conversions=conversions,
                )
            )
    for (event_id, day, key, value), (fires, conversions) in aggregates.events_metadata(
        events, tz=tz, cap=True
    ).items():
        breakdown_rows.append(
            EventDailyBreakdown(
                account=account,
                custom_event_id=event_id,
                day=day,
                dimension=EventDailyBreakdown.Dimension.METADATA,
                key=key,
                value=value,
                fires=fires,
                conversions=conversions,
            )
        )
    EventDailyBreakdown.objects.bulk_create(breakdown_rows, batch_size=BULK_SIZE)

    impressions = Impression.objects.filter(
        account=account, occurred_at__gte=start, occurred_at__lt=end, id__lte=upto["impressions"]
    )
    sessions = Session.objects.filter(
        account=account, started_at__gte=start, started_at__lt=end, id__lte=upto["sessions"]
    )
    traffic = [
        TrafficDailyRollup(account=account, day=day, dimension="page_views", value=page, count=n)
        for (day, page), n in aggregates.page_views(impressions, tz=tz).items()
    ] + [
        TrafficDailyRollup(account=account, day=day, dimension="visits", value=channel, count=n)
        for (day, channel), n in aggregates.visits(sessions, tz=tz).items()
    ]
    TrafficDailyRollup.objects.bulk_create(traffic, batch_size=BULK_SIZE)


def report_days_invalidate(*, account: Account, days) -> None:
    """Marks days whose recorded rows changed: reports read them raw until the next run rebuilds them."""
    ReportDirtyDay.objects.bulk_create([ReportDirtyDay(account=account, day=day) for day in set(days)])


def report_contact_events_moving(*, contact: Contact) -> None:
    """To be called, in the same transaction, before a contact's events are moved to another contact (a merge):
    the days they fall on hold that contact in their sets of unique contacts."""
    days = set(
        EventRecord.objects.filter(contact=contact)
        .annotate(day=aggregates.local_day("occurred_at", contact.account.tzinfo))
        .values_list("day", flat=True)
        .distinct()
        .order_by()
    )
    if days:
        report_days_invalidate(account=contact.account, days=days)
