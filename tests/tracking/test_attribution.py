"""Visit and attribution rules, with the clock under the test's control: each hit is handed to the ingester with an
explicit arrival time, one batch per hit (test_ingest_batches.py checks that batching changes nothing)."""

from datetime import UTC, datetime, timedelta

import pytest

from custom_events.services import custom_event_update
from tests.factories import CustomEventFactory
from tests.keys import impression_by_hit, recorded_by_key
from tracking.hits import Hit
from tracking.ingest import HIT_CLOCK_TOLERANCE, hit_occurred_at, ingest
from tracking.items import HitItem
from tracking.models import EventRecord, Impression, Session, Visitor

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def send(account, *, at: datetime, **fields) -> None:
    (outcome,) = ingest([HitItem(account_id=account.pk, received_at=at, hit=Hit(**fields))])
    assert outcome.status == "recorded", outcome


def page_view(account, *, at: datetime, url: str, uid: str = "visitor-0001") -> Impression:
    hit_id = f"imp-{at.timestamp():.0f}-{url[-8:]}".replace("/", "_").replace("?", "_").replace("=", "_")
    send(account, at=at, type="impression", id=hit_id[:64], visitor=uid, url=url)
    return impression_by_hit(hit_id[:64])


def fire(account, slug: str, *, at: datetime, uid: str = "visitor-0001", hit_id: str | None = None) -> EventRecord:
    hit_id = hit_id or f"evt-{at.timestamp():.0f}"
    send(account, at=at, type="event", id=hit_id, visitor=uid, url="https://acme.test/x", slug=slug)
    return recorded_by_key(EventRecord, f"beacon:{hit_id}")


@pytest.fixture
def conversion(account):
    return CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)


def test_two_impressions_in_the_visit_the_latest_wins(account, conversion):
    page_view(account, at=T0, url="https://acme.test/")
    pricing = page_view(account, at=T0 + minutes(2), url="https://acme.test/pricing")

    record = fire(account, "requested-demo", at=T0 + minutes(3))

    assert record.is_conversion and record.attributed_impression == pricing
    assert Session.objects.count() == 1


def test_no_impression_in_the_current_visit_attributes_nothing(account, conversion):
    page_view(account, at=T0, url="https://acme.test/")

    # 31 minutes without activity: the visit has ended, and the old page view belongs to the old visit.
    record = fire(account, "requested-demo", at=T0 + minutes(31))

    assert record.is_conversion and record.attributed_impression is None
    assert Session.objects.count() == 2 and record.session != Impression.objects.get().session


def test_activity_within_the_timeout_keeps_the_visit_open(account, conversion):
    home = page_view(account, at=T0, url="https://acme.test/")
    fire(account, "requested-demo", at=T0 + minutes(29), hit_id="evt-keepalive")

    record = fire(account, "requested-demo", at=T0 + minutes(58))

    assert record.attributed_impression == home and Session.objects.count() == 1


def test_timeout_is_the_accounts_setting(account, conversion):
    account.session_timeout_minutes = 10
    account.save()
    page_view(account, at=T0, url="https://acme.test/")

    record = fire(account, "requested-demo", at=T0 + minutes(11))

    assert record.attributed_impression is None and Session.objects.count() == 2


def test_arriving_from_another_campaign_starts_a_new_visit(account, conversion):
    page_view(account, at=T0, url="https://acme.test/?utm_source=news&utm_campaign=spring")
    summer = page_view(account, at=T0 + minutes(5), url="https://acme.test/?utm_source=news&utm_campaign=summer")
    inside = page_view(account, at=T0 + minutes(6), url="https://acme.test/pricing")

    record = fire(account, "requested-demo", at=T0 + minutes(7))

    assert Session.objects.count() == 2
    assert summer.session == inside.session == record.session and record.session.utm_campaign == "summer"
    assert record.attributed_impression == inside and record.utm_campaign == "summer"


def test_the_same_campaign_again_continues_the_visit(account, conversion):
    page_view(account, at=T0, url="https://acme.test/?utm_source=news&utm_campaign=spring")
    page_view(account, at=T0 + minutes(5), url="https://acme.test/b?utm_source=news&utm_campaign=spring")

    assert Session.objects.count() == 1


