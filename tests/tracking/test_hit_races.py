"""Concurrent hits on PostgreSQL through the ingester (two requests recording inline at once, or a request beside a
consumer while the queue is down).

Each test holds one hit's transaction open (as a slow request would between its writes and its commit) while a
second hit runs in another thread, then commits the first: the second hit must wait for it where they touch the same
rows, and then do what it would have done had it come after.
"""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections, transaction

from custom_events.models import CustomEvent
from tests.automations.services import require_services
from tests.factories import AccountFactory, CustomEventFactory
from tests.keys import impression_by_hit
from tracking.hits import Hit
from tracking.ingest import ingest
from tracking.items import HitItem
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
HOLD_SECONDS = 1.0


@pytest.fixture(autouse=True)
def postgresql():
    require_services(postgresql=True)


def record(*, account, hit: Hit, now: datetime) -> str:
    """Records one hit as a batch of its own, as a request does with no queue; returns its status."""
    (outcome,) = ingest([HitItem(account_id=account.pk, received_at=now, hit=hit)])
    return outcome.status


def page(n: int, visitor: str, **extra) -> Hit:
    return Hit(type="impression", id=f"imp-{n:07d}", visitor=visitor, url="https://acme.test/", **extra)


def while_held(first, second) -> tuple:
    """Runs first() in a transaction that stays open HOLD_SECONDS after it, and second() meanwhile in another
    thread; returns both results."""
    results = {}
    first_done = threading.Event()

    def run_first():
        try:
            with transaction.atomic():
                results["first"] = first()
                first_done.set()
                time.sleep(HOLD_SECONDS)
        finally:
            first_done.set()
            connections.close_all()

    def run_second():
        first_done.wait()
        try:
            results["second"] = second()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results.get("first"), results.get("second")


def test_a_late_hit_does_not_move_the_visits_last_activity_back():
    """A page view 10 minutes into a visit, and at the same moment a retried hit that happened at 5 minutes (the
    beacon's outbox sends it from the next page): the visit's last activity stays at 10 minutes, so the visit lasts
    30 minutes from there."""
    account = AccountFactory(domains=["acme.test"])
    record(account=account, hit=page(1, "visitor-aaaa"), now=T0)
    fresh = T0 + timedelta(minutes=10)

    statuses = while_held(
        lambda: record(account=account, hit=page(2, "visitor-aaaa"), now=fresh),
        lambda: record(account=account, hit=page(3, "visitor-aaaa", age_ms=5 * 60 * 1000, retry=True), now=fresh),
    )

    assert statuses == ("recorded", "recorded")
    assert Session.objects.get(account=account).last_seen_at == fresh
    record(account=account, hit=page(4, "visitor-aaaa"), now=fresh + timedelta(minutes=28))
    assert Session.objects.filter(account=account).count() == 1


def test_a_hit_id_two_new_visitors_send_at_once_is_recorded_once_with_nothing_else():
    account = AccountFactory(domains=["acme.test"])

    statuses = while_held(
        lambda: record(account=account, hit=page(1, "visitor-aaaa"), now=T0),
        lambda: record(account=account, hit=page(1, "visitor-bbbb"), now=T0),
    )

    assert statuses == ("recorded", "duplicate")
    assert list(Visitor.objects.filter(account=account).values_list("uid", flat=True)) == ["visitor-aaaa"]
    assert Contact.objects.filter(account=account).count() == 1
    assert Session.objects.filter(account=account).count() == 1
    assert Impression.objects.filter(account=account).count() == 1


def test_an_event_deleted_while_its_definition_is_cached_answers_unknown_event(client):
    """Another process deletes the definition: this process still has it in memory, the event's foreign key fails,
    and the hit gets the answer it would get a moment later (422, not retried) instead of a 503 retried for a day."""
    account = AccountFactory(domains=["acme.test"])
    event = CustomEventFactory(account=account, slug="requested-demo")

    def fire(n):
        hit = {"type": "event", "id": f"evt-{n:07d}", "visitor": "visitor-aaaa", "url": "https://acme.test/"}
        return client.post(
            f"/collect/{account.site_key}",
            data=json.dumps({**hit, "slug": "requested-demo"}),
            content_type="text/plain;charset=UTF-8",
            headers={"Origin": "https://acme.test"},
        )

    assert fire(1).status_code == 200
    # Not through the service, which would forget it here too: this process's memo keeps it. Its occurrences go
    # first, as its background delete removes them.
    EventRecord.objects.filter(account=account, custom_event=event).delete()
    CustomEvent.objects.filter(pk=event.pk).delete()

    response = fire(2)

    assert response.status_code == 422 and response.json()["code"] == "UNKNOWN_EVENT"
    assert not EventRecord.objects.filter(account=account).exists()
    assert RejectedHit.objects.filter(account=account, slug="requested-demo").count() == 1
    assert fire(3).status_code == 422  # refused at capture now: the stale copy is forgotten


def test_two_hits_after_a_timeout_start_one_visit():
    """Both find the visit timed out; the second waits for the first's new visit and continues it."""
    account = AccountFactory(domains=["acme.test"])
    record(account=account, hit=page(1, "visitor-aaaa"), now=T0)
    later = T0 + timedelta(minutes=45)
    landing = Hit(
        type="impression", id="imp-0000002", visitor="visitor-aaaa", url="https://acme.test/?utm_source=newsletter"
    )

    statuses = while_held(
        lambda: record(account=account, hit=landing, now=later),
        lambda: record(account=account, hit=page(3, "visitor-aaaa"), now=later + timedelta(seconds=1)),
    )

    assert statuses == ("recorded", "recorded")
    visits = list(Session.objects.filter(account=account).order_by("started_at"))
    assert len(visits) == 2 and visits[1].utm_source == "newsletter"
    assert set(impression_by_hit(hit_id).session_id for hit_id in ["imp-0000002", "imp-0000003"]) == {visits[1].pk}
    assert Visitor.objects.get(account=account).current_session_id == visits[1].pk


def test_concurrent_first_hits_of_one_visitor_give_one_visitor_and_one_visit():
    """Two requests each bring a new visitor's first hit, at once: the second waits on the first's visitor row, then
    is tried again and continues the first's visit."""
    account = AccountFactory(domains=["acme.test"])

    statuses = while_held(
        lambda: record(account=account, hit=page(1, "visitor-aaaa"), now=T0),
        lambda: record(account=account, hit=page(2, "visitor-aaaa"), now=T0 + timedelta(seconds=1)),
    )

    assert statuses == ("recorded", "recorded")
    assert Visitor.objects.filter(account=account).count() == 1
    assert Contact.objects.filter(account=account).count() == 1
    assert Session.objects.filter(account=account).count() == 1
    assert Impression.objects.filter(account=account).values("session_id").distinct().count() == 1
