"""Reads for reporting. Every figure is the rollups' part (days rolled up, up to the watermarks) plus the raw rows
above the watermarks, plus days marked dirty read raw in full. Every read is scoped to one account.

Use them inside `report_scope(...)`: it reads the watermarks and the rollups in one snapshot, so a rollup run
finishing in between cannot count a row twice.
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from operator import or_
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction
from django.db.models import Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from automations.models import (
    EventDailyBreakdown,
    EventDailyRollup,
    ReportAccountRollup,
    ReportDirtyDay,
    ReportRollupWatermark,
    TrafficDailyRollup,
)
from custom_events.models import CustomEvent, MarketingChannel
from custom_events.selectors import custom_event_list
from paminga.models import Account
from paminga.replica import replica_down, report_database, report_reads
from tracking.models import EventRecord, Impression, Session

from . import aggregates
from .services import day_bounds

DEFAULT_DAYS = 30
MAX_DAYS = 366
OCCURRENCES_PAGE = 25
# Rows per statement of an export of occurrences: a page is held in memory while it is written out.
EXPORT_PAGE = 10_000
# The raw tables behind the rollups, and the column that decides a row's day.
RAW_TABLES = {
    "events": (EventRecord, "occurred_at"),
    "impressions": (Impression, "occurred_at"),
    "sessions": (Session, "started_at"),
}
BREAKDOWN_DIMENSIONS = ("source", "channel", "utm_source", "utm_medium", "utm_campaign", "page")


def report_default_range(*, account: Account, now: datetime | None = None) -> tuple[date, date]:
    """The last 30 days, today included, in the account's time zone."""
    today = (now or timezone.now()).astimezone(account.tzinfo).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


@dataclass
class ReportScope:
    account: Account
    start: date
    end: date
    tz: ZoneInfo
    start_at: datetime
    end_at: datetime
    # The rollups are used only when they are complete and in the account's current time zone.
    rolled: bool
    upto: dict[str, int]
    dirty: set[date] = field(default_factory=set)
    # Deleted custom events whose rows are still being removed in the background: counted nowhere.
    hidden_events: frozenset[int] = frozenset()
    # The database alias the report reads (the replica or the primary).
    database: str = DEFAULT_DB_ALIAS

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def rollup_rows(self, model) -> QuerySet:
        """The model's rollup rows for the range (none when the rollups are not used); dirty days excluded."""
        if not self.rolled:
            return model.objects.none()
        qs = model.objects.filter(account=self.account, day__gte=self.start, day__lte=self.end)
        if self.hidden_events and model is not TrafficDailyRollup:
            qs = qs.exclude(custom_event_id__in=self.hidden_events)
        return qs.exclude(day__in=self.dirty) if self.dirty else qs

    def raw_rows(self, table: str) -> list[QuerySet]:
        """The raw rows of the range that the rollups do not hold: above the watermark, and all of dirty days."""
        model, day_field = RAW_TABLES[table]
        base = model.objects.filter(
            account=self.account, **{f"{day_field}__gte": self.start_at, f"{day_field}__lt": self.end_at}
        )
        if self.hidden_events and table == "events":
            base = base.exclude(custom_event_id__in=self.hidden_events)
        if not self.rolled:
            return [base]
        if not self.dirty:
            return [base.filter(id__gt=self.upto[table])]
        in_dirty = reduce(
            or_,
            (
                Q(**{f"{day_field}__gte": a, f"{day_field}__lt": b})
                for a, b in (day_bounds(day, day, self.tz) for day in sorted(self.dirty))
            ),
        )
        return [base.filter(id__gt=self.upto[table]).exclude(in_dirty), base.filter(in_dirty)]


@contextmanager
def report_scope(*, account: Account, start: date, end: date) -> Iterator[ReportScope]:
    """A consistent view of the account's report data for the local days start..end (inclusive), read on the
    replica when one is configured and usable (paminga/replica.py), else on the primary."""
    # Definitions on the primary: a deleted event is gone from reports at once, whatever a replica's delay.
    hidden = frozenset(
        CustomEvent.objects.filter(account=account, deleted_at__isnull=False).values_list("pk", flat=True)
    )
    database = report_database()
    try:
        with report_reads(database), _report_snapshot(account, start, end, database, hidden) as scope:
            yield scope
    except OperationalError:
        # The replica went away (not a statement timeout, which leaves the connection open): the next report reads
        # the primary until the next check finds it back.
        if database != DEFAULT_DB_ALIAS and getattr(connections[database].connection, "closed", True):
            replica_down()
        raise


