"""Monthly partitions of the raw tables (tracking.partitions) and the keys that keep recording exactly-once across
them (tracking.models.RecordedKey)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.automations.services import require_services
from tests.factories import CustomEventFactory, SessionFactory, VisitorFactory
from tests.keys import row_key
from tracking.hits import Hit
from tracking.ingest import ingest
from tracking.items import HitItem
from tracking.models import EventRecord, Impression, RecordedKey, Session
from tracking.partitions import (
    PARTITIONED,
    month_next,
    partition_months,
    partition_name,
    partitions_maintain,
    recorded_keys_prune,
)

pytestmark = pytest.mark.django_db

NEW_YEAR = datetime(2027, 1, 1, tzinfo=UTC)


def send(account, *, at: datetime, retry: bool = False, age_ms: int = 0, **fields) -> str:
    (outcome,) = ingest([HitItem(account_id=account.pk, received_at=at, hit=Hit(retry=retry, age_ms=age_ms, **fields))])
    return outcome.status


def rows_in(table: str, month: date) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(partition_name(table, month))}")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("kind", ["impression", "event"])
def test_a_hit_and_its_retry_across_a_month_boundary_are_recorded_once(account, kind):
    # given: a hit sent a second before the new year, and its retry (the answer was lost) two seconds after it:
    # within the beacon's clock tolerance, so the retry's time falls in the next month
    CustomEventFactory(account=account, slug="requested-demo")
    partitions_maintain(now=NEW_YEAR - timedelta(days=1))
    hit = {"type": kind, "id": "hit-0000001", "visitor": "visitor-0001", "url": "https://acme.test/"}
    if kind == "event":
        hit["slug"] = "requested-demo"

    # when
    first = send(account, at=NEW_YEAR - timedelta(seconds=1), **hit)
    retry = send(account, at=NEW_YEAR + timedelta(seconds=2), retry=True, age_ms=3000, **hit)

    # then: one row, in December; the retry is answered as a duplicate
    assert (first, retry) == ("recorded", "duplicate")
    model = Impression if kind == "impression" else EventRecord
    (row,) = model.objects.filter(account=account)
    assert row.occurred_at == NEW_YEAR - timedelta(seconds=1)
    assert row_key(row) == ("page:" if kind == "impression" else "beacon:") + "hit-0000001"
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        assert (rows_in(table, date(2026, 12, 1)), rows_in(table, date(2027, 1, 1))) == (1, 0)


def test_the_same_hit_id_in_another_account_is_its_own_hit(account, other_account):
    hit = {"type": "impression", "id": "hit-0000001", "visitor": "visitor-0001", "url": "https://acme.test/"}

    assert send(account, at=NEW_YEAR, **hit) == "recorded"
    assert send(other_account, at=NEW_YEAR, **hit) == "recorded"
    assert send(other_account, at=NEW_YEAR, **hit) == "duplicate"

    assert Impression.objects.count() == 2


def test_expired_keys_are_deleted_and_recent_ones_kept(account, settings):
    settings.INGEST_KEY_DAYS = 7
    now = timezone.now()
    RecordedKey.objects.create(account=account, key="page:old", created_at=now - timedelta(days=8))
    RecordedKey.objects.create(account=account, key="page:new", created_at=now - timedelta(days=6))

    assert recorded_keys_prune(now=now) == 1

    assert list(RecordedKey.objects.values_list("key", flat=True)) == ["page:new"]


def test_partitions_are_created_ahead_for_every_raw_table():
    require_services(postgresql=True)
    now = datetime(2031, 11, 20, tzinfo=UTC)

    created = partitions_maintain(now=now)

    months = [date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1), date(2032, 2, 1)]
    assert sorted(created) == sorted(partition_name(table, month) for table in PARTITIONED for month in months)
    for table in PARTITIONED:
        assert set(months) <= set(partition_months(table))
    assert partitions_maintain(now=now) == []  # nothing twice


def test_a_month_that_reached_the_default_partition_gets_its_own(account):
    # given: visits in a month without a partition (after the oldest one), which the default partition took
    require_services(postgresql=True)
    partitions_maintain(now=timezone.now())
    month = month_next(month_next(month_next(month_next(month_next(partition_months("tracking_session")[-1])))))
    visitor = VisitorFactory(account=account)
    at = datetime(month.year, month.month, 10, tzinfo=UTC)
    visits = [SessionFactory(visitor=visitor, started_at=at + timedelta(hours=n), last_seen_at=at) for n in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracking_session_default")
        assert cursor.fetchone()[0] == 3

    # when
    created = partitions_maintain(now=timezone.now())

    # then: the month has its partition, holding the rows, and the default partition is empty
    assert partition_name("tracking_session", month) in created
    assert rows_in("tracking_session", month) == 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracking_session_default")
        assert cursor.fetchone()[0] == 0
    assert set(Session.objects.values_list("pk", flat=True)) == {v.pk for v in visits}


def test_the_command_lists_and_creates_partitions(capsys):
    require_services(postgresql=True)

    call_command("partitions", "--from", "2029-01-01", "--to", "2029-03-31")
    call_command("partitions", "--list")

    out = capsys.readouterr().out
    assert "partitions created" in out and partition_name("tracking_eventrecord", date(2029, 2, 1)) in out
    assert {date(2029, 1, 1), date(2029, 2, 1), date(2029, 3, 1)} <= set(partition_months("tracking_eventrecord"))
    assert "tracking_eventrecord:" in out
