from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ContactFactory, CustomEventFactory
from tracking.models import Contact, ContactTag, EventRecord, Session, Visitor
from tracking.services import contact_identify, event_record, session_for_hit, visitor_get_or_create

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0)


def test_new_visitor_gets_an_anonymous_contact_and_is_reused(account):
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)
    again = visitor_get_or_create(account=account, uid="v-1", now=T0)

    assert again.pk == visitor.pk
    assert visitor.contact.email is None and visitor.contact.account == account
    assert (Visitor.objects.count(), Contact.objects.count()) == (1, 1)


def test_session_continues_within_timeout_and_ends_after_it(account):
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)

    first = session_for_hit(account=account, visitor=visitor, now=T0)
    same = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=29))
    # 30 minutes after the last activity (T0+29) is still within the timeout
    still = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=59))
    new = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=89, seconds=1))

    assert first.pk == same.pk == still.pk
    assert new.pk != first.pk
    assert Session.objects.get(pk=first.pk).last_seen_at == T0 + timedelta(minutes=59)


def test_session_timeout_is_per_account(account):
    account.session_timeout_minutes = 5
    account.save()
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)

    first = session_for_hit(account=account, visitor=visitor, now=T0)
    later = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=6))

    assert later.pk != first.pk


def test_a_different_campaign_starts_a_new_session_and_no_utm_continues(account):
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)
    spring = {"utm_source": "newsletter", "utm_campaign": "spring"}

    first = session_for_hit(account=account, visitor=visitor, now=T0, utm=spring)
    inside = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=1))
    same_campaign = session_for_hit(account=account, visitor=visitor, now=T0 + timedelta(minutes=2), utm=spring)
    other = session_for_hit(
        account=account, visitor=visitor, now=T0 + timedelta(minutes=3), utm={"utm_source": "ads", "utm_campaign": "x"}
    )

    assert first.pk == inside.pk == same_campaign.pk
    assert other.pk != first.pk and other.utm_campaign == "x"


def test_identify_anonymous_visitor_as_new_contact_keeps_its_history(account):
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)
    event = CustomEventFactory(account=account)
    record, _ = event_record(account=account, custom_event=event, contact=visitor.contact, source="beacon")

    contact = contact_identify(account=account, visitor=visitor, email="Ada@Example.com")

    assert contact.pk == record.contact_id and contact.email == "ada@example.com"
    assert Contact.objects.count() == 1


def test_identify_as_existing_contact_merges_the_anonymous_history(account):
    known = ContactFactory(account=account, email="ada@example.com", score=5, fields={"plan": "pro"})
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)
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
    visitor = visitor_get_or_create(account=account, uid="v-1", now=T0)

    contact = contact_identify(account=account, visitor=visitor, email="ada@example.com")

    assert contact.account == account
    assert Contact.objects.filter(email="ada@example.com").count() == 2