def test_impressions_of_another_visitor_are_never_attributed(account, conversion):
    page_view(account, at=T0, url="https://acme.test/", uid="someone-else")

    record = fire(account, "requested-demo", at=T0 + minutes(1))

    assert record.attributed_impression is None


def test_an_event_that_is_not_a_conversion_is_not_attributed(account):
    CustomEventFactory(account=account, slug="watched-product-video", counts_as_conversion=False)
    page_view(account, at=T0, url="https://acme.test/")

    record = fire(account, "watched-product-video", at=T0 + minutes(1))

    assert not record.is_conversion and record.attributed_impression is None


def test_conversion_flag_is_a_snapshot(account, conversion):
    page_view(account, at=T0, url="https://acme.test/")
    before = fire(account, "requested-demo", at=T0 + minutes(1))

    custom_event_update(custom_event=conversion, counts_as_conversion=False)
    after = fire(account, "requested-demo", at=T0 + minutes(2))

    before.refresh_from_db()
    assert before.is_conversion and before.attributed_impression is not None
    assert not after.is_conversion and after.attributed_impression is None


def test_impression_after_the_event_time_is_not_attributed(account, conversion):
    # A late (back-dated) event is attributed as of when it happened, not to pages seen since.
    first = page_view(account, at=T0, url="https://a.test/1")
    page_view(account, at=T0 + minutes(5), url="https://a.test/2")

    record = fire(account, "requested-demo", at=T0 + minutes(2))

    assert record.attributed_impression == first


def test_a_late_hit_joins_the_visit_that_was_open_when_it_happened(account):
    morning = page_view(account, at=T0, url="https://a.test/morning").session
    afternoon = page_view(account, at=T0 + timedelta(hours=5), url="https://a.test/afternoon").session

    late = page_view(account, at=T0 + minutes(10), url="https://a.test/late").session
    later = page_view(account, at=T0 + timedelta(hours=5, minutes=20), url="https://a.test/later").session

    assert late == morning != afternoon == later


def test_a_hit_is_stamped_with_server_time_unless_it_is_late():
    now = T0 + timedelta(hours=1)

    assert hit_occurred_at(age_ms=0, now=now) == now
    assert hit_occurred_at(age_ms=int(HIT_CLOCK_TOLERANCE.total_seconds() * 1000), now=now) == now
    assert hit_occurred_at(age_ms=90_000, now=now) == now - timedelta(seconds=90)


def test_a_new_visit_moves_the_visitors_last_seen(account):
    page_view(account, at=T0 + minutes(1), url="https://a.test/1")
    page_view(account, at=T0 + minutes(2), url="https://a.test/2")

    assert Visitor.objects.get().last_seen_at == T0 + minutes(1)
    assert Session.objects.get().last_seen_at == T0 + minutes(2)


def test_last_activity_is_the_latest_hit(account):
    page_view(account, at=T0, url="https://a.test/1")
    page_view(account, at=T0 + timedelta(seconds=50), url="https://a.test/2")

    assert Session.objects.get().last_seen_at == T0 + timedelta(seconds=50)


def test_a_late_hit_never_moves_last_activity_back(account):
    page_view(account, at=T0 + minutes(10), url="https://a.test/1")
    page_view(account, at=T0 + minutes(20), url="https://a.test/2")
    page_view(account, at=T0 + minutes(15), url="https://a.test/late")

    assert Session.objects.get().last_seen_at == T0 + minutes(20)


def test_the_visitor_points_at_its_latest_visit_and_a_late_hit_does_not_move_it(account):
    afternoon = page_view(account, at=T0 + timedelta(hours=5), url="https://a.test/pm").session

    # A late hit from the morning, when no visit was open: a visit of its own, in the past.
    morning = page_view(account, at=T0, url="https://a.test/am").session

    visitor = Visitor.objects.get()
    assert morning != afternoon and visitor.current_session == afternoon
    assert visitor.last_seen_at == T0 + timedelta(hours=5)
    assert page_view(account, at=T0 + timedelta(hours=5, minutes=10), url="https://a.test/pm2").session == afternoon