@contextmanager
def _report_snapshot(account, start, end, database, hidden) -> Iterator[ReportScope]:
    connection = connections[database]
    # Inside a transaction already (tests run in one), the isolation level is the caller's to choose.
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=database):
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                # Every statement of the report is cancelled past this (SQLSTATE 57014, answered as TIMEOUT by the
                # API): a report over a huge range cannot hold a server thread and a database backend for long.
                # LOCAL: it ends with this transaction, so the connection's next request runs without it.
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{settings.REPORT_STATEMENT_TIMEOUT_MS}ms"]
                )
        rolled = ReportAccountRollup.objects.filter(account=account, time_zone=account.time_zone).exists()
        upto = {"events": 0, "impressions": 0, "sessions": 0}
        dirty: set[date] = set()
        if rolled:
            upto.update(dict(ReportRollupWatermark.objects.values_list("table", "upto_id")))
            dirty = set(
                ReportDirtyDay.objects.filter(account=account, day__gte=start, day__lte=end).values_list(
                    "day", flat=True
                )
            )
        start_at, end_at = day_bounds(start, end, account.tzinfo)
        yield ReportScope(
            account=account,
            start=start,
            end=end,
            tz=account.tzinfo,
            start_at=start_at,
            end_at=end_at,
            rolled=rolled,
            upto=upto,
            dirty=dirty,
            hidden_events=hidden,
            database=database,
        )


def _add(target: dict, source: dict) -> None:
    for key, counts in source.items():
        mine = target.get(key)
        if mine is None:
            target[key] = list(counts)
        else:
            for i, value in enumerate(counts):
                mine[i] += value


# --- Totals, series and unique people ------------------------------------------------------------------------


@dataclass
class EventFigures:
    event: CustomEvent | None
    fires: int = 0
    conversions: int = 0
    attributed: int = 0
    unique_contacts: int = 0
    unique_visitors: int = 0
    daily_fires: list[int] = field(default_factory=list)
    daily_conversions: list[int] = field(default_factory=list)

    @property
    def conversion_rate(self) -> float | None:
        """Conversions per fire: 1.0 for an event that always counts, less when its definition changed."""
        return self.conversions / self.fires if self.fires else None


def _totals_by_event_day(scope: ReportScope, event_ids: list[int] | None) -> dict:
    """{(event_id, day): [fires, conversions, attributed]}."""
    result: dict = {}
    rows = scope.rollup_rows(EventDailyRollup)
    if event_ids is not None:
        rows = rows.filter(custom_event_id__in=event_ids)
    for event_id, day, fires, conversions, attributed in rows.values_list(
        "custom_event_id", "day", "fires", "conversions", "attributed"
    ):
        _add(result, {(event_id, day): (fires, conversions, attributed)})
    for qs in scope.raw_rows("events"):
        if event_ids is not None:
            qs = qs.filter(custom_event_id__in=event_ids)
        _add(result, aggregates.events_totals(qs, tz=scope.tz))
    return result


def _people_by_event(scope: ReportScope, event_ids: list[int]) -> dict:
    """{event_id: (contacts, visitors)} over the range, each an aggregates.DistinctCounter of the days' stored
    sketches and the ids of the raw rows the rollups do not hold: ≤ 366 small rows per event, whatever the
    account holds."""
    result = defaultdict(lambda: (aggregates.DistinctCounter(), aggregates.DistinctCounter()))
    rows = scope.rollup_rows(EventDailyRollup).filter(custom_event_id__in=event_ids)
    for event_id, contacts, visitors in aggregates.rows_binary(
        rows.values_list("custom_event_id", "contact_sketch", "visitor_sketch")
    ):
        result[event_id][0].add_sketch(contacts)
        result[event_id][1].add_sketch(visitors)
    for qs in scope.raw_rows("events"):
        raw = aggregates.events_people(qs.filter(custom_event_id__in=event_ids), tz=scope.tz, by_day=False)
        for (event_id, _day), (contacts, visitors) in raw.items():
            result[event_id][0].add_ids(contacts)
            result[event_id][1].add_ids(visitors)
    return result


