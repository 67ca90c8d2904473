import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

from automations.models import ReportAccountRollup
from automations.reports import seed
from tracking.models import Contact, EventRecord, Impression, Session, Visitor

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_seed_demo_data_writes_a_consistent_history(account):
    out = run("seed_demo_data", "--events", "600", "--days", "10", "--account", "acme", "--seed", "7")

    records = EventRecord.objects.filter(account=account)
    assert records.count() == 600
    assert "Wrote 600 events" in out and "Report rollups up to date" in out
    assert ReportAccountRollup.objects.filter(account=account).exists()
    assert set(account.custom_events.values_list("slug", flat=True)) == {slug for _n, slug, *_ in seed.CATALOGUE}
    # Every row belongs to the account.
    for model in (Contact, Visitor, Session, Impression):
        assert model.objects.exclude(account=account).count() == 0
    # Ten local days up to now.
    span = records.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    assert span["last"] - span["first"] < timedelta(days=10)
    # Beacon events come with their visit, API events with neither visitor nor visit.
    assert records.filter(source="beacon", session__isnull=True).count() == 0
    assert records.filter(source="api").exclude(visitor__isnull=True, session__isnull=True).count() == 0
    assert records.filter(source="api").count() > 0
    # Visits have page views; a conversion is attributed to the latest page view of its visit at that moment.
    assert Session.objects.filter(account=account).annotate(n=Count("impressions")).filter(n=0).count() == 0
    conversions = records.filter(is_conversion=True, source="beacon")
    assert conversions.count() > 0
    assert conversions.filter(attributed_impression__isnull=True).count() == 0
    latest = Impression.objects.filter(session=OuterRef("session"), occurred_at__lte=OuterRef("occurred_at")).order_by(
        "-occurred_at", "-id"
    )
    mismatched = conversions.exclude(attributed_impression=Subquery(latest.values("pk")[:1]))
    assert mismatched.count() == 0
    assert records.filter(is_conversion=False, attributed_impression__isnull=False).count() == 0
    # visited-pricing-page only began to count as a conversion part-way through.
    pricing = records.filter(custom_event__slug="visited-pricing-page")
    assert pricing.filter(is_conversion=False).exists() and pricing.filter(is_conversion=True).exists()
    first_conversion = pricing.filter(is_conversion=True).aggregate(m=Min("occurred_at"))["m"]
    assert not pricing.filter(is_conversion=False, occurred_at__gt=first_conversion).exists()
    # Metadata a real integration sends, and dropped metadata flagged.
    assert records.filter(custom_event__slug="watched-product-video", metadata__has_key="videoTitle").exists()
    assert records.filter(metadata_dropped=True).exclude(metadata__isnull=True).count() == 0
    assert records.filter(Q(metadata_dropped=True) & Q(metadata_bytes__lte=4096)).count() == 0


def test_the_same_seed_writes_the_same_history(account, other_account):
    end = timezone.now()
    for a in (account, other_account):
        result = seed.demo_history_create(account=a, events=150, days=3, random_seed=3, end=end)
        assert result.events == 150

    def shape(a):
        return list(
            EventRecord.objects.filter(account=a)
            .order_by("pk")
            .values_list("custom_event__slug", "source", "is_conversion", "marketing_channel", "utm_campaign")
        )

    assert shape(account) == shape(other_account)


def test_seed_demo_data_refuses_bad_input(account):
    with pytest.raises(CommandError, match="No account with the slug “nope”"):
        run("seed_demo_data", "--events", "10", "--account", "nope")
    with pytest.raises(CommandError, match="--events must be between 1 and 50,000,000"):
        run("seed_demo_data", "--events", "0", "--account", "acme")
    with pytest.raises(CommandError, match="--days must be between 1 and 3650"):
        run("seed_demo_data", "--events", "10", "--days", "0", "--account", "acme")
    assert EventRecord.objects.count() == 0


def test_seed_demo_seeds_a_history_once():
    first = run("seed_demo")
    count = EventRecord.objects.filter(account__slug="demo").count()
    second = run("seed_demo")

    assert count == 3000 and "Seeded a report history: 3,000 events" in first
    assert "Seeded" not in second
    assert EventRecord.objects.filter(account__slug="demo").count() == 3000
    assert ReportAccountRollup.objects.filter(account__slug="demo").exists()


def test_seed_demo_without_history():
    run("seed_demo", "--no-history")
    assert EventRecord.objects.count() == 0


def test_seeded_contacts_and_visitors_are_created_before_their_history(account):
    # given a history whose last day is well before now
    end = timezone.now() - timedelta(days=30)
    seed.demo_history_create(account=account, events=300, days=20, random_seed=5, end=end)

    # then no contact or visitor carries the seeding time, and each existed before its first event
    contacts = Contact.objects.filter(account=account)
    assert contacts.count() > 0
    assert contacts.filter(created_at__gt=end).count() == 0
    assert Visitor.objects.filter(account=account, created_at__gt=end).count() == 0
    first_event = EventRecord.objects.filter(contact=OuterRef("pk")).order_by("occurred_at").values("occurred_at")[:1]
    with_events = contacts.annotate(first=Subquery(first_event)).exclude(first=None)
    assert with_events.count() > 0
    assert [c.pk for c in with_events if c.created_at > c.first] == []
    # and the events keep their own creation times, a moment after they occurred
    records = EventRecord.objects.filter(account=account)
    assert [r.pk for r in records if not r.occurred_at <= r.created_at <= r.occurred_at + timedelta(seconds=1)] == []
