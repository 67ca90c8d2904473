"""Each action kind's effect, and its configuration validation."""

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from automations.actions import REGISTRY, kind_get
from automations.models import Action, ActionRun
from automations.services import action_create
from tests.factories import ActionFactory, ContactFactory, CustomEventFactory
from tracking.models import Contact, ContactList, ContactListMembership, ContactTag

pytestmark = pytest.mark.django_db


def run_of(record) -> ActionRun:
    return ActionRun.objects.get(event_record=record)


def test_registry_covers_every_kind():
    assert set(REGISTRY) == set(Action.Kind.values)
    assert all(REGISTRY[kind].kind == kind for kind in REGISTRY)


def test_add_tag(event, contact, fire):
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "demo-requested"})

    record = fire(event, contact)

    assert list(ContactTag.objects.filter(contact=contact).values_list("name", flat=True)) == ["demo-requested"]
    run = run_of(record)
    assert (run.status, run.attempts, run.result, run.last_error) == ("succeeded", 1, "Added tag “demo-requested”", "")
    assert run.duration_ms is not None and run.finished_at is not None

    second = fire(event, contact)
    assert ContactTag.objects.filter(contact=contact).count() == 1
    assert run_of(second).result == "Already tagged “demo-requested”"


def test_add_tag_refuses_a_501st_tag_permanently(event, contact, fire):
    ContactTag.objects.bulk_create([ContactTag(contact=contact, name=f"t{i}") for i in range(500)])
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "one-more"})

    run = run_of(fire(event, contact))

    assert (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == "The contact already has 500 tags, the most a contact can have."
    assert ContactTag.objects.filter(contact=contact).count() == 500


def test_remove_tag(event, contact, fire):
    ContactTag.objects.create(contact=contact, name="cold")
    ContactTag.objects.create(contact=contact, name="keep")
    ActionFactory(custom_event=event, kind="remove_tag", config={"tag": "cold"})

    record = fire(event, contact)

    assert list(ContactTag.objects.filter(contact=contact).values_list("name", flat=True)) == ["keep"]
    assert run_of(record).result == "Removed tag “cold”"
    assert run_of(fire(event, contact)).result == "Tag “cold” was not set"


def test_add_to_list_creates_the_list_once_in_the_contacts_account(event, contact, other_account, fire):
    ContactList.objects.create(account=other_account, name="Demo requests")
    ActionFactory(custom_event=event, kind="add_to_list", config={"list": "Demo requests"})

    first = fire(event, contact)
    other = ContactFactory(account=event.account, email="other@example.com")
    fire(event, other)
    again = fire(event, contact)

    demo = ContactList.objects.get(account=event.account, name="Demo requests")
    assert sorted(demo.contacts.values_list("email", flat=True)) == ["jane@example.com", "other@example.com"]
    assert ContactList.objects.filter(name="Demo requests").count() == 2  # one per account
    assert ContactListMembership.objects.filter(contact=contact).count() == 1
    assert run_of(first).result == "Added to list “Demo requests”"
    assert run_of(again).result == "Already in list “Demo requests”"


def test_add_to_list_refuses_a_new_list_past_the_accounts_limit(event, contact, fire):
    ContactList.objects.bulk_create([ContactList(account=event.account, name=f"l{i}") for i in range(1000)])
    ActionFactory(custom_event=event, kind="add_to_list", config={"list": "One more"})
    ActionFactory(custom_event=event, kind="add_to_list", config={"list": "l7"}, position=1)

    record = fire(event, contact)

    runs = {run.action.config["list"]: run for run in ActionRun.objects.filter(event_record=record)}
    assert (runs["One more"].status, runs["One more"].last_error) == (
        "failed",
        "The account already has 1000 lists, the most it can have.",
    )
    assert runs["l7"].status == "succeeded"  # existing lists still work
    assert list(contact.lists.values_list("name", flat=True)) == ["l7"]


def test_change_score_up_and_down(event, account, contact, fire):
    ActionFactory(custom_event=event, kind="change_score", config={"delta": 15})
    penalty = CustomEventFactory(account=account, slug="unsubscribed")
    ActionFactory(custom_event=penalty, kind="change_score", config={"delta": -20})

    fire(event, contact)
    fire(event, contact)
    record = fire(penalty, contact)

    contact.refresh_from_db()
    assert contact.score == 10
    assert run_of(record).result == "Score -20 (now 10)"


def test_change_score_is_clamped(event, contact, fire):
    Contact.objects.filter(pk=contact.pk).update(score=999_990)
    ActionFactory(custom_event=event, kind="change_score", config={"delta": 1000})

    fire(event, contact)

    contact.refresh_from_db()
    assert contact.score == 1_000_000


def test_set_field_keeps_other_fields(event, contact, fire):
    Contact.objects.filter(pk=contact.pk).update(fields={"company": "Acme"})
    ActionFactory(custom_event=event, kind="set_field", config={"field": "lifecycle_stage", "value": "sql"})

    record = fire(event, contact)

    contact.refresh_from_db()
    assert contact.fields == {"company": "Acme", "lifecycle_stage": "sql"}
    assert run_of(record).result == "Set lifecycle_stage = “sql”"
    assert run_of(fire(event, contact)).result == "lifecycle_stage was already “sql”"


def test_set_field_refuses_a_101st_field_permanently(event, contact, fire):
    Contact.objects.filter(pk=contact.pk).update(fields={f"f{i}": "x" for i in range(100)})
    ActionFactory(custom_event=event, kind="set_field", config={"field": "extra", "value": "y"})

    run = run_of(fire(event, contact))

    assert (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == "The contact already has 100 fields, the most it can have."
    contact.refresh_from_db()
    assert "extra" not in contact.fields


def test_notify_email_contains_event_contact_and_metadata(event, contact, fire, settings):
    settings.SITE_URL = "https://app.paminga.test"
    ActionFactory(custom_event=event, kind="notify_email", config={"to": ["sales@acme.test", "ops@acme.test"]})

    record = fire(event, contact, metadata={"planTier": "enterprise", "seats": 40}, page_url="https://acme.test/demo")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["sales@acme.test", "ops@acme.test"]
    assert message.subject == "Requested Demo: jane@example.com"
    assert message.extra_headers["X-Paminga-Delivery"] == str(run_of(record).pk)
    body = message.body
    assert "The custom event “Requested Demo” (requested-demo) fired." in body
    assert "Contact:   jane@example.com" in body
    assert '"planTier": "enterprise"' in body and '"seats": 40' in body
    assert "https://acme.test/demo" in body
    assert f"https://app.paminga.test/contacts/{contact.pk}/" in body
    assert run_of(record).result == "Emailed sales@acme.test, ops@acme.test"


def test_notify_email_custom_subject(event, contact, fire):
    ActionFactory(custom_event=event, kind="notify_email", config={"to": ["sales@acme.test"], "subject": "Hot lead!"})

    fire(event, contact)

    assert [m.subject for m in mail.outbox] == ["Hot lead!"]


@pytest.mark.parametrize(
    "kind, config, field, code",
    [
        ("add_tag", {}, "tag", "required"),
        ("add_tag", {"tag": "   "}, "tag", "required"),
        ("add_tag", {"tag": "x" * 101}, "tag", "too_long"),
        ("add_tag", {"tag": "two\nlines"}, "tag", "control_characters"),
        ("add_tag", {"tag": ["list"]}, "tag", "invalid"),
        ("add_tag", {"tag": "ok", "colour": "red"}, "config", "unknown_setting"),
        ("add_tag", "not an object", "config", "invalid"),
        ("remove_tag", {"tag": ""}, "tag", "required"),
        ("add_to_list", {"list": "x" * 201}, "list", "too_long"),
        ("change_score", {"delta": 0}, "delta", "zero"),
        ("change_score", {"delta": "ten"}, "delta", "not_integer"),
        ("change_score", {"delta": True}, "delta", "not_integer"),
        ("change_score", {"delta": 1.5}, "delta", "not_integer"),
        ("change_score", {"delta": 1001}, "delta", "out_of_range"),
        ("change_score", {"delta": "-1001"}, "delta", "out_of_range"),
        ("change_score", {}, "delta", "required"),
        ("set_field", {"field": "plan"}, "value", "required"),
        ("set_field", {"field": "1plan", "value": "x"}, "field", "invalid_field_name"),
        ("set_field", {"field": "pl an", "value": "x"}, "field", "invalid_field_name"),
        ("set_field", {"field": "p" * 65, "value": "x"}, "field", "too_long"),
        ("set_field", {"field": "plan", "value": "v" * 1001}, "value", "too_long"),
        ("notify_email", {}, "to", "required"),
        ("notify_email", {"to": "not-an-email"}, "to", "invalid_email"),
        ("notify_email", {"to": [f"p{i}@acme.test" for i in range(11)]}, "to", "too_many"),
        ("notify_email", {"to": "a@acme.test", "subject": "Hi\r\nBcc: x@evil.test"}, "subject", "control_characters"),
        ("notify_email", {"to": "a@acme.test", "subject": "s" * 201}, "subject", "too_long"),
        ("webhook", {}, "url", "required"),
        ("webhook", {"url": "ftp://example.com/x"}, "url", "invalid_url"),
        ("webhook", {"url": "javascript:alert(1)"}, "url", "invalid_url"),
        ("webhook", {"url": "https://user:pw@example.com/x"}, "url", "invalid_url"),
        ("webhook", {"url": "https://example.com/" + "a" * 2000}, "url", "too_long"),
        ("webhook", {"url": "https://example.com/h", "timeout": 0}, "timeout", "out_of_range"),
        ("webhook", {"url": "https://example.com/h", "timeout": 31}, "timeout", "out_of_range"),
    ],
)
def test_config_validation(event, kind, config, field, code):
    with pytest.raises(ValidationError) as raised:
        action_create(custom_event=event, kind=kind, config=config)

    assert [e.code for e in raised.value.error_dict[field]] == [code]
    assert Action.objects.count() == 0


@pytest.mark.parametrize(
    "kind, config, stored",
    [
        ("add_tag", {"tag": "  vip "}, {"tag": "vip"}),
        ("change_score", {"delta": "-5"}, {"delta": -5}),
        ("change_score", {"delta": 7.0}, {"delta": 7}),
        ("set_field", {"field": "plan.tier", "value": 42}, {"field": "plan.tier", "value": "42"}),
        (
            "notify_email",
            {"to": "Sales@Acme.test, ops@acme.test;\nsales@acme.test", "subject": ""},
            {"to": ["sales@acme.test", "ops@acme.test"]},
        ),
        (
            "webhook",
            {"url": "https://hooks.example.com/p?x=1"},
            {"url": "https://hooks.example.com/p?x=1", "timeout": 10},
        ),
        ("webhook", {"url": "http://example.com/h", "timeout": "3"}, {"url": "http://example.com/h", "timeout": 3}),
    ],
)
def test_config_is_stored_cleaned(event, kind, config, stored):
    action = action_create(custom_event=event, kind=kind, config=config)

    action.refresh_from_db()
    assert action.config == stored


def test_unknown_kind_is_refused(event):
    with pytest.raises(ValidationError) as raised:
        action_create(custom_event=event, kind="launch_rocket", config={})

    assert [e.code for e in raised.value.error_dict["kind"]] == ["invalid_kind"]
    assert kind_get("launch_rocket") is None


def test_invalid_stored_config_fails_the_run_permanently(event, contact, fire):
    # Written around the service (e.g. by hand in the admin): the run refuses it rather than guessing.
    ActionFactory(custom_event=event, kind="change_score", config={"delta": "lots"})

    run = run_of(fire(event, contact))

    assert (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == "Invalid configuration (delta: Points must be a whole number.)"
    contact.refresh_from_db()
    assert contact.score == 0