def _figures(scope: ReportScope, events: list[CustomEvent]) -> tuple[list[EventFigures], EventFigures]:
    ids = [e.pk for e in events]
    totals = _totals_by_event_day(scope, ids)
    people = _people_by_event(scope, ids)
    days = scope.days
    index = {day: i for i, day in enumerate(days)}
    figures = {
        e.pk: EventFigures(event=e, daily_fires=[0] * len(days), daily_conversions=[0] * len(days)) for e in events
    }
    overall = EventFigures(event=None, daily_fires=[0] * len(days), daily_conversions=[0] * len(days))
    for (event_id, day), (fires, conversions, attributed) in totals.items():
        f = figures.get(event_id)
        if f is None or day not in index:
            continue
        for target in (f, overall):
            target.fires += fires
            target.conversions += conversions
            target.attributed += attributed
            target.daily_fires[index[day]] += fires
            target.daily_conversions[index[day]] += conversions
    all_contacts, all_visitors = aggregates.DistinctCounter(), aggregates.DistinctCounter()
    for event_id, (contacts, visitors) in people.items():
        figures[event_id].unique_contacts = contacts.estimate()
        figures[event_id].unique_visitors = visitors.estimate()
        all_contacts.merge(contacts)
        all_visitors.merge(visitors)
    overall.unique_contacts = all_contacts.estimate()
    overall.unique_visitors = all_visitors.estimate()
    return [figures[e.pk] for e in events], overall


OVERVIEW_SORTS = {
    "name": lambda f: (f.event.name.lower(), f.event.slug),
    "fires": lambda f: f.fires,
    "unique_contacts": lambda f: f.unique_contacts,
    "unique_visitors": lambda f: f.unique_visitors,
    "conversions": lambda f: f.conversions,
}


def event_overview(*, scope: ReportScope, sort: str = "fires", descending: bool = True):
    """Every custom event of the account with its figures over the range, and the account-wide figures (unique
    people counted once across events). Events that never fired are listed with zeros."""
    events = list(custom_event_list(account=scope.account))
    rows, overall = _figures(scope, events)
    key = OVERVIEW_SORTS.get(sort, OVERVIEW_SORTS["fires"])
    # Ties keep the alphabetical order: a stable sort on the name first.
    rows.sort(key=OVERVIEW_SORTS["name"])
    rows.sort(key=key, reverse=descending)
    return rows, overall


def event_figures(*, scope: ReportScope, custom_event: CustomEvent) -> EventFigures:
    if custom_event.account_id != scope.account.pk:
        raise ValueError("event_figures() across accounts")
    return _figures(scope, [custom_event])[0][0]


# --- Breakdowns -----------------------------------------------------------------------------------------------


@dataclass
class BreakdownRow:
    value: str
    fires: int
    conversions: int
    share: float  # of the table's fires
    label: str = ""


def _breakdown(scope: ReportScope, dimension: str, event_id: int | None, key: str = "") -> dict[str, list[int]]:
    result: dict = {}
    rows = scope.rollup_rows(EventDailyBreakdown).filter(dimension=dimension)
    if event_id is not None:
        rows = rows.filter(custom_event_id=event_id)
    if dimension == EventDailyBreakdown.Dimension.METADATA:
        rows = rows.filter(key=key)
    for value, fires, conversions in (
        rows.values("value").annotate(f=Sum("fires"), c=Sum("conversions")).values_list("value", "f", "c")
    ):
        _add(result, {value: (fires, conversions)})
    for qs in scope.raw_rows("events"):
        if event_id is not None:
            qs = qs.filter(custom_event_id=event_id)
        if dimension == EventDailyBreakdown.Dimension.METADATA:
            raw = aggregates.events_metadata(qs, tz=scope.tz, by_day=False)
            _add(result, {v: counts for (_e, _d, k, v), counts in raw.items() if k == key})
        else:
            raw = aggregates.events_by_dimension(qs, tz=scope.tz, dimension=dimension, by_day=False, by_event=False)
            _add(result, {v: counts for (_e, _d, v), counts in raw.items()})
    return result


def _label(dimension: str, value: str) -> str:
    if value == aggregates.OTHER:
        return "(other values)"
    if dimension in ("channel", "attributed_channel"):
        return MarketingChannel(value).label if value in MarketingChannel.values else value or "(not set)"
    if dimension == "source":
        return dict(EventRecord.Source.choices).get(value, value)
    if not value:
        return "(no page)" if dimension in ("page", "attributed_page") else "(not set)"
    return value


def _rows(dimension: str, counts: dict[str, list[int]]) -> list[BreakdownRow]:
    total = sum(c[0] for c in counts.values()) or 1
    rows = [
        BreakdownRow(value=value, fires=c[0], conversions=c[1], share=c[0] / total, label=_label(dimension, value))
        for value, c in counts.items()
        if c[0]
    ]
    rows.sort(key=lambda r: (-r.fires, r.value == aggregates.OTHER, r.value))
    return rows


