"""Erasing and exporting a contact: the page, the commands and the GraphQL operations (automations.privacy)."""

import io
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from automations import privacy, services
from automations.models import Action, ActionRun, ContactErasure
from paminga.services import api_key_create
from tests.factories import (
    ActionFactory,
    ActionRunFactory,
    ContactFactory,
    CustomEventFactory,
    EventRecordFactory,
    ImpressionFactory,
    MembershipFactory,
    SessionFactory,
    UserFactory,
    VisitorFactory,
)
from tests.graphql.utils import GraphQLClient, error_of
from tracking.models import Contact, ContactList, ContactListMembership, ContactTag, EventRecord, RejectedHit

pytestmark = pytest.mark.django_db

EMAIL = "ada@example.com"
TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


def rows_containing(needle: str) -> list[tuple[str, int]]:
    """Every row of every installed model with a text or JSON column that contains `needle` (any case)."""
    found = []
    for model in apps.get_models():
        if not model._meta.managed or model._meta.proxy:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, TEXT_FIELDS):
                matches = (
                    model._default_manager.annotate(_text=Cast(f.name, models.TextField()))
                    .filter(_text__icontains=needle)
                    .values_list("pk", flat=True)
                )
                found += [(f"{model._meta.label}.{f.name}", pk) for pk in matches]
    return found


def build_person(account, email=EMAIL, uid_prefix="ada"):
    """A known contact with two browsers, visits, page views, events (one with actions still pending), tags, a
    list, fields and debugger entries that hold the address and a visitor id."""
    contact = ContactFactory(account=account, email=email, fields={"company": "Analytical Engines"}, score=7)
    ContactTag.objects.create(contact=contact, name="vip")
    newsletter, _ = ContactList.objects.get_or_create(account=account, name="Newsletter")
    ContactListMembership.objects.create(contact_list=newsletter, contact=contact)
    demo = CustomEventFactory(account=account, slug=f"demo-{uid_prefix}", counts_as_conversion=True)
    action = ActionFactory(custom_event=demo, kind=Action.Kind.ADD_TAG, config={"tag": "engaged"})
    visitors, events, impressions, runs = [], [], [], []
    for n in range(2):
        visitor = VisitorFactory(account=account, contact=contact, uid=f"{uid_prefix}-browser-{n}-0123456789")
        visitors.append(visitor)
        session = SessionFactory(visitor=visitor, landing_url=f"https://acme.test/?email={email}")
        impression = ImpressionFactory(session=session, url=f"https://acme.test/welcome?who={email}")
        impressions.append(impression)
        for _ in range(2):
            record = EventRecordFactory(
                custom_event=demo,
                contact=contact,
                visitor=visitor,
                session=session,
                source=EventRecord.Source.BEACON,
                page_url="https://acme.test/pricing",
                metadata={"email": email, "plan": "pro"},
                attributed_impression=impression,
            )
            events.append(record)
            runs.append(ActionRunFactory(action=action, event_record=record, status=ActionRun.Status.PENDING))
    RejectedHit.objects.create(
        account=account,
        reason=RejectedHit.Reason.INVALID_EMAIL,
        message="identify() with an invalid email address",
        excerpt=json.dumps({"type": "identify", "email": email.upper() + "x", "visitor": visitors[0].uid}),
    )
    RejectedHit.objects.create(
        account=account,
        reason=RejectedHit.Reason.UNKNOWN_EVENT,
        message="No custom event with this slug",
        excerpt=json.dumps({"type": "event", "visitor": visitors[1].uid, "slug": "nope"}),
    )
    return contact, visitors, impressions, events, runs


@pytest.fixture
def ada(account):
    return build_person(account)


@pytest.fixture
def bob(account):
    return build_person(account, email="bob@example.com", uid_prefix="bob")


