"""Writes for reporting: keeping the daily rollups up to date.

A periodic task (and `manage.py reports_rollup`) reads the rows recorded since its last run, finds the days they
fall on in each account's time zone, and rebuilds those days' rollups from the raw rows. Nothing runs on the
beacon's or the API's hot path, and no rollup row is updated by two requests at once.

Exactness: for each raw table the rollups hold exactly the rows with an id up to a watermark, and reports add
the rows above it (see selectors.py). The watermark only passes rows whose creation time is a minute old, so a
row whose transaction is still open cannot be skipped; each run also rereads the rows after the previous run's
watermark, so even a row committed later than that is counted by the next run.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Max, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from automations.models import (
    EventDailyBreakdown,
    EventDailyRollup,
    ReportAccountRollup,
    ReportDirtyDay,
    ReportRawHorizon,
    ReportRollupWatermark,
    TrafficDailyRollup,
)
from paminga.models import Account
from paminga.progress import Progress
from tracking.models import Contact, EventRecord, Impression, Session

from . import aggregates

logger = logging.getLogger(__name__)

# (model, the column that says when the row was written, the column that decides its day)
TABLES = {
    "events": (EventRecord, "created_at", "occurred_at"),
    "impressions": (Impression, "occurred_at", "occurred_at"),
    "sessions": (Session, "started_at", "started_at"),
}
# Rows younger than this are left to the next run: longer than any transaction that writes them lasts.
WATERMARK_LAG = timedelta(seconds=60)
# The previous run's rows written this long before it are read again by the next run.
OVERLAP_WINDOW = timedelta(minutes=10)
# Days rebuilt per batch of queries.
CHUNK_DAYS = 31
BULK_SIZE = 2000


@dataclass
class RollupRun:
    accounts_rebuilt: list[int] = field(default_factory=list)
    days_updated: int = 0
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


def report_rollups_update(*, now: datetime | None = None, log=None, progress: Progress | None = None) -> RollupRun:
    """Brings every account's rollups up to date. Safe to run at any time and concurrently (runs queue on a lock).
    `progress` counts the local days rolled up (its total grows as each account's span is found)."""
    started = time.monotonic()
    now = now or timezone.now()
    cutoff = now - WATERMARK_LAG
    run = RollupRun()
    for table in TABLES:
        ReportRollupWatermark.objects.get_or_create(table=table)
    with transaction.atomic():
        marks = {m.table: m for m in ReportRollupWatermark.objects.select_for_update().filter(table__in=TABLES)}
        upto: dict[str, int] = {}
        touched_hours: dict[int, set[datetime]] = defaultdict(set)
        for table, (model, written_field, day_field) in TABLES.items():
            mark = marks[table]
            newest = model.objects.filter(id__gt=mark.upto_id, **{f"{written_field}__lt": cutoff}).aggregate(
                m=Max("id")
            )["m"]
            upto[table] = max(newest or 0, mark.upto_id)
            # New rows, and the previous run's rows that were written shortly before it (only they can have
            # been in an open transaction then): not every row of a big first run again.
            reread = Q(id__gt=mark.previous_upto_id, id__lte=mark.upto_id) & Q(
                **{f"{written_field}__gte": mark.updated_at - OVERLAP_WINDOW}
            )
            hours = (
                model.objects.filter(Q(id__gt=mark.upto_id, id__lte=upto[table]) | reread)
                .annotate(hour=TruncHour(day_field, tzinfo=UTC))
                .values_list("account_id", "hour")
                .distinct()
                .order_by()
            )
            for account_id, hour in hours:
                touched_hours[account_id].add(hour)
        dirty_marks = list(ReportDirtyDay.objects.values_list("id", "account_id", "day"))
        dirty_days: dict[int, set[date]] = defaultdict(set)
        for _id, account_id, day in dirty_marks:
            dirty_days[account_id].add(day)

        rolled = dict(ReportAccountRollup.objects.values_list("account_id", "time_zone"))
        # Days before an account's horizon have no raw rows left (retention): their rollups are never rebuilt.
        horizons = dict(ReportRawHorizon.objects.values_list("account_id", "raw_from"))
        for account in Account.objects.order_by("pk"):
            tz = account.tzinfo
            raw_from = horizons.get(account.pk)
            if rolled.get(account.pk) != account.time_zone:
                _account_rebuild(account=account, upto=upto, now=now, log=log, progress=progress, raw_from=raw_from)
                run.accounts_rebuilt.append(account.pk)
                continue
            days = set(dirty_days.get(account.pk, ()))
            for hour in touched_hours.get(account.pk, ()):
                # An hour can straddle two local days in zones with a half-hour offset.
                days.add(hour.astimezone(tz).date())
                days.add((hour + timedelta(minutes=59, seconds=59)).astimezone(tz).date())
            if raw_from is not None:
                days = {day for day in days if day >= raw_from}
            if progress is not None:
                progress.add_total(len(days))
            for day_from, day_to in _day_runs(days):
                _days_rebuild(account=account, day_from=day_from, day_to=day_to, upto=upto)
                if progress is not None:
                    progress.update((day_to - day_from).days + 1)
            run.days_updated += len(days)

        ReportDirtyDay.objects.filter(id__in=[m[0] for m in dirty_marks]).delete()
        for table, mark in marks.items():
            mark.previous_upto_id = mark.upto_id
            mark.upto_id = upto[table]
            mark.save(update_fields=["previous_upto_id", "upto_id", "updated_at"])
    run.watermarks = upto
    run.seconds = time.monotonic() - started
    return run


def _account_rebuild(
    *,
    account: Account,
    upto: dict[str, int],
    now: datetime,
    log=None,
    progress: Progress | None = None,
    raw_from: date | None = None,
) -> None:
    """Every day of the account, from scratch (first run, or its time zone changed), but for the days before
    `raw_from`, whose raw rows retention deleted: their rollups are kept as they are (in the time zone they were
    made in)."""
    for model in (EventDailyRollup, EventDailyBreakdown, TrafficDailyRollup):
        rows = model.objects.filter(account=account)
        (rows.filter(day__gte=raw_from) if raw_from else rows).delete()
    span = [
        model.objects.filter(account=account, id__lte=upto[table]).aggregate(a=Min(day_field), b=Max(day_field))
        for table, (model, _written, day_field) in TABLES.items()
    ]
    firsts = [s["a"] for s in span if s["a"]]
    lasts = [s["b"] for s in span if s["b"]]
    if firsts:
        tz = account.tzinfo
        day_from, day_to = min(firsts).astimezone(tz).date(), max(lasts).astimezone(tz).date()
        if raw_from is not None:
            day_from = max(day_from, raw_from)
        if progress is not None:
            progress.add_total(max(0, (day_to - day_from).days + 1))
        while day_from <= day_to:
            chunk_end = min(day_to, day_from + timedelta(days=CHUNK_DAYS - 1))
            _days_rebuild(account=account, day_from=day_from, day_to=chunk_end, upto=upto, clear=False)
            if progress is not None:
                progress.update((chunk_end - day_from).days + 1)
            if log:
                log(f"  {account.slug}: rolled up {day_from} to {chunk_end}")
            day_from = chunk_end + timedelta(days=1)
    ReportAccountRollup.objects.update_or_create(
        account=account, defaults={"time_zone": account.time_zone, "rebuilt_at": now}
    )


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