def event_breakdown(*, scope: ReportScope, custom_event: CustomEvent, dimension: str) -> list[BreakdownRow]:
    """Fires and conversions of one event by source, channel, a UTM field or page, most fires first."""
    if dimension not in BREAKDOWN_DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    _same_account(scope, custom_event)
    return _rows(dimension, _breakdown(scope, dimension, custom_event.pk))


def event_metadata_keys(*, scope: ReportScope, custom_event: CustomEvent) -> list[str]:
    """The top-level metadata keys to break the event down by: the properties its metadata schema declares first, in
    the schema's order (even before any occurrence carries them), then the other keys the occurrences in the range
    carried, alphabetically."""
    _same_account(scope, custom_event)
    keys = set(
        scope.rollup_rows(EventDailyBreakdown)
        .filter(custom_event_id=custom_event.pk, dimension=EventDailyBreakdown.Dimension.METADATA)
        .values_list("key", flat=True)
        .distinct()
        .order_by()
    )
    for qs in scope.raw_rows("events"):
        keys.update(
            k
            for (_e, _d, k, _v) in aggregates.events_metadata(
                qs.filter(custom_event=custom_event), tz=scope.tz, by_day=False
            )
        )
    declared = [prop["name"] for prop in custom_event.metadata_schema]
    return declared + sorted(keys - set(declared), key=lambda k: (k.lower(), k))


def event_metadata_breakdown(*, scope: ReportScope, custom_event: CustomEvent, key: str) -> list[BreakdownRow]:
    """Fires and conversions by the values of one metadata key (occurrences without the key are not counted)."""
    _same_account(scope, custom_event)
    return _rows("metadata", _breakdown(scope, EventDailyBreakdown.Dimension.METADATA, custom_event.pk, key))


# --- Attribution and conversion rates -------------------------------------------------------------------------


@dataclass
class RateRow:
    value: str
    label: str
    conversions: int
    base: int  # page views of the page, or visits from the channel
    share: float  # of the table's conversions

    @property
    def rate(self) -> float | None:
        return self.conversions / self.base if self.base else None

    @property
    def rate_percent(self) -> float | None:
        return None if self.rate is None else self.rate * 100


def _traffic(scope: ReportScope, dimension: str, values: set[str] | None = None) -> dict[str, int]:
    result: dict[str, int] = defaultdict(int)
    rows = scope.rollup_rows(TrafficDailyRollup).filter(dimension=dimension)
    if values is not None:
        rows = rows.filter(value__in=values)
    for value, count in rows.values("value").annotate(n=Sum("count")).values_list("value", "n"):
        result[value] += count
    table = "impressions" if dimension == "page_views" else "sessions"
    for qs in scope.raw_rows(table):
        counts = (aggregates.page_views if table == "impressions" else aggregates.visits)(qs, tz=scope.tz, by_day=False)
        for (_day, value), count in counts.items():
            if values is None or value in values:
                result[value] += count
    return result


def _rate_rows(dimension: str, conversions: dict[str, int], bases: dict[str, int]) -> list[RateRow]:
    total = sum(conversions.values()) or 1
    rows = [
        RateRow(
            value=value,
            label=_label(dimension, value),
            conversions=n,
            base=bases.get(value, 0) if value != aggregates.OTHER else 0,
            share=n / total,
        )
        for value, n in conversions.items()
        if n
    ]
    rows.sort(key=lambda r: (-r.conversions, r.value))
    return rows


def attributed_by_page(*, scope: ReportScope, custom_event: CustomEvent | None = None) -> list[RateRow]:
    """Conversions attributed to a page view, by that page view's page, with the page's conversion rate:
    attributed conversions ÷ page views of the page in the range. For one event, or all of the account's."""
    if custom_event is not None:
        _same_account(scope, custom_event)
    counts = _breakdown(scope, "attributed_page", custom_event.pk if custom_event else None)
    conversions = {value: c[1] for value, c in counts.items()}
    pages = {value for value, n in conversions.items() if n}
    return _rate_rows("attributed_page", conversions, _traffic(scope, "page_views", pages) if pages else {})


