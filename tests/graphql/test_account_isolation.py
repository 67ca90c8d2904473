"""A key of account A (Acme) cannot fire, read, change or delete account B's (Globex) events, even with B's slug."""

import pytest

from custom_events.models import CustomEvent
from tests.factories import CustomEventFactory, EventRecordFactory
from tracking.models import Contact, EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex_event(other_account):
    event = CustomEventFactory(account=other_account, name="Globex Secret", slug="globex-secret", description="B's")
    EventRecordFactory.create_batch(2, custom_event=event)
    return event


def test_a_cannot_fire_bs_event(gql, globex_event):
    answer = gql('mutation { triggerCustomEvent(input: {slug: "globex-secret", email: "spy@acme.test"}) }')

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert EventRecord.objects.count() == 2
    assert not Contact.objects.filter(email="spy@acme.test").exists()


def test_a_cannot_fire_bs_event_in_a_batch(gql, globex_event):
    answer = gql(
        'mutation { triggerCustomEvents(inputs: [{slug: "globex-secret", email: "spy@acme.test"}]) '
        "{ ok error { code } } }"
    )

    assert answer == {"data": {"triggerCustomEvents": [{"ok": False, "error": {"code": "UNKNOWN_EVENT"}}]}}
    assert EventRecord.objects.count() == 2


def test_the_same_slug_in_both_accounts_fires_the_callers_own(gql, account, other_account, globex_event):
    mine = CustomEventFactory(account=account, slug="globex-secret")
    their_contact = Contact.objects.create(account=other_account, email="shared@example.com")

    gql('mutation { triggerCustomEvent(input: {slug: "globex-secret", email: "shared@example.com"}) }')

    record = EventRecord.objects.get(account=account)
    assert record.custom_event == mine
    assert record.contact.account == account and record.contact != their_contact
    assert EventRecord.objects.filter(custom_event=globex_event).count() == 2


def test_a_cannot_read_bs_events(gql, account, globex_event):
    CustomEventFactory(account=account, slug="acme-own")

    listed = gql("{ custom_events { slug fires } }")
    one = gql('{ custom_event(slug: "globex-secret") { slug fires } }')

    assert listed == {"data": {"custom_events": [{"slug": "acme-own", "fires": 0}]}}
    assert one == {"data": {"custom_event": None}}


def test_a_cannot_change_bs_event(gql, globex_event):
    answer = gql('mutation { update_custom_event(slug: "globex-secret", input: {name: "Pwned"}) { slug } }')

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    globex_event.refresh_from_db()
    assert globex_event.name == "Globex Secret"


def test_a_cannot_delete_bs_event(gql, globex_event):
    answer = gql('mutation { delete_custom_event(slug: "globex-secret") }')

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert CustomEvent.objects.filter(pk=globex_event.pk).exists()
    assert EventRecord.objects.count() == 2


def test_creating_bs_slug_in_a_creates_as_own(gql, account, globex_event):
    answer = gql('mutation { create_custom_event(input: {name: "Mine", slug: "globex-secret"}) { slug fires } }')

    assert answer == {"data": {"create_custom_event": {"slug": "globex-secret", "fires": 0}}}
    assert CustomEvent.objects.filter(slug="globex-secret").count() == 2


def test_a_logged_in_user_acts_for_their_own_account_only(client_logged_in, globex_event):
    # GraphiQL's requests: the session decides the account (CSRF is not enforced by the test client).
    response = client_logged_in.post(
        "/graphql/",
        {"query": '{ custom_events { slug } custom_event(slug: "globex-secret") { slug } }'},
        content_type="application/json",
    )

    assert response.json() == {"data": {"custom_events": [], "custom_event": None}}
