"""Adding new raw rows into the stored daily rollups, so that a rollup run costs what is new, not what the account
holds.

Every rollup figure is mergeable: fires, conversions and breakdown counts add up, and the HyperLogLog sketches of
unique people merge (a row read twice cannot count a person twice; a count can, which is why the caller never
folds a row twice: it folds the rows between two watermarks, and rebuilds from the raw rows any day it cannot
vouch for). The metadata cap (the most used keys and values per event and day) is applied again after each fold:
values that fall out of a key's top list are summed into "(other values)".

Every function reads and writes one account's rows only, and only the days the new rows fall on.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import reduce
from operator import or_

from django.db.models import Q

from automations.models import EventDailyBreakdown, EventDailyRollup, TrafficDailyRollup
from paminga.models import Account
from tracking.models import EventRecord, Impression, Session

from . import aggregates

BULK_SIZE = 2000
METADATA = EventDailyBreakdown.Dimension.METADATA


@dataclass
class Folded:
    rows: int = 0
    days: set = None

    def __post_init__(self):
        self.days = set() if self.days is None else self.days


def account_fold(
    *, account: Account, after: dict[str, int], upto: dict[str, int], keep: Callable[[date], bool]
) -> Folded:
    """Adds the account's rows with an id in (after, upto] of each raw table to its rollups, but for the rows on
    days `keep` refuses (days rebuilt from the raw rows in the same run, days before the retention horizon)."""
    tz = account.tzinfo
    folded = Folded()
    events = EventRecord.objects.filter(account=account, id__gt=after["events"], id__lte=upto["events"])
    totals = {key: counts for key, counts in aggregates.events_totals(events, tz=tz).items() if keep(key[1])}
    if totals:
        folded.rows += sum(counts[0] for counts in totals.values())
        folded.days.update(day for _event, day in totals)
        _event_days_fold(account, totals, aggregates.events_people(events, tz=tz))
        _breakdowns_fold(account, aggregates.events_by_dimensions(events, tz=tz), keep)
        _metadata_fold(account, aggregates.events_metadata(events, tz=tz), keep)

    impressions = Impression.objects.filter(account=account, id__gt=after["impressions"], id__lte=upto["impressions"])
    sessions = Session.objects.filter(account=account, id__gt=after["sessions"], id__lte=upto["sessions"])
    for dimension, counts in (
        (TrafficDailyRollup.Dimension.PAGE_VIEWS, aggregates.page_views(impressions, tz=tz)),
        (TrafficDailyRollup.Dimension.VISITS, aggregates.visits(sessions, tz=tz)),
    ):
        counts = {key: n for key, n in counts.items() if keep(key[0])}
        if counts:
            folded.rows += sum(counts.values())
            folded.days.update(day for day, _value in counts)
            _traffic_fold(account, dimension, counts)
    return folded


def _rows_replace(model, created: list, updated: list) -> None:
    """Writes new rows and rows whose figures changed. Changed rows are deleted and inserted again: two set-based
    statements, where Django's bulk_update builds a CASE per row and column (about ten times slower here). Nothing
    refers to a rollup row's id, and the caller's transaction (under the watermarks' lock) makes it one change."""
    if updated:
        model.objects.filter(pk__in=[row.pk for row in updated]).delete()
        for row in updated:
            row.pk = None
    model.objects.bulk_create([*created, *updated], batch_size=BULK_SIZE)


def _event_days_fold(account: Account, totals: dict, people: dict) -> None:
    days = {day for _event, day in totals}
    event_ids = {event_id for event_id, _day in totals}
    existing = {
        (row.custom_event_id, row.day): row
        for row in EventDailyRollup.objects.filter(account=account, day__in=days, custom_event_id__in=event_ids)
    }
    created, updated = [], []
    for key, (fires, conversions, attributed) in totals.items():
        contacts, visitors = people.get(key, ((), ()))
        row = existing.get(key)
        if row is None:
            created.append(
                EventDailyRollup(
                    account=account,
                    custom_event_id=key[0],
                    day=key[1],
                    fires=fires,
                    conversions=conversions,
                    attributed=attributed,
                    contact_sketch=aggregates.sketch_pack(contacts),
                    visitor_sketch=aggregates.sketch_pack(visitors),
                )
            )
            continue
        row.fires += fires
        row.conversions += conversions
        row.attributed += attributed
        row.contact_sketch = aggregates.sketch_pack(contacts, into=row.contact_sketch)
        row.visitor_sketch = aggregates.sketch_pack(visitors, into=row.visitor_sketch)
        updated.append(row)
    _rows_replace(EventDailyRollup, created, updated)


def _breakdowns_fold(account: Account, by_dimension: dict[str, dict], keep) -> None:
    deltas = {
        (event_id, day, dimension, value): counts
        for dimension, counts_by_key in by_dimension.items()
        for (event_id, day, value), counts in counts_by_key.items()
        if keep(day)
    }
    if not deltas:
        return
    # Only the rows of the values the new rows carry: a day's pages can be many, its new values are few.
    values = defaultdict(set)
    for _event, _day, dimension, value in deltas:
        values[dimension].add(value)
    existing = {}
    rows = EventDailyBreakdown.objects.filter(
        reduce(or_, (Q(dimension=d, value__in=v) for d, v in values.items())),
        account=account,
        day__in={key[1] for key in deltas},
        custom_event_id__in={key[0] for key in deltas},
        key="",
    )
    for row in rows:
        existing.setdefault((row.custom_event_id, row.day, row.dimension, row.value), row)
    _counts_apply(
        EventDailyBreakdown,
        existing,
        deltas,
        lambda key, counts: EventDailyBreakdown(
            account=account,
            custom_event_id=key[0],
            day=key[1],
            dimension=key[2],
            value=key[3],
            fires=counts[0],
            conversions=counts[1],
        ),
    )


def _counts_apply(model, existing: dict, deltas: dict, make) -> None:
    created, updated = [], []
    for key, counts in deltas.items():
        row = existing.get(key)
        if row is None:
            created.append(make(key, counts))
        else:
            row.fires += counts[0]
            row.conversions += counts[1]
            updated.append(row)
    _rows_replace(model, created, updated)


def _metadata_fold(account: Account, delta: dict, keep) -> None:
    """Metadata rows are capped per event and day: the day's stored rows and the new counts are added up, capped
    again, and the day's rows replaced (at most METADATA_KEYS_PER_EVENT × (METADATA_VALUES_PER_KEY + 1) rows)."""
    combined: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    for (event_id, day, key, value), (fires, conversions) in delta.items():
        if keep(day):
            counts = combined[(event_id, day)][key][value]
            counts[0] += fires
            counts[1] += conversions
    if not combined:
        return
    stored = EventDailyBreakdown.objects.filter(
        account=account,
        dimension=METADATA,
        day__in={day for _event, day in combined},
        custom_event_id__in={event_id for event_id, _day in combined},
    )
    replaced = []
    for row in stored:
        if (row.custom_event_id, row.day) in combined:
            counts = combined[(row.custom_event_id, row.day)][row.key][row.value]
            counts[0] += row.fires
            counts[1] += row.conversions
            replaced.append(row.pk)
    created = []
    for (event_id, day), keys in combined.items():
        for key, value, (fires, conversions) in _metadata_recap(keys):
            created.append(
                EventDailyBreakdown(
                    account=account,
                    custom_event_id=event_id,
                    day=day,
                    dimension=METADATA,
                    key=key,
                    value=value,
                    fires=fires,
                    conversions=conversions,
                )
            )
    EventDailyBreakdown.objects.filter(pk__in=replaced).delete()
    EventDailyBreakdown.objects.bulk_create(created, batch_size=BULK_SIZE)


def _metadata_recap(keys: dict) -> list[tuple[str, str, list[int]]]:
    """The cap of aggregates.events_metadata, on counts that may already hold an OTHER sum: the most used keys,
    and per key the most frequent values, the rest (and the earlier OTHER) summed into OTHER."""
    totals = sorted(((sum(c[0] for c in values.values()), key) for key, values in keys.items()), reverse=True)
    result = []
    for _total, key in totals[: aggregates.METADATA_KEYS_PER_EVENT]:
        values = dict(keys[key])
        other = list(values.pop(aggregates.OTHER, [0, 0]))
        ranked = sorted(values.items(), key=lambda vc: (-vc[1][0], vc[0]))
        result.extend((key, value, counts) for value, counts in ranked[: aggregates.METADATA_VALUES_PER_KEY])
        for _value, counts in ranked[aggregates.METADATA_VALUES_PER_KEY :]:
            other[0] += counts[0]
            other[1] += counts[1]
        if other[0] or other[1]:
            result.append((key, aggregates.OTHER, other))
    return result


def _traffic_fold(account: Account, dimension: str, counts: dict) -> None:
    existing = {}
    rows = TrafficDailyRollup.objects.filter(
        account=account,
        dimension=dimension,
        day__in={day for day, _value in counts},
        value__in={value for _day, value in counts},
    )
    for row in rows:
        existing.setdefault((row.day, row.value), row)
    created, updated = [], []
    for (day, value), n in counts.items():
        row = existing.get((day, value))
        if row is None:
            created.append(TrafficDailyRollup(account=account, day=day, dimension=dimension, value=value, count=n))
        else:
            row.count += n
            updated.append(row)
    _rows_replace(TrafficDailyRollup, created, updated)