def attributed_by_channel(*, scope: ReportScope, custom_event: CustomEvent) -> list[RateRow]:
    """Conversions attributed to a page view, by that page view's channel (base: visits from the channel)."""
    _same_account(scope, custom_event)
    counts = _breakdown(scope, "attributed_channel", custom_event.pk)
    conversions = {value: c[1] for value, c in counts.items()}
    return _rate_rows("attributed_channel", conversions, _traffic(scope, "visits"))


def conversions_by_channel(*, scope: ReportScope) -> list[RateRow]:
    """All conversions of the account by the channel recorded with them, with the channel's conversion rate:
    conversions ÷ visits that started from the channel in the range."""
    counts = _breakdown(scope, "channel", None)
    conversions = {value: c[1] for value, c in counts.items()}
    return _rate_rows("channel", conversions, _traffic(scope, "visits"))


@dataclass
class ConversionsSummary:
    conversions: int
    attributed: int
    visits: int
    page_views: int
    daily_conversions: list[int]
    daily_attributed: list[int]
    by_event: list[EventFigures]

    @property
    def conversion_rate(self) -> float | None:
        """Conversions per visit."""
        return self.conversions / self.visits if self.visits else None


def conversions_summary(*, scope: ReportScope) -> ConversionsSummary:
    """The account's conversions over the range: totals, per day, per event (events without conversions left out)."""
    events = list(custom_event_list(account=scope.account))
    ids = [e.pk for e in events]
    totals = _totals_by_event_day(scope, ids)
    index = {day: i for i, day in enumerate(scope.days)}
    by_event = {e.pk: EventFigures(event=e) for e in events}
    daily_conversions = [0] * len(index)
    daily_attributed = [0] * len(index)
    for (event_id, day), (fires, conversions, attributed) in totals.items():
        if event_id not in by_event or day not in index:
            continue
        f = by_event[event_id]
        f.fires += fires
        f.conversions += conversions
        f.attributed += attributed
        daily_conversions[index[day]] += conversions
        daily_attributed[index[day]] += attributed
    rows = [f for f in by_event.values() if f.conversions]
    rows.sort(key=lambda f: (-f.conversions, f.event.name.lower()))
    return ConversionsSummary(
        conversions=sum(daily_conversions),
        attributed=sum(daily_attributed),
        visits=sum(_traffic(scope, "visits").values()),
        page_views=sum(_traffic(scope, "page_views").values()),
        daily_conversions=daily_conversions,
        daily_attributed=daily_attributed,
        by_event=rows,
    )


# --- Recent occurrences -----------------------------------------------------------------------------------------


def event_occurrences(
    *,
    scope: ReportScope,
    custom_event: CustomEvent,
    metadata_key: str = "",
    metadata_value: str | None = None,
    before_id: int | None = None,
    limit: int = OCCURRENCES_PAGE,
) -> list[EventRecord]:
    """The event's occurrences in the range, newest first, optionally only those whose metadata key has the value
    (compared as the metadata breakdown shows it). `before_id` continues a list after that occurrence."""
    qs = event_occurrences_all(
        scope=scope, custom_event=custom_event, metadata_key=metadata_key, metadata_value=metadata_value
    )
    anchor = None
    if before_id is not None:
        anchor = (
            EventRecord.objects.filter(account=scope.account, custom_event=custom_event, pk=before_id)
            .values_list("occurred_at", flat=True)
            .first()
        )
        if anchor is not None:
            qs = qs.filter(Q(occurred_at__lt=anchor) | Q(occurred_at=anchor, pk__lt=before_id))
    if not metadata_key or not scope.rolled:
        return list(qs[:limit])
    return _filtered_occurrences(scope, custom_event, qs, metadata_key, metadata_value, anchor, limit)