def test_erase_removes_every_row_holding_the_email_or_a_visitor_id(
    account, ada, bob, django_capture_on_commit_callbacks
):
    contact, visitors, _impressions, events, runs = ada
    assert rows_containing(EMAIL) and rows_containing(visitors[0].uid)

    # The page texts only the contact's rows used go in a task started when the erasure commits.
    with django_capture_on_commit_callbacks(execute=True):
        result = privacy.contact_erase(account=account, email=" ADA@example.com ", erased_by="command")

    assert rows_containing(EMAIL) == []
    for visitor in visitors:
        assert rows_containing(visitor.uid) == []
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert not EventRecord.objects.filter(pk__in=[e.pk for e in events]).exists()
    assert not ActionRun.objects.filter(pk__in=[r.pk for r in runs]).exists()
    assert result.counts == {
        "action_runs": 4,
        "events": 4,
        "impressions": 2,
        "visits": 2,
        "visitors": 2,
        "tags": 1,
        "list_memberships": 1,
        "debugger_entries": 2,
        "report_values": 0,
        "admin_log_entries": 0,
        "contacts": 1,
    }


def test_erase_leaves_another_contact_untouched(account, ada, bob):
    bob_contact, bob_visitors, bob_impressions, bob_events, bob_runs = bob
    before = rows_containing("bob@example.com")

    privacy.contact_erase(account=account, email=EMAIL, erased_by="command")

    assert rows_containing("bob@example.com") == before
    assert EventRecord.objects.filter(contact=bob_contact).count() == 4
    assert ActionRun.objects.filter(event_record__contact=bob_contact, status=ActionRun.Status.PENDING).count() == 4
    assert {t.name for t in bob_contact.tags.all()} == {"vip"}
    assert all(e.attributed_impression_id for e in EventRecord.objects.filter(contact=bob_contact))


def test_pending_runs_of_an_erased_contact_do_nothing_when_their_task_comes(account, ada):
    _contact, _visitors, _impressions, _events, runs = ada
    tags_before = ContactTag.objects.count()

    privacy.contact_erase(account=account, email=EMAIL, erased_by="command")

    for run in runs:
        assert services.action_run_execute(run_id=run.pk) is None
    assert ContactTag.objects.count() == tags_before - 1  # only the erased contact's own tag went; none was added


def test_erase_records_an_audit_entry_without_the_person(account, ada):
    privacy.contact_erase(account=account, email=EMAIL, erased_by="user owner@acme.test")

    erasure = ContactErasure.objects.get()
    assert erasure.account == account
    assert erasure.erased_by == "user owner@acme.test"
    assert erasure.erased_at > timezone.now() - timedelta(minutes=1)
    assert EMAIL not in json.dumps(erasure.counts)


def test_erase_an_unknown_address_changes_nothing(account, ada):
    with pytest.raises(privacy.ContactNotFound):
        privacy.contact_erase(account=account, email="nobody@example.com", erased_by="command")

    assert ContactErasure.objects.count() == 0
    assert Contact.objects.filter(email=EMAIL).exists()


def test_the_erase_page_says_what_goes_and_erases_on_post(client_logged_in, account, ada):
    contact = ada[0]
    url = reverse("contacts:erase", args=[contact.pk])

    page = client_logged_in.get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert "4 custom event occurrences" in text and "2 page views" in text and "csrfmiddlewaretoken" in text

    response = client_logged_in.post(url)

    assert response.status_code == 302
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert ContactErasure.objects.get().erased_by == "user owner@acme.test"


def test_a_member_cannot_erase_but_can_export(client, account, ada):
    member = UserFactory(username="member@acme.test")
    MembershipFactory(user=member, account=account, role="member")
    client.force_login(member)
    contact = ada[0]

    client.post(reverse("contacts:erase", args=[contact.pk]))
    export = client.get(reverse("contacts:export", args=[contact.pk]))

    assert Contact.objects.filter(pk=contact.pk).exists()
    assert export.status_code == 200


