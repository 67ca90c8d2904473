"""tracking.sql and the hot read: the same rows and instances the ORM gives, and repeated inserts that fail nothing."""

import pytest
from django.db import transaction
from django.utils import timezone

from tests.factories import SessionFactory
from tracking import services
from tracking.models import Contact, Impression, Visitor
from tracking.selectors import visitor_for_hit
from tracking.sql import insert_or_ignore

pytestmark = pytest.mark.django_db


def test_visitor_for_hit_loads_the_visitor_its_contact_and_latest_visit(account, other_account):
    session = SessionFactory(visitor__account=account, visitor__uid="visitor-0001", utm_campaign="spring")
    visitor = session.visitor
    visitor.contact.fields = {"plan": "pro", "nested": [1, {"a": "é"}]}
    visitor.contact.save()
    Visitor.objects.filter(pk=visitor.pk).update(current_session=session)

    loaded = visitor_for_hit(account=account, uid="visitor-0001")

    assert loaded == visitor and loaded.last_seen_at == visitor.last_seen_at
    assert loaded.contact == visitor.contact and loaded.contact.fields == {"plan": "pro", "nested": [1, {"a": "é"}]}
    assert loaded.current_session == session and loaded.current_session.started_at == session.started_at
    assert loaded.current_session.utm_campaign == "spring"
    assert visitor_for_hit(account=other_account, uid="visitor-0001") is None
    assert visitor_for_hit(account=account, uid="nobody-000") is None


def test_insert_or_ignore_skips_a_repeated_unique_key_and_keeps_the_transaction_usable(account):
    session = SessionFactory(visitor__account=account)
    fields = dict(account=account, session=session, visitor=session.visitor, occurred_at=timezone.now())

    with transaction.atomic():
        first = Impression(url="https://a.test/1", client_id="hit-0000001", **fields)
        again = Impression(url="https://a.test/2", client_id="hit-0000001", **fields)
        assert insert_or_ignore(first) is True and first.pk is not None
        assert insert_or_ignore(again) is False and again.pk is None
        assert Impression.objects.count() == 1  # still usable: no error was raised inside the transaction

    assert Impression.objects.get().url == "https://a.test/1"


def test_insert_or_ignore_prepares_values_like_save(account):
    session = SessionFactory(visitor__account=account)
    impression = Impression(
        account=account, session=session, visitor=session.visitor, url="https://a.test/", occurred_at=timezone.now()
    )

    insert_or_ignore(impression)

    stored = Impression.objects.get()
    assert stored.occurred_at == impression.occurred_at and stored.client_id is None


def test_first_hits_of_a_new_visitor_racing_leave_one_visitor_and_no_orphan_contact(account, monkeypatch):
    winner = services.visitor_get_or_create(account=account, uid="visitor-0001", now=timezone.now())
    real = services.visitor_for_hit
    calls = []

    def missed_once(**kwargs):
        # The first lookup misses, as it would have an instant before the concurrent first hit committed.
        calls.append(kwargs)
        return None if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "visitor_for_hit", missed_once)

    loser = services.visitor_get_or_create(account=account, uid="visitor-0001", now=timezone.now())

    assert loser == winner and loser.contact == winner.contact
    assert Visitor.objects.count() == 1 and Contact.objects.count() == 1
    assert len(calls) == 2
