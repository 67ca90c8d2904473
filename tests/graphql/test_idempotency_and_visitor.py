from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import CustomEventFactory, ImpressionFactory, SessionFactory, VisitorFactory
from tests.keys import row_key
from tracking.models import Contact, EventRecord, RecordedKey, Visitor

from .utils import error_of

pytestmark = pytest.mark.django_db

TRIGGER = "mutation($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"


@pytest.fixture
def demo(account):
    return CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)


def fire(gql, **fields):
    return gql(TRIGGER, {"input": {"slug": "requested-demo", "email": "ada@example.com", **fields}})


# --- idempotency_key ---------------------------------------------------------------------------------------------


def test_the_same_key_records_once_and_answers_the_same(gql, demo):
    first = fire(gql, idempotency_key="signup-42", metadata={"attempt": 1})
    second = fire(gql, idempotency_key="signup-42", metadata={"attempt": 2})

    assert first == second == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get()
    assert (row_key(record), record.metadata) == ("api:signup-42", {"attempt": 1})
    assert Contact.objects.count() == 1


def test_the_key_matches_whatever_the_case_of_the_email(gql, demo):
    fire(gql, idempotency_key="k1")

    answer = fire(gql, idempotency_key="k1", email="ADA@example.com")

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.count() == 1


def test_different_keys_record_separately(gql, demo):
    fire(gql, idempotency_key="k1")
    fire(gql, idempotency_key="k2")
    fire(gql)
    fire(gql)

    assert EventRecord.objects.count() == 4


@pytest.mark.parametrize("change", [{"email": "grace@example.com"}, {"slug": "other-event"}])
def test_a_key_reused_for_another_event_or_contact_is_refused(gql, account, demo, change):
    CustomEventFactory(account=account, slug="other-event")
    fire(gql, idempotency_key="k1")

    answer = fire(gql, idempotency_key="k1", **change)

    assert error_of(answer) == {"code": "INVALID_INPUT", "field": "idempotency_key"}
    assert EventRecord.objects.count() == 1
    assert Contact.objects.filter(email="grace@example.com").count() == 0


def test_keys_are_per_account(gql, gql_other, account, other_account, demo):
    CustomEventFactory(account=other_account, slug="requested-demo")

    fire(gql, idempotency_key="shared-key")
    answer = fire(gql_other, idempotency_key="shared-key")

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.filter(account=account).count() == 1
    assert EventRecord.objects.filter(account=other_account).count() == 1


def test_a_key_cannot_collide_with_a_beacon_hit_id(gql, account, demo):
    # The beacon's hit ids are kept in the same table, under another namespace.
    beacon = EventRecord.objects.create(
        account=account,
        custom_event=demo,
        contact=Contact.objects.create(account=account, email="beacon@example.com"),
        source=EventRecord.Source.BEACON,
        occurred_at=timezone.now(),
    )
    RecordedKey.objects.create(account=account, key="hit-1", record_id=beacon.pk, created_at=timezone.now())

    answer = fire(gql, idempotency_key="hit-1")

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert row_key(EventRecord.objects.exclude(pk=beacon.pk).get()) == "api:hit-1"


# --- visitor_id --------------------------------------------------------------------------------------------------


def test_visitor_id_identifies_the_visitor_and_attributes_the_conversion(gql, account, demo):
    now = timezone.now()
    visitor = VisitorFactory(account=account, uid="v-abc123")
    anonymous = visitor.contact
    session = SessionFactory(visitor=visitor, started_at=now - timedelta(minutes=10), last_seen_at=now)
    ImpressionFactory(session=session, url="https://example.com/", occurred_at=now - timedelta(minutes=9))
    latest = ImpressionFactory(
        session=session, url="https://example.com/pricing", occurred_at=now - timedelta(minutes=1)
    )

    answer = fire(gql, visitor_id="v-abc123")

    assert answer == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get()
    assert (record.visitor, record.session, record.attributed_impression) == (visitor, session, latest)
    assert record.is_conversion is True
    # The anonymous visitor became the known contact.
    contact = Contact.objects.get(account=account)
    assert (contact.pk, contact.email) == (anonymous.pk, "ada@example.com")
    assert Visitor.objects.get().contact == record.contact == contact


def test_visitor_id_merges_the_anonymous_history_into_an_existing_contact(gql, account, demo):
    known = Contact.objects.create(account=account, email="ada@example.com")
    visitor = VisitorFactory(account=account, uid="v-1")
    SessionFactory(visitor=visitor)

    fire(gql, visitor_id="v-1")

    assert list(Contact.objects.filter(account=account)) == [known]
    visitor.refresh_from_db()
    assert visitor.contact == known == EventRecord.objects.get().contact


def test_visitor_id_without_an_open_session_attributes_nothing(gql, account, demo):
    long_ago = timezone.now() - timedelta(hours=3)
    visitor = VisitorFactory(account=account, uid="v-1")
    session = SessionFactory(visitor=visitor, started_at=long_ago, last_seen_at=long_ago)
    ImpressionFactory(session=session, occurred_at=long_ago)

    fire(gql, visitor_id="v-1")

    record = EventRecord.objects.get()
    assert (record.visitor, record.session, record.attributed_impression) == (visitor, None, None)


def test_an_unknown_visitor_id_creates_the_visitor_already_identified(gql, account, demo):
    # The backend may fire before the browser's first beacon hit arrives: the visitor is created now, so that
    # hit (and every later one) already belongs to the contact.
    fire(gql, visitor_id="v-new")

    visitor = Visitor.objects.get(account=account, uid="v-new")
    record = EventRecord.objects.get()
    assert visitor.contact.email == "ada@example.com"
    assert (record.visitor, record.session, record.attributed_impression) == (visitor, None, None)
    assert Contact.objects.count() == 1


def test_without_visitor_id_no_impression_is_attributed_even_if_the_contact_browsed(gql, account, demo):
    contact = Contact.objects.create(account=account, email="ada@example.com")
    visitor = VisitorFactory(account=account, contact=contact)
    ImpressionFactory(session=SessionFactory(visitor=visitor))

    fire(gql)

    record = EventRecord.objects.get()
    assert (record.visitor, record.session, record.attributed_impression) == (None, None, None)
    assert record.is_conversion is True


def test_visitor_ids_are_looked_up_in_the_callers_account_only(gql, account, other_account, demo):
    theirs = VisitorFactory(account=other_account, uid="v-shared")
    SessionFactory(visitor=theirs)

    fire(gql, visitor_id="v-shared")

    mine = Visitor.objects.get(account=account, uid="v-shared")
    theirs.refresh_from_db()
    assert mine.pk != theirs.pk
    assert theirs.contact.email is None  # the other account's visitor was not identified
    assert EventRecord.objects.get().visitor == mine