def test_another_accounts_user_can_neither_erase_nor_export(client, account, other_account, ada):
    stranger = UserFactory(username="owner@globex.test")
    MembershipFactory(user=stranger, account=other_account, role="owner")
    client.force_login(stranger)
    contact = ada[0]

    erase = client.post(reverse("contacts:erase", args=[contact.pk]))
    export = client.get(reverse("contacts:export", args=[contact.pk]))

    assert erase.status_code == 404
    assert export.status_code == 404
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert ContactErasure.objects.count() == 0


def test_export_holds_every_impression_event_and_run_of_the_contact(account, ada, bob):
    contact, visitors, impressions, events, runs = ada

    document = privacy.contact_export(account=account, email=EMAIL)

    assert document["contact"]["email"] == EMAIL
    assert document["contact"]["fields"] == {"company": "Analytical Engines"}
    assert document["tags"] == ["vip"] and document["lists"] == ["Newsletter"]
    assert sorted(v["uid"] for v in document["visitors"]) == sorted(v.uid for v in visitors)
    assert sorted(i["id"] for i in document["impressions"]) == sorted(i.pk for i in impressions)
    assert sorted(e["id"] for e in document["events"]) == sorted(e.pk for e in events)
    assert sorted(r["id"] for r in document["action_runs"]) == sorted(r.pk for r in runs)
    assert len(document["visits"]) == 2
    assert document["events"][0]["metadata"] == {"email": EMAIL, "plan": "pro"}
    assert "bob@example.com" not in json.dumps(document)


def test_export_download_from_the_contact_page(client_logged_in, ada):
    contact = ada[0]

    response = client_logged_in.get(reverse("contacts:export", args=[contact.pk]))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="contact-{contact.pk}.json"'
    assert len(json.loads(response.content)["events"]) == 4


def test_commands_export_then_erase(account, ada):
    out = io.StringIO()
    call_command("contact_export", "acme", EMAIL, stdout=out)
    assert len(json.loads(out.getvalue())["impressions"]) == 2

    out = io.StringIO()
    call_command("contact_erase", "acme", EMAIL, stdout=out)
    assert json.loads(out.getvalue())["counts"]["events"] == 4
    assert ContactErasure.objects.get().erased_by == "command"

    with pytest.raises(CommandError, match="No contact"):
        call_command("contact_erase", "acme", EMAIL)
    with pytest.raises(CommandError, match="No account"):
        call_command("contact_export", "nope", EMAIL)


EXPORT = "query ($email: String!) { export_contact(email: $email) }"
ERASE = "mutation ($email: String!) { erase_contact(email: $email) }"


def test_graphql_export_and_erase(client, account, ada):
    gql = GraphQLClient(client, api_key_create(account=account, name="CRM sync")[1])

    exported = gql(EXPORT, {"email": EMAIL})
    erased = gql(ERASE, {"email": EMAIL})

    assert len(exported["data"]["export_contact"]["events"]) == 4
    assert erased == {"data": {"erase_contact": True}}
    assert ContactErasure.objects.get().erased_by == "API key CRM sync"
    assert error_of(gql(ERASE, {"email": EMAIL})) == {"code": "CONTACT_NOT_FOUND", "field": "email"}


def test_graphql_of_another_account_cannot_reach_the_contact(client, account, other_account, ada):
    gql = GraphQLClient(client, api_key_create(account=other_account, name="Globex")[1])

    assert error_of(gql(EXPORT, {"email": EMAIL})) == {"code": "CONTACT_NOT_FOUND", "field": "email"}
    assert error_of(gql(ERASE, {"email": EMAIL})) == {"code": "CONTACT_NOT_FOUND", "field": "email"}
    assert Contact.objects.filter(email=EMAIL).exists()


def test_graphql_without_a_key_is_unauthenticated(client, ada):
    response = GraphQLClient(client, None).post(ERASE, {"email": EMAIL})

    assert response.status_code == 401
    assert error_of(response.json())["code"] == "UNAUTHENTICATED"
    assert Contact.objects.filter(email=EMAIL).exists()
