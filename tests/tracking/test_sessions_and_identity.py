from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ContactFactory, CustomEventFactory
from tests.keys import impression_by_hit
from tracking.hits import Hit
from tracking.ingest import event_record, ingest
from tracking.items import HitItem
from tracking.models import Contact, ContactTag, EventRecord, Session, Visitor
from tracking.services import contact_identify

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0)


def visit_of(account, *, at, uid: str = "v-1", url: str = "https://acme.test/") -> Session:
    """The visit a page view at `at` is recorded in (through the ingester, one batch per hit)."""
    hit = Hit(type="impression", id=f"imp-{uid}-{at.timestamp():.0f}", visitor=uid, url=url)
    (outcome,) = ingest([HitItem(account_id=account.pk, received_at=at, hit=hit)])
    assert outcome.status == "recorded"
    return impression_by_hit(hit.id).session


def visitor_of(account, *, uid: str = "v-1") -> Visitor:
    visit_of(account, at=T0 - timedelta(days=1), uid=uid)
    return Visitor.objects.select_related("contact").get(account=account, uid=uid)


def test_new_visitor_gets_an_anonymous_contact_and_is_reused(account):
    visit_of(account, at=T0)
    visit_of(account, at=T0 + timedelta(minutes=1))

    visitor = Visitor.objects.get()
    assert visitor.contact.email is None and visitor.contact.account == account
    assert (Visitor.objects.count(), Contact.objects.count()) == (1, 1)


def test_session_continues_within_timeout_and_ends_after_it(account):
    first = visit_of(account, at=T0)
    same = visit_of(account, at=T0 + timedelta(minutes=29))
    # 30 minutes after the last activity (T0+29) is still within the timeout
    still = visit_of(account, at=T0 + timedelta(minutes=59))
    new = visit_of(account, at=T0 + timedelta(minutes=89, seconds=1))

    assert first.pk == same.pk == still.pk
    assert new.pk != first.pk
    assert Session.objects.get(pk=first.pk).last_seen_at == T0 + timedelta(minutes=59)


def test_session_timeout_is_per_account(account):
    account.session_timeout_minutes = 5
    account.save()

    first = visit_of(account, at=T0)
    later = visit_of(account, at=T0 + timedelta(minutes=6))

    assert later.pk != first.pk


def test_a_different_campaign_starts_a_new_session_and_no_utm_continues(account):
    spring = "https://acme.test/?utm_source=newsletter&utm_campaign=spring"

    first = visit_of(account, at=T0, url=spring)
    inside = visit_of(account, at=T0 + timedelta(minutes=1))
    same_campaign = visit_of(account, at=T0 + timedelta(minutes=2), url=spring)
    other = visit_of(account, at=T0 + timedelta(minutes=3), url="https://acme.test/?utm_source=ads&utm_campaign=x")

    assert first.pk == inside.pk == same_campaign.pk
    assert other.pk != first.pk and other.utm_campaign == "x"


def test_identify_anonymous_visitor_as_new_contact_keeps_its_history(account):
    visitor = visitor_of(account)
    event = CustomEventFactory(account=account)
    record, _ = event_record(account=account, custom_event=event, contact=visitor.contact, source="beacon")

    contact = contact_identify(account=account, visitor=visitor, email="Ada@Example.com")

    assert contact.pk == record.contact_id and contact.email == "ada@example.com"
    assert Contact.objects.count() == 1


def test_identify_as_existing_contact_merges_the_anonymous_history(account):
    known = ContactFactory(account=account, email="ada@example.com", score=5, fields={"plan": "pro"})
    visitor = visitor_of(account)
    anonymous = visitor.contact
    anonymous.score, anonymous.fields = 2, {"plan": "free", "city": "Paris"}
    anonymous.save()
    ContactTag.objects.create(contact=anonymous, name="video")
    event = CustomEventFactory(account=account)
    event_record(account=account, custom_event=event, contact=anonymous, source="beacon")

    contact = contact_identify(account=account, visitor=visitor, email="ADA@example.com")

    assert contact.pk == known.pk
    assert not Contact.objects.filter(pk=anonymous.pk).exists()
    assert Visitor.objects.get(pk=visitor.pk).contact_id == known.pk
    assert EventRecord.objects.get().contact_id == known.pk
    known.refresh_from_db()
    assert known.score == 7 and known.fields == {"plan": "pro", "city": "Paris"}
    assert list(known.tags.values_list("name", flat=True)) == ["video"]


def test_identify_is_scoped_to_the_account(account, other_account):
    ContactFactory(account=other_account, email="ada@example.com")
    visitor = visitor_of(account)

    contact = contact_identify(account=account, visitor=visitor, email="ada@example.com")

    assert contact.account == account
    assert Contact.objects.filter(email="ada@example.com").count() == 2