def _filtered_occurrences(scope, custom_event, qs, key, value, anchor, limit) -> list[EventRecord]:
    """A metadata filter can match rarely or never: scanning the event's rows newest first until enough match
    could then read the whole range. The rollups say which days hold matches and how many, so the scan is
    limited to the newest days that hold enough, plus the rows the rollups do not hold yet (above the watermark,
    and dirty days)."""
    days = scope.rollup_rows(EventDailyBreakdown).filter(
        custom_event_id=custom_event.pk, dimension=EventDailyBreakdown.Dimension.METADATA, key=key
    )
    if value is not None:
        # A value among a key's rarest may be summed into OTHER: such a day may hold matches, uncounted.
        days = days.filter(value__in=[value, aggregates.OTHER])
    anchor_day = anchor.astimezone(scope.tz).date() if anchor is not None else None
    if anchor_day is not None:
        days = days.filter(day__lte=anchor_day)
    matches: dict[date, int] = defaultdict(int)
    for day, day_value, fires in days.values_list("day", "value", "fires"):
        # The anchor's day also counts the occurrences already shown: it may hold none of the next ones.
        counted = (value is None or day_value == value) and day != anchor_day
        matches[day] += fires if counted else 0
    window_start = None
    found = 0
    for day in sorted(matches, reverse=True):
        window_start = day
        found += matches[day]
        if found >= limit:
            break
    parts = [qs.filter(id__gt=scope.upto["events"])]
    if window_start is not None:
        parts.append(qs.filter(occurred_at__gte=day_bounds(window_start, window_start, scope.tz)[0]))
    for day in scope.dirty:
        day_start, day_end = day_bounds(day, day, scope.tz)
        parts.append(qs.filter(occurred_at__gte=day_start, occurred_at__lt=day_end))
    rows = {record.pk: record for part in parts for record in part[:limit]}
    return sorted(rows.values(), key=lambda r: (r.occurred_at, r.pk), reverse=True)[:limit]


def event_occurrences_all(
    *, scope: ReportScope, custom_event: CustomEvent, metadata_key: str = "", metadata_value: str | None = None
) -> QuerySet[EventRecord]:
    _same_account(scope, custom_event)
    qs = (
        EventRecord.objects.filter(
            account=scope.account,
            custom_event=custom_event,
            occurred_at__gte=scope.start_at,
            occurred_at__lt=scope.end_at,
        )
        .select_related("contact", "visitor", "page_url_text")
        .order_by("-occurred_at", "-id")
        # Pinned: the occurrences CSV reads the rows while streaming, after the scope closed.
        .using(scope.database)
    )
    if metadata_key:
        qs = qs.annotate(metadata_text=aggregates.MetadataText(metadata_key))
        qs = qs.filter(metadata_text__isnull=False)
        if metadata_value is not None:
            qs = qs.filter(metadata_text=metadata_value)
    return qs


def event_occurrences_pages(
    *,
    scope: ReportScope,
    custom_event: CustomEvent,
    fields: Sequence,
    metadata_key: str = "",
    metadata_value: str | None = None,
    page_size: int | None = None,
) -> Iterator[list[tuple]]:
    """All of the event's occurrences in the range (as event_occurrences_all), newest first, as pages of rows: the
    values of `fields` (field paths or expressions, as values_list takes them), then the occurrence's time (as
    text, see instant_from_text) and id.

    Each page is its own short statement, which continues after the previous page's last row (occurred_at, id): no
    transaction or cursor stays open while a slow client downloads, and every page reads one range of the
    (account, custom_event, occurred_at) index, so a page costs the same at the start and at the end of millions
    of rows. With a page's LIMIT the planner joins the contact and the visitor by their primary keys (nested loops)
    rather than hashing whole tables. The pages are read where the scope read (the replica or the primary),
    even after the scope closed."""
    qs = event_occurrences_all(
        scope=scope, custom_event=custom_event, metadata_key=metadata_key, metadata_value=metadata_value
    ).values_list(*fields, Cast("occurred_at", TextField()), "pk")
    page_size = page_size or EXPORT_PAGE
    connection = connections[scope.database]
    after = None
    while True:
        page = qs
        if after is not None:
            # The first condition alone is the index's range; the second leaves out what was read at that instant.
            page = qs.filter(Q(occurred_at__lt=after[0]) | Q(pk__lt=after[1]), occurred_at__lte=after[0])
        with transaction.atomic(using=scope.database):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    # A page is a cheap index range, but its estimated cost can pass jit_above_cost, and the
                    # planner may split it across parallel workers: compiling it takes longer than running it, and
                    # starting and merging workers for every page costs more than they save (measured: a third).
                    cursor.execute("SET LOCAL jit = off")
                    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            rows = list(page[:page_size])
        if rows:
            yield rows
        if len(rows) < page_size:
            return
        after = instant_from_text(rows[-1][-2]), rows[-1][-1]


def instant_from_text(text: str) -> datetime:
    """A time read as text (Cast to a TextField), which datetime.fromisoformat parses several times faster than
    Django's psycopg loader of timestamps (Python code). PostgreSQL writes the offset; SQLite stores UTC without."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _same_account(scope: ReportScope, custom_event: CustomEvent) -> None:
    if custom_event.account_id != scope.account.pk:
        raise ValueError("a report across accounts")
