"""Unique people are HyperLogLog estimates: within the error docs/reporting.md states, exact for small counts and
zero for an empty range, from the rollups and from raw rows alike (SQLite and PostgreSQL)."""

import random
from datetime import date, timedelta

import pytest
from django.utils import timezone

from automations.reports import aggregates, selectors
from automations.reports.services import day_bounds, report_rollups_update
from tests.factories import AccountFactory, CustomEventFactory
from tracking.models import Contact, EventRecord

pytestmark = pytest.mark.django_db

# docs/reporting.md: ±4.7% at 99.7% (three standard errors of lg_k 12). The data is fixed, so the estimate is too;
# the widest documented bound keeps the test about the contract, not one hash layout.
BOUND = 0.047
FIRST = date(2026, 1, 1)


def _history(*, people=3000, days=30, seed=7):
    """`people` contacts firing one event on random days of January 2026: (account, event, exact per range)."""
    rng = random.Random(seed)
    account = AccountFactory(time_zone="UTC")
    event = CustomEventFactory(account=account, slug="watched-video")
    contacts = Contact.objects.bulk_create([Contact(account=account, email=f"p{i}@example.com") for i in range(people)])
    records, by_day = [], {}
    for contact in contacts:
        for _ in range(rng.randint(1, 4)):
            day = FIRST + timedelta(days=rng.randrange(days))
            at = day_bounds(day, day, account.tzinfo)[0] + timedelta(minutes=rng.randrange(1440))
            records.append(
                EventRecord(account=account, custom_event=event, contact=contact, source="api", occurred_at=at)
            )
            by_day.setdefault(day, set()).add(contact.pk)
    EventRecord.objects.bulk_create(records, batch_size=2000)
    return account, event, by_day


def _exact(by_day, start, end):
    return len(set().union(*(ids for day, ids in by_day.items() if start <= day <= end)))


def _estimate(account, event, start, end):
    with selectors.report_scope(account=account, start=start, end=end) as scope:
        figures = selectors.event_figures(scope=scope, custom_event=event)
        _rows, overall = selectors.event_overview(scope=scope)
    assert overall.unique_contacts == figures.unique_contacts  # one event: the same union
    return figures.unique_contacts


@pytest.mark.parametrize("rolled", [False, True], ids=["raw rows", "rollups"])
def test_unique_contacts_are_within_the_documented_error(rolled):
    account, event, by_day = _history()
    if rolled:
        run = report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        assert run.accounts_rebuilt == [account.pk]
    for start, end in [(FIRST, FIRST + timedelta(days=29)), (FIRST + timedelta(days=3), FIRST + timedelta(days=9))]:
        exact = _exact(by_day, start, end)
        assert exact > 1000
        estimate = _estimate(account, event, start, end)
        assert abs(estimate - exact) <= BOUND * exact, (start, end, estimate, exact)


def test_small_ranges_are_exact_and_empty_ranges_zero():
    account, event, by_day = _history(people=150)
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    day = FIRST + timedelta(days=5)
    assert _estimate(account, event, day, day) == len(by_day[day])
    assert _estimate(account, event, FIRST, FIRST + timedelta(days=29)) == _exact(by_day, FIRST, date(2026, 1, 30))
    assert _estimate(account, event, date(2026, 6, 1), date(2026, 6, 30)) == 0


def test_a_stored_sketch_merged_with_new_ids_counts_an_id_once():
    ids = list(range(1, 5001))
    merged = aggregates.sketch_pack(ids[2500:], into=aggregates.sketch_pack(ids[:2600]))
    assert abs(aggregates.sketch_estimate(merged) - 5000) <= BOUND * 5000
    # Adding ids already in a sketch changes nothing: a rollup run that rereads a row cannot count it twice.
    assert aggregates.sketch_pack(ids[:100], into=merged) == merged
    small = aggregates.sketch_pack([1, 2, 3], into=aggregates.sketch_pack([3, 4]))
    assert aggregates.sketch_estimate(small) == 4
    assert aggregates.sketch_estimate(b"") == 0
